"""int8 vs float ONNX: file size, inference time per window (1 thread), accuracy.

    OPENBLAS_NUM_THREADS=1 python bench/bench_models.py NAME=INT8.onnx:FLOAT.onnx ... \
        [--data DIR --split testing] [--heldout DIR]

The float model is the baseline of each pair, timed in the same run; prints one JSON object.
"""

import argparse
import json
import statistics
import time

import numpy as np

from _machine import machine
from kwspi.evaluate import evaluate_onnx
from kwspi.modelinfo import open_session


def latency_ms(path, calls=300, reps=5) -> float:
    session, info = open_session(path, threads=1)
    f = info.features
    x = np.random.default_rng(0).normal(size=(1, 1, f.n_mfcc, f.n_frames)).astype(np.float32)
    for _ in range(50):
        session.run(None, {"features": x})
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(calls):
            session.run(None, {"features": x})
        times.append((time.perf_counter() - t0) / calls * 1e3)
    return statistics.median(times)


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
        row = {"macs": info.macs, "params": info.params, "weight_bytes_8bit": info.weight_bytes}
        for kind, path in (("int8", int8), ("float", flt)):
            row[f"{kind}_file_bytes"] = __import__("os").path.getsize(path)
            row[f"{kind}_ms"] = latency_ms(path)
            if args.data:
                row[f"{kind}_accuracy"] = evaluate_onnx(path, args.data, args.split)["accuracy"]
            if args.heldout:
                row[f"{kind}_heldout_accuracy"] = evaluate_onnx(path, args.heldout, "all")["accuracy"]
        row["int8_vs_float_time"] = row["int8_ms"] / row["float_ms"]
        row["int8_vs_float_size"] = row["int8_file_bytes"] / row["float_file_bytes"]
        rows[name] = row
    print(json.dumps({"benchmark": "models", "split": args.split, "data": args.data, "heldout": args.heldout,
                      "models": rows, "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
