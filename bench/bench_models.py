"""int8 vs float ONNX: file size, inference CPU time per window (1 thread), accuracy, argmax agreement.

    OPENBLAS_NUM_THREADS=1 python bench/bench_models.py NAME=INT8.onnx:FLOAT.onnx ... \
        [--data DIR --split testing] [--heldout DIR]

The float model is the baseline of each pair, timed in the same run; prints one JSON object.
Accuracy and agreement use features computed once per data set (the int8 model's front
end; a pair must share it) and fed to both models, so they see exactly the same input.
"Agreement" is the share of examples on which both models pick the same class: what int8
changes in decisions, whether or not the float answer was right.
"""

import argparse
import json
import statistics
import time

import numpy as np

from _machine import machine
from _modelfile import model_file
from kwspi.evaluate import split_features, task_for
from kwspi.modelinfo import INPUT_NAME, open_session


def latency_ms(paths, calls=300, reps=7) -> list[float]:
    """Median CPU ms per window for each model, one thread, on the same random window.

    Thread CPU time, not wall time: on a shared machine the wall clock also counts the
    time this thread waited for a core. onnxruntime with one intra-op thread computes on
    the calling thread, so its CPU time is all there.

    The models take turns, one block of ``calls`` each per repetition, so a burst of load
    from the machine's other jobs hits both rather than whichever ran at that moment.
    """
    sessions = [open_session(p, threads=1) for p in paths]
    f = sessions[0][1].features
    x = {INPUT_NAME: np.random.default_rng(0).normal(size=(1, 1, f.n_mfcc, f.n_frames)).astype(np.float32)}
    for session, _ in sessions:
        for _ in range(50):  # onnxruntime's first runs allocate
            session.run(None, x)
    times = [[] for _ in sessions]
    for _ in range(reps):
        for (session, _), t in zip(sessions, times):
            t0 = time.thread_time()
            for _ in range(calls):
                session.run(None, x)
            t.append((time.thread_time() - t0) / calls * 1e3)
    return [statistics.median(t) for t in times]


def predictions(path, X) -> np.ndarray:
    session, _ = open_session(path, threads=0)
    return np.concatenate([session.run(None, {INPUT_NAME: X[i:i + 256]})[0] for i in range(0, len(X), 256)]).argmax(1)


def compare(int8, flt, info, data, split) -> dict:
    """Accuracy of both models and their argmax agreement on one split of ``data``."""
    X, y = split_features(data, split, info.features, task_for(info.labels))
    p8, pf = predictions(int8, X), predictions(flt, X)
    return {"examples": len(y), "int8_accuracy": float((p8 == y).mean()), "float_accuracy": float((pf == y).mean()),
            "argmax_agreement": float((p8 == pf).mean()), "disagreements": int((p8 != pf).sum())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="NAME=INT8.onnx:FLOAT.onnx")
    parser.add_argument("--data", help="GSC-layout folder for accuracy")
    parser.add_argument("--split", default="testing")
    parser.add_argument("--heldout", help="a folder of unheard voices (all clips)")
    args = parser.parse_args()
    rows = {}
    for pair in args.pairs:
        name, paths = pair.split("=", 1)
        int8, flt = paths.split(":")
        _, info = open_session(int8)
        row = {"int8": model_file(int8), "float": model_file(flt),
               "macs": info.macs, "params": info.params, "weight_bytes_8bit": info.weight_bytes}
        row["int8_ms"], row["float_ms"] = latency_ms([int8, flt])
        row["int8_vs_float_time"] = row["int8_ms"] / row["float_ms"]
        row["int8_vs_float_size"] = row["int8"]["bytes"] / row["float"]["bytes"]
        if args.data:
            row[args.split] = compare(int8, flt, info, args.data, args.split)
        if args.heldout:
            row["heldout"] = compare(int8, flt, info, args.heldout, "all")
        rows[name] = row
    print(json.dumps({"benchmark": "models", "split": args.split, "data": args.data, "heldout": args.heldout,
                      "models": rows, "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
