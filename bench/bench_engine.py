"""Per-hop CPU time of the streaming engine, split into front end, inference and the rest.

For hops of 20, 50 and 100 ms, a :class:`~kwspi.deploy.Detector` is fed one hop at a time
and the thread CPU time of each call is recorded (onnxruntime runs on the calling thread
with one intra-op thread, so thread time sees all of it). "rest" is everything else per
hop: regrouping samples, the feature ring, softmax, the decision logic.

Floor, measured alone in the same run: the front end of one hop's new frames
(``StreamingMfcc.push``) plus one ``session.run`` on a window of the same audio. ``engine_vs_floor`` is
the engine's median per hop over the floor's.

Model: ``--model PATH``; else the bundled model if present; else the paper's headline
architecture (20 MFCC, beta = 8, 27 M MACs), untrained, exported to int8 once and cached in
the temp folder (needs torch).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_engine.py [--model PATH] [--seconds 60]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import machine
from _modelfile import model_file
from kwspi.deploy import Detector
from kwspi.deploy.model import LoadedModel
from kwspi.features import StreamingMfcc, clip_features
from kwspi.modelinfo import ModelFormatError, resolve_model

HOPS_MS = (20, 50, 100)


def pick_model(path=None) -> Path:
    """The model to measure: ``path``, the bundled model, or a cached paper-sized export."""
    try:
        return resolve_model(path)
    except ModelFormatError:  # no bundled model in this checkout
        pass
    cached = Path(tempfile.gettempdir()) / "kwspi-bench" / "paper-20mfcc-beta8-untrained.onnx"
    if not cached.exists():
        export_paper_model(cached)
    return cached


def export_paper_model(out: Path) -> None:
    import torch

    from kwspi.features import FeatureConfig, clip_features
    from kwspi.modelinfo import ModelInfo
    from kwspi.train.nets.counting import count
    from kwspi.train.export import export_model
    from kwspi.train.nets.model import build_model
    from kwspi.train.nets.space import PAPER_20MFCC_BETA8

    torch.manual_seed(0)
    cfg = FeatureConfig(n_mfcc=20)
    labels = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
    model = build_model(PAPER_20MFCC_BETA8, cfg.n_mfcc, cfg.n_frames, len(labels)).eval()
    c = count(model, (1, 1, cfg.n_mfcc, cfg.n_frames))
    info = ModelInfo(labels=labels, features=cfg, arch=PAPER_20MFCC_BETA8.to_dict(), macs=c.macs, params=c.params,
                     weight_bits=8, weight_bytes=c.weight_bytes(8), dataset="untrained (benchmark only)")
    rng = np.random.default_rng(0)
    calibration = np.stack([clip_features(0.1 * rng.standard_normal(cfg.clip_samples), cfg) for _ in range(20)])
    out.parent.mkdir(parents=True, exist_ok=True)
    export_model(model, info, calibration, out)


def test_audio(seconds: float, rate: int = 16000) -> np.ndarray:
    """Noise with a tone burst every 2 s: both silence-like and busy windows."""
    rng = np.random.default_rng(0)
    x = 0.01 * rng.standard_normal(int(seconds * rate))
    t = np.arange(int(0.4 * rate)) / rate
    for start in np.arange(0.5, seconds - 0.5, 2.0):
        i = int(start * rate)
        x[i:i + len(t)] += 0.3 * np.sin(2 * np.pi * (300 + 100 * (i % 7)) * t)
    return x.astype(np.float32)


def stats_ms(ns) -> dict:
    a = np.asarray(ns, dtype=np.float64) / 1e6
    return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4),
            "max": round(float(a.max()), 4), "n": int(len(a))}


def timed(fn, sink):
    def wrapper(*args):
        t0 = time.thread_time_ns()
        out = fn(*args)
        sink.append(time.thread_time_ns() - t0)
        return out

    return wrapper


def measure_engine(model: LoadedModel, stride_ms: int, audio: np.ndarray) -> dict:
    det = Detector(model, stride_ms=stride_ms)
    fe, inf, total, wall = [], [], [], []
    det.scorer.features = timed(det.scorer.features, fe)
    det.scorer.infer = timed(det.scorer.infer, inf)
    hop = stride_ms * 16
    for pos in range(0, len(audio) - hop + 1, hop):
        n_inf = len(inf)
        w0, t0 = time.perf_counter_ns(), time.thread_time_ns()
        det.process(audio[pos:pos + hop])
        t1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        if len(inf) > n_inf:  # after warm-up: a hop with one inference
            total.append(t1 - t0)
            wall.append(w1 - w0)
    fe = fe[len(fe) - len(total):]  # the hops that ran inference
    rest = np.asarray(total) - np.asarray(fe) - np.asarray(inf)
    return {"cpu_ms": {"total": stats_ms(total), "front_end": stats_ms(fe), "inference": stats_ms(inf),
                       "rest": stats_ms(rest)},
            "wall_ms_total": stats_ms(wall), "stride_ms": stride_ms,
            "p99_percent_of_hop": round(100 * float(np.percentile(total, 99)) / 1e6 / stride_ms, 2)}


def measure_floor(model: LoadedModel, stride_ms: int, audio: np.ndarray) -> dict:
    cfg = model.features
    mf = StreamingMfcc(cfg)
    mf.push(audio[: cfg.clip_samples])
    hop = stride_ms * 16
    fe = []
    for pos in range(cfg.clip_samples, len(audio) - hop + 1, hop):
        block = audio[pos:pos + hop].astype(np.float64)
        t0 = time.thread_time_ns()
        mf.push(block)
        fe.append(time.thread_time_ns() - t0)
    starts = range(0, len(audio) - cfg.clip_samples, max(1, (len(audio) - cfg.clip_samples) // 50))
    feeds = [{model.input_name: clip_features(audio[i:i + cfg.clip_samples], cfg)[None, None]} for i in starts]
    inf = []
    for i in range(len(fe)):
        feed = feeds[i % len(feeds)]  # real windows: int8 kernels may run faster on constant input
        t0 = time.thread_time_ns()
        model.session.run([model.output_name], feed)
        inf.append(time.thread_time_ns() - t0)
    return {"front_end": stats_ms(fe), "inference": stats_ms(inf)}


def setup(description: str, seconds: float):
    """Parse --model and --seconds; load the model with one thread, make the audio, warm up."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model")
    parser.add_argument("--seconds", type=float, default=seconds, help="audio per hop setting")
    args = parser.parse_args()
    path = pick_model(args.model)
    model = LoadedModel.load(path, threads=1)
    audio = test_audio(args.seconds)
    measure_engine(model, 100, audio[: 3 * 16000])  # warm caches and onnxruntime's first runs
    return args, path, model, audio


def main():
    args, path, model, audio = setup(__doc__.splitlines()[0], 60.0)
    results = {}
    for stride_ms in HOPS_MS:
        engine = measure_engine(model, stride_ms, audio)
        floor = measure_floor(model, stride_ms, audio)
        floor_p50 = floor["front_end"]["p50"] + floor["inference"]["p50"]
        results[f"stride_{stride_ms}ms"] = {"engine": engine, "floor": floor, "floor_p50_ms": round(floor_p50, 4),
                                      "engine_vs_floor": round(engine["cpu_ms"]["total"]["p50"] / floor_p50, 3)}
    info = model.info
    print(json.dumps({
        "benchmark": "engine",
        "model": {**model_file(path), "macs": info.macs, "params": info.params, "n_mfcc": info.features.n_mfcc},
        "audio_s_per_hop_setting": args.seconds,
        "results": results,
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
