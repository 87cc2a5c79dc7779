"""The cost of an engine: the same small sweep with the local executor, on Ray, through submitit.

Generates a GSC-layout folder of tone-burst clips, fills its feature cache once (a throwaway
local sweep, not timed), then times ``kwspi sweep`` as a user runs it (a fresh process, fresh
run and results folders) on each executor in turn, ``--repeats`` rounds, and prints JSON
with the medians and their ratio to the local executor. Every executor runs two steps at
once with one CPU each: ``-j 2`` locally, a Ray instance started by the command on this
machine's CPUs, submitit's local executor (the SLURM path without SLURM). The Ray figure
includes starting and stopping Ray, as a user's command does.

    python bench/bench_sweep_executors.py --clips 600 --repeats 3
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine
from bench_cache import make_dataset

EXECUTORS = {"local": ["-j", "2"], "ray": ["--executor", "ray"], "submitit-local": ["--executor", "submitit-local", "-j", "2"]}


def sweep(data: Path, out: Path, executor_args: list[str], epochs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "kwspi", "sweep", "--data", str(data), "--runs", str(out / "runs"),
           "--results", str(out / "res"), "--betas", "", "--baselines", "dscnn-s,dscnn-m", "--keywords", "yes,no",
           "--retrain-epochs", str(epochs), "--cpus-per-step", "1", *executor_args]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--executors", default=",".join(EXECUTORS))
    args = ap.parse_args()
    names = args.executors.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_dataset(work / "data", args.clips)
        sweep(work / "data", work / "warm", EXECUTORS["local"], args.epochs)  # fills the feature cache
        times = {name: [] for name in names}
        for _ in range(args.repeats):  # rounds, so a busy spell on the machine hits every executor
            for name in names:
                times[name].append(sweep(work / "data", work / name, EXECUTORS[name], args.epochs))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(json.dumps({
        "machine": machine(),
        "sweep": f"4 steps (dscnn-s, dscnn-m: train {args.epochs} epoch(s), export), 2 at once, 1 CPU each; "
                 f"{args.clips} clips, keywords yes,no",
        "seconds": {name: [round(x, 1) for x in t] for name, t in times.items()},
        "median_s": {name: round(m, 1) for name, m in median.items()},
        "ratio_to_local": {name: round(m / median["local"], 2) for name, m in median.items()} if "local" in median
        else None,
    }, indent=1))


if __name__ == "__main__":
    main()
