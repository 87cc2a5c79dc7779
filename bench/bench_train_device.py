"""Seconds per training epoch and per search epoch, on each device this machine has.

    python bench/bench_train_device.py [--examples 20000] [--devices cpu,cuda] [--threads N]

What a device changes is the loop over batches, so the data here are random features of the
bundled front end's shape (the loops do not read them); feature computation runs on the CPU
whatever the device (``BENCHMARKS.md``, the feature cache). Two loops, each as `kwspi` runs
them, with its defaults except the epochs:

- ``train``: :func:`kwspi.train.fit.fit` of the bundled architecture
  (``kwspi/models/default.arch.json``), 8-bit weight quantization, batch 100;
- ``warmup`` and ``search``: :func:`kwspi.train.search.search`, the paper's supernet at width
  1.0: one epoch of the weight-only warm-up, then one joint epoch (weights, and every
  ``arch_every`` steps an architecture step on the validation set).

The CPU is the baseline of the same run. Each timed epoch follows one untimed epoch (CUDA
kernels compile and caches fill on the first). Prints one JSON object.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from _machine import machine
from kwspi.features import FeatureConfig
from kwspi.train.config import SearchConfig, TrainConfig
from kwspi.train.fit import fit
from kwspi.train.nets.model import build_model
from kwspi.train.nets.space import load_arch
from kwspi.train.nets.supernet import SuperNet
from kwspi.train.search import search

ARCH = Path(__file__).resolve().parent.parent / "kwspi" / "models" / "default.arch.json"
N_CLASSES = 12


def data(n: int, seed: int = 0):
    f = FeatureConfig()
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, f.n_mfcc, f.n_frames, generator=g), torch.randint(0, N_CLASSES, (n,), generator=g)


def time_train(device: str, X, y) -> float:
    f = FeatureConfig()
    model = build_model(load_arch(str(ARCH)), f.n_mfcc, f.n_frames, N_CLASSES)
    stamps = []
    with tempfile.TemporaryDirectory() as tmp:
        fit(model, lambda e: (X, y), None, TrainConfig(epochs=2, batch_size=100, device=device),
            Path(tmp) / "checkpoint.pt", {}, on_epoch=lambda e, s: stamps.append(time.perf_counter()))
    return stamps[1] - stamps[0]


def time_search(device: str, X, y, Xv, yv) -> dict:
    f = FeatureConfig()
    net = SuperNet(f.n_mfcc, f.n_frames, N_CLASSES, 1.0)
    cfg = SearchConfig(warmup_epochs=2, search_epochs=2, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        history = search(net, lambda e: (X, y), (Xv, yv), cfg, Path(tmp), {})
    return {"warmup": history[1]["seconds"], "search": history[3]["seconds"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20000, help="training examples per epoch")
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y = data(args.examples)
    Xv, yv = data(args.examples // 10, seed=1)
    rows = {}
    for device in args.devices.split(","):
        row = {"train": round(time_train(device, X, y), 2), **time_search(device, X, y, Xv, yv)}
        rows[device] = row
        print(json.dumps({device: row}), flush=True)
    out = {"machine": machine(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "examples": args.examples, "seconds_per_epoch": rows}
    if "cpu" in rows:
        out["speedup_over_cpu"] = {d: {k: round(rows["cpu"][k] / v, 1) for k, v in r.items()}
                                   for d, r in rows.items() if d != "cpu"}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
