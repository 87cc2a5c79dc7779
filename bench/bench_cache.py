"""Feature cache speed-up: computing a split's features (cold) vs reading them back (warm).

Generates a GSC-layout folder of tone-burst clips (hash-rule split, like v0.01), then for
the training split (the paper's augmentation, ``--views`` cached views) and the testing
split (unaugmented) times :func:`kwspi.train.data.load_split` on an empty cache, once
with one process and once with the default pool, and again on the filled cache.

    python bench/bench_cache.py --clips 6000 --views 4
"""

import argparse
import hashlib
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import machine
from kwspi import gsc
from kwspi.features import FeatureConfig
from kwspi.train.data import load_split
from kwspi.wavio import write_wav

RATE = 16000


def make_dataset(root: Path, n_clips: int, seed: int = 0) -> None:
    """About ``n_clips`` 1-s clips over the 30 v0.01 words, plus two noise recordings."""
    rng = np.random.default_rng(seed)
    words = gsc.WORDS_V1
    t = np.arange(RATE // 3) / RATE
    for i in range(n_clips):
        wi = i % len(words)
        spk = hashlib.sha1(f"spk{i}".encode()).hexdigest()[:8]  # one speaker per clip: an even split
        clip = 0.01 * rng.standard_normal(RATE)
        start = int(rng.integers(0, RATE // 2))
        clip[start:start + len(t)] += 0.5 * np.sin(2 * np.pi * (200 + 60 * wi) * t)
        (root / words[wi]).mkdir(parents=True, exist_ok=True)
        write_wav(root / words[wi] / f"{spk}_nohash_0.wav", clip.astype(np.float32), RATE)
    noise = root / gsc.BACKGROUND_NOISE_DIR
    noise.mkdir(exist_ok=True)
    write_wav(noise / "white_noise.wav", (0.3 * rng.standard_normal(60 * RATE)).astype(np.float32), RATE)
    write_wav(noise / "pink_noise.wav", (0.3 * rng.standard_normal(60 * RATE)).astype(np.float32), RATE)


def timed_load(root: Path, cache: Path, split: str, views: int, workers) -> tuple[float, object]:
    t0 = time.perf_counter()
    fs = load_split(root, split, FeatureConfig(), views=views, cache_dir=cache, workers=workers)
    return time.perf_counter() - t0, fs


def bench_split(root: Path, work: Path, split: str, views: int) -> dict:
    serial_cache, pool_cache = work / "cache-serial", work / "cache-pool"
    cold_serial, fs = timed_load(root, serial_cache, split, views, workers=1)
    cold_pool, _ = timed_load(root, pool_cache, split, views, workers=None)
    warm = min(timed_load(root, pool_cache, split, views, workers=None)[0] for _ in range(5))
    return {
        "examples": len(fs),
        "feature_matrices": fs.stats.computed,
        "cold_one_process_s": round(cold_serial, 3),
        "cold_pool_s": round(cold_pool, 3),
        "warm_s": round(warm, 4),
        "pool_speedup": round(cold_serial / cold_pool, 2),
        "cache_speedup_vs_pool": round(cold_pool / warm, 1),
        "cache_speedup_vs_one_process": round(cold_serial / warm, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6000, help="clips to generate (all 30 words)")
    ap.add_argument("--views", type=int, default=4, help="augmented views per training clip")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="kwspi-bench-cache-"))
    try:
        make_dataset(work / "data", args.clips)
        results = {s: bench_split(work / "data", work, s, args.views) for s in ("training", "testing")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {
        "benchmark": "feature_cache",
        "clips_generated": args.clips,
        "views": args.views,
        "results": results,
        "machine": machine(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
