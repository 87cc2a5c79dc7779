"""The paper's sweep: one warm-up, a search per beta, retraining, export, DS-CNN baselines.

Every step is a ``kwspi`` command run as its own process, so a sweep does exactly what a
user would do by hand, each step can be rerun alone, and steps run in parallel. A plan is
a list of :class:`Step`, each holding the config of its command
(:mod:`kwspi.train.config`); :func:`plan` builds it from a :class:`SweepConfig` (pure), and
:func:`run_plan` runs ``kwspi <config.to_argv()>``, at most ``jobs`` steps at a time, each
as soon as the steps it needs are done. A step whose output exists is skipped and every
command resumes, so an interrupted sweep continues where it stopped.

Per (width, cepstra) the warm-up is shared: it does not depend on beta (see
:func:`kwspi.train.search.fork_warmup`), which saves a warm-up per beta.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from kwspi.settings import Config
from kwspi.train.config import (DataConfig, ExportRun, SearchConfig, SearchRun, SweepConfig, TrainConfig,
                                TrainRun)


@dataclass(frozen=True)
class Step:
    """One command of the sweep; ``done`` exists once it has finished."""

    name: str
    argv: tuple[str, ...]
    done: Path
    after: tuple[str, ...] = ()
    config: Config | None = None

    @classmethod
    def of(cls, name: str, config: Config, done: Path, after: tuple[str, ...] = ()) -> "Step":
        return cls(name, tuple(config.to_argv()), done, after, config)


def nas_tag(width_mult: float, n_mfcc: int, beta: float) -> str:
    return f"nas-w{width_mult:g}-c{n_mfcc}-b{beta:g}"


def baseline_tag(name: str, n_mfcc: int, cfg: SweepConfig) -> str:
    """``dscnn-s`` when one number of cepstra is swept, else ``dscnn-s-c20``."""
    return name if len(cfg.n_mfccs) == 1 else f"{name}-c{n_mfcc}"


def model_path(cfg: SweepConfig, tag: str) -> Path:
    return cfg.results / "models" / f"{tag}.onnx"


def plan(cfg: SweepConfig) -> list[Step]:
    """Every step of the sweep, in an order that respects ``after``."""
    steps: list[Step] = []
    retrain = TrainConfig(epochs=cfg.retrain_epochs, batch_size=cfg.batch_size, seed=cfg.seed)

    def train_and_export(tag: str, arch: str, data: DataConfig, run: Path, after: tuple[str, ...],
                         init: Path | None = None):
        train = TrainRun(arch=arch, out=run, data=data, train=retrain, init_from=init, resume=True)
        steps.append(Step.of(f"{tag}/train", train, run / "metrics.json", after))
        export = ExportRun(checkpoint=run / "checkpoint.pt", out=model_path(cfg, tag), eval_data=cfg.eval_data,
                           dataset_name=cfg.dataset_name)
        steps.append(Step.of(f"{tag}/export", export, model_path(cfg, tag), (f"{tag}/train",)))

    for c in cfg.n_mfccs:
        data = DataConfig(data=cfg.data, n_mfcc=c, keywords=cfg.keywords)
        for w in cfg.width_mults if cfg.betas else ():
            search = SearchConfig(width_mult=w, target_macs=cfg.target_macs, warmup_epochs=cfg.warmup_epochs,
                                  warmup_lr=cfg.warmup_lr, batch_size=cfg.batch_size, seed=cfg.seed)
            warm_name = f"warmup-w{w:g}-c{c}"
            warm = cfg.runs / warm_name
            steps.append(Step.of(warm_name, SearchRun(out=warm, data=data, search=replace(search, search_epochs=0),
                                                      resume=True), warm / "inherited.pt"))
            for beta in cfg.betas:
                tag = nas_tag(w, c, beta)
                run = cfg.runs / tag
                searched = replace(search, beta=beta, search_epochs=cfg.search_epochs)
                steps.append(Step.of(f"{tag}/search", SearchRun(out=run / "search", data=data, search=searched,
                                                                warmup_from=warm / "supernet.pt", resume=True),
                                     run / "search" / "inherited.pt", (warm_name,)))
                train_and_export(tag, str(run / "search" / "arch.json"), data, run / "retrain", (f"{tag}/search",),
                                 run / "search" / "inherited.pt")
        for name in cfg.baselines:
            tag = baseline_tag(name, c, cfg)
            train_and_export(tag, name, data, cfg.runs / tag, ())
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
