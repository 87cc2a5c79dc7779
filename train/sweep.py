"""The paper's sweep: one warm-up, a search per beta, retraining, export, DS-CNN baselines.

Every step is a ``kwspi`` command run as its own process, so a sweep does exactly what a
user would do by hand, each step can be rerun alone, and steps run in parallel. A plan is
a list of :class:`Step`, each holding the config of its command
(:mod:`kwspi.train.config`); :func:`plan` builds it from a :class:`SweepConfig` (pure), and
:func:`run_steps` hands each step to an executor (:mod:`kwspi.train.executors`: processes
here, Ray, SLURM) as soon as the steps it needs are done.

Resuming: when a step finishes, ``RUNS/steps/<name>.json`` records its config and a key,
the hash of its config and of the keys of the steps it needs (so a changed search also
re-runs the training after it). A step is done when its output exists and its record's key
is the current one; it is not run again. A step without a record (killed, or never run)
runs again and its command resumes from its own checkpoint. A step whose record has another
key ran with other settings: its run folder is moved aside to ``<folder>.stale-<old key>``
(nothing is deleted) and it runs from the start. The records live under RUNS, not beside the
models in RESULTS, which holds only what ships.

Per (width, cepstra) the warm-up is shared: it does not depend on beta (see
:func:`kwspi.train.search.fork_warmup`), which saves a warm-up per beta.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path

from kwspi.atomic import write_text
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


def step_keys(steps: list[Step]) -> dict[str, str]:
    """Each step's key: its config and the keys of the steps it needs, hashed."""
    keys: dict[str, str] = {}
    for s in steps:
        h = hashlib.sha256(s.config.to_json().encode() if s.config is not None else json.dumps(s.argv).encode())
        for a in s.after:
            h.update(keys[a].encode())  # KeyError: steps not in an order that respects `after`
        keys[s.name] = h.hexdigest()[:16]
    return keys


def record_path(records: Path, step: Step) -> Path:
    return records / (step.name.replace("/", "--") + ".json")


def step_state(step: Step, key: str, records: Path) -> str:
    """``done``, ``changed`` (it ran with another config) or ``to run``."""
    try:
        recorded = json.loads(record_path(records, step).read_text())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return "to run"
    if recorded != key:
        return "changed"
    return "done" if step.done.exists() else "to run"


def write_record(records: Path, step: Step, key: str) -> None:
    record = {"step": step.name, "key": key, "command": ["kwspi", *step.argv],
              "config": step.config.to_dict() if step.config is not None else None}
    write_text(record_path(records, step), json.dumps(record, indent=1) + "\n")


def move_aside(step: Step, records: Path) -> Path | None:
    """Move the run folder of a step that ran with another config out of its way; where to."""
    path = record_path(records, step)
    old = json.loads(path.read_text())["key"]
    out = getattr(step.config, "out", None)
    target = None
    if out is not None and Path(out).is_dir():
        target, n = Path(out).with_name(f"{Path(out).name}.stale-{old}"), 1
        while target.exists():
            n += 1
            target = Path(out).with_name(f"{Path(out).name}.stale-{old}-{n}")
        Path(out).rename(target)
    path.unlink()  # from now on a killed rerun resumes instead of being moved aside again
    return target


def describe(steps: list[Step], records: Path, resources) -> list[str]:
    """``--dry-run``: each step, its state, what it asks for (``resources(step)``), what it
    needs, its command."""
    keys = step_keys(steps)
    lines = []
    for s in steps:
        after = f"; after {', '.join(s.after)}" if s.after else ""
        lines.append(f"{s.name} [{step_state(s, keys[s.name], records)}] asks for {resources(s)}{after}")
        lines.append(f"    kwspi {shlex.join(s.argv)}")
    return lines


def run_steps(steps: list[Step], logs: Path, executor, records: Path | None = None, echo=print) -> list[str]:
    """Run the ``steps`` not yet done on ``executor``, each once the steps it needs are done;
    a step's output goes to ``logs/<name>.log`` and its record to ``records`` (default
    ``logs/../steps``). Returns the names of the steps that failed or were not run because
    a step they need failed."""
    logs.mkdir(parents=True, exist_ok=True)
    records = records or logs.parent / "steps"
    keys = step_keys(steps)
    states = {s.name: step_state(s, keys[s.name], records) for s in steps}
    done = {name for name, state in states.items() if state == "done"}
    failed: list[str] = []
    waiting = [s for s in steps if s.name not in done]
    running: dict[int, tuple[Step, object, float]] = {}  # by slot: the local executor's GPU is its slot
    total, started = len(steps), len(done)
    if started:
        echo(f"{started} of {total} steps already done")
    try:
        while waiting or running:
            blocked = {s.name for s in waiting if any(a in failed for a in s.after)}
            failed += [s.name for s in waiting if s.name in blocked]
            waiting = [s for s in waiting if s.name not in blocked]
            while executor.slots is None or len(running) < executor.slots:
                ready = next((s for s in waiting if all(a in done for a in s.after)), None)
                if ready is None:
                    break
                waiting.remove(ready)
                if states[ready.name] == "changed":
                    moved = move_aside(ready, records)
                    echo(f"    {ready.name} ran with other settings" + (f"; its run moved to {moved}" if moved else ""))
                slot = next(i for i in range(len(running) + 1) if i not in running)
                handle = executor.start(ready, logs / (ready.name.replace("/", "--") + ".log"), slot)
                running[slot] = (ready, handle, time.monotonic())
                started += 1
                echo(f"[{started}/{total}] {ready.name} ({executor.name}, {executor.resources(ready)}): "
                     f"kwspi {' '.join(ready.argv)}")
            for slot, (step, handle, began) in list(running.items()):
                code = executor.poll(handle)
                if code is None:
                    continue
                del running[slot]
                seconds = time.monotonic() - began
                if code == 0 and step.done.exists():
                    done.add(step.name)
                    write_record(records, step, keys[step.name])
                    echo(f"    {step.name} done in {seconds:.0f} s")
                else:
                    failed.append(step.name)
                    echo(f"    {step.name} FAILED (exit {code}); see {logs}")
            if running:
                time.sleep(executor.poll_s)
    finally:
        for _, handle, _ in running.values():  # Ctrl-C: no orphans left training
            executor.cancel(handle)
    return failed
