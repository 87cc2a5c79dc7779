"""The paper's sweep: one warm-up, a search per beta, retraining, export, DS-CNN baselines.

Every step is a ``kwspi`` command run as its own process, so a sweep does exactly what a
user would do by hand, each step can be rerun alone, and steps run in parallel. A plan is
a list of :class:`Step`; :func:`plan` builds it from a :class:`SweepConfig` (pure), and
:func:`run_plan` runs it, at most ``jobs`` steps at a time, each as soon as the steps it
needs are done. A step whose output exists is skipped and the commands are run with
``--resume``, so an interrupted sweep continues where it stopped.

Per (width, cepstra) the warm-up is shared: it does not depend on beta (see
:func:`kwspi.train.search.fork_warmup`), which saves a warm-up per beta.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kwspi.errors import KwspiError

BASELINES = ("dscnn-s", "dscnn-m", "dscnn-l")


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep and how long each step trains (see ``kwspi sweep --help``)."""

    data: Path
    runs: Path
    results: Path
    betas: tuple[float, ...] = (0.0, 4.0, 16.0)
    width_mults: tuple[float, ...] = (0.5,)
    n_mfccs: tuple[int, ...] = (10,)
    baselines: tuple[str, ...] = BASELINES
    target_macs: float = 5e6
    warmup_epochs: int = 10
    warmup_lr: float = 0.05
    search_epochs: int = 10
    retrain_epochs: int = 15
    batch_size: int = 100
    seed: int = 0
    keywords: tuple[str, ...] = ()  # () = the 10 GSC keywords
    eval_data: tuple[Path, ...] = ()
    dataset_name: str | None = None

    def __post_init__(self):
        if not (self.betas or self.baselines):
            raise KwspiError("nothing to sweep: give at least one beta or one baseline")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise KwspiError(f"unknown baselines {', '.join(unknown)}; choose from {', '.join(BASELINES)}")


@dataclass(frozen=True)
class Step:
    """One command of the sweep; ``done`` exists once it has finished."""

    name: str
    argv: tuple[str, ...]
    done: Path
    after: tuple[str, ...] = ()


def nas_tag(width_mult: float, n_mfcc: int, beta: float) -> str:
    return f"nas-w{width_mult:g}-c{n_mfcc}-b{beta:g}"


def baseline_tag(name: str, n_mfcc: int, cfg: SweepConfig) -> str:
    """``dscnn-s`` when one number of cepstra is swept, else ``dscnn-s-c20``."""
    return name if len(cfg.n_mfccs) == 1 else f"{name}-c{n_mfcc}"


def model_path(cfg: SweepConfig, tag: str) -> Path:
    return cfg.results / "models" / f"{tag}.onnx"


