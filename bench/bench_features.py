"""MFCC cost: a whole 1 s window vs one new frame of the streaming extractor.

Baseline in the same run: python_speech_features.mfcc on the same window with the same
settings, so the ratio says what kwspi's own framing and floor cost on top of it.

    OPENBLAS_NUM_THREADS=1 python bench/bench_features.py
"""

import json
import statistics
import time

import numpy as np
import python_speech_features as psf

from _machine import machine
from kwspi.features import FeatureConfig, StreamingMfcc, mfcc


def per_call_ms(fn, calls: int, reps: int = 7) -> dict:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


def main():
    cfg = FeatureConfig()
    rng = np.random.default_rng(0)
    window = 0.1 * rng.standard_normal(cfg.clip_samples)
    hop = 0.1 * rng.standard_normal(cfg.hop_samples)
    stream = StreamingMfcc(cfg)
    stream.push(window)  # warm: every push below completes exactly one frame

    results = {
        "psf_mfcc_window": per_call_ms(
            lambda: psf.mfcc(window, 16000, 0.04, 0.02, 10, 40, 1024, 0, 8000, 0.97, 22, True, np.hamming), 200
        ),
        "kwspi_mfcc_window": per_call_ms(lambda: mfcc(window, cfg), 200),
        "kwspi_stream_new_frame": per_call_ms(lambda: stream.push(hop), 1000),
    }
    base = results["psf_mfcc_window"]["median_ms"]
    out = {
        "benchmark": "features",
        "config": json.loads(cfg.to_json()),
        "results": results,
        "ratio_kwspi_window_vs_psf": results["kwspi_mfcc_window"]["median_ms"] / base,
        "ratio_new_frame_vs_window": results["kwspi_stream_new_frame"]["median_ms"]
        / results["kwspi_mfcc_window"]["median_ms"],
        "machine": machine(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