def plan(cfg: SweepConfig) -> list[Step]:
    """Every step of the sweep, in an order that respects ``after``."""
    data = ["--data", str(cfg.data)]
    common = [*data, "--batch-size", str(cfg.batch_size), "--seed", str(cfg.seed)]
    if cfg.keywords:
        common += ["--keywords", ",".join(cfg.keywords)]
    export_extra = [x for d in cfg.eval_data for x in ("--eval-data", str(d))]
    if cfg.dataset_name:
        export_extra += ["--dataset-name", cfg.dataset_name]
    steps: list[Step] = []

    def train_and_export(tag: str, arch: str, n_mfcc: str, run: Path, after: tuple[str, ...], init: list[str]):
        steps.append(Step(f"{tag}/train", ("train", arch, "--out", str(run), "--epochs", str(cfg.retrain_epochs),
                                           *common, "--n-mfcc", n_mfcc, *init, "--resume"),
                          run / "metrics.json", after))
        steps.append(Step(f"{tag}/export", ("export", str(run / "checkpoint.pt"), "--out", str(model_path(cfg, tag)),
                                            *export_extra), model_path(cfg, tag), (f"{tag}/train",)))

    for c in cfg.n_mfccs:
        n_mfcc = str(c)
        for w in cfg.width_mults if cfg.betas else ():
            search = [*common, "--n-mfcc", n_mfcc, "--width-mult", f"{w:g}", "--warmup-epochs",
                      str(cfg.warmup_epochs), "--warmup-lr", f"{cfg.warmup_lr:g}",
                      "--target-macs", f"{cfg.target_macs:g}"]
            warm_name = f"warmup-w{w:g}-c{c}"
            warm = cfg.runs / warm_name
            steps.append(Step(warm_name, ("search", "--out", str(warm), "--epochs", "0", *search, "--resume"),
                              warm / "inherited.pt"))
            for beta in cfg.betas:
                tag = nas_tag(w, c, beta)
                run = cfg.runs / tag
                steps.append(Step(f"{tag}/search", ("search", "--out", str(run / "search"), "--beta", f"{beta:g}",
                                                    "--epochs", str(cfg.search_epochs), *search, "--warmup-from",
                                                    str(warm / "supernet.pt"), "--resume"),
                                  run / "search" / "inherited.pt", (warm_name,)))
                train_and_export(tag, str(run / "search" / "arch.json"), n_mfcc, run / "retrain", (f"{tag}/search",),
                                 ["--init-from", str(run / "search" / "inherited.pt")])
        for name in cfg.baselines:
            tag = baseline_tag(name, c, cfg)
            train_and_export(tag, name, n_mfcc, cfg.runs / tag, (), [])
    return steps


def _slot_env(slot: int, threads: int, gpus: int) -> dict[str, str]:
    """Threads per CPU job (unless OMP_NUM_THREADS says otherwise); one job per GPU."""
    threads = os.environ.get("OMP_NUM_THREADS", str(threads))
    env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    return env


def kwspi_argv(argv: tuple[str, ...]) -> list[str]:
    """The command line of ``kwspi ARGV`` with this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "kwspi", *argv]


def run_plan(steps: list[Step], logs: Path, jobs: int = 1, gpus: int = 0, echo=print, command=kwspi_argv) -> list[str]:
    """Run ``steps`` (skipping those already done), at most ``jobs`` at once; each step's
    output goes to ``logs/<name>.log``. Returns the names of the steps that failed or were
    not run because a step they need failed. ``command(argv)`` is the process to start."""
    logs.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    done = {s.name for s in steps if s.done.exists()}
    failed: list[str] = []
    waiting = [s for s in steps if s.name not in done]
    running: dict[int, tuple[Step, subprocess.Popen, float]] = {}
    total, started = len(steps), len(done)
    if started:
        echo(f"{started} of {total} steps already done")
    try:
        while waiting or running:
            blocked = {s.name for s in waiting if any(a in failed for a in s.after)}
            failed += [s.name for s in waiting if s.name in blocked]
            waiting = [s for s in waiting if s.name not in blocked]
            for slot in range(jobs):
                if slot in running:
                    continue
                ready = next((s for s in waiting if all(a in done for a in s.after)), None)
                if ready is None:
                    break
                waiting.remove(ready)
                log_path = logs / (ready.name.replace("/", "--") + ".log")
                with open(log_path, "a") as out:  # a resumed step keeps the log of its first try
                    process = subprocess.Popen(command(ready.argv), stdout=out, stderr=subprocess.STDOUT,
                                               env=_slot_env(slot, threads, gpus))
                running[slot] = (ready, process, time.monotonic())
                started += 1
                echo(f"[{started}/{total}] {ready.name}: kwspi {' '.join(ready.argv)}")
            for slot, (step, process, began) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[slot]
                seconds = time.monotonic() - began
                if process.returncode == 0 and step.done.exists():
                    done.add(step.name)
                    echo(f"    {step.name} done in {seconds:.0f} s")
                else:
                    failed.append(step.name)
                    echo(f"    {step.name} FAILED (exit {process.returncode}); see {logs}")
            if running:
                time.sleep(0.5)
    finally:
        for _, process, _ in running.values():  # Ctrl-C: no orphans left training
            process.terminate()
    return failed
