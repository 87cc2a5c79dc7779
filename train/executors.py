"""Where sweep steps run: processes here, tasks on a Ray cluster, or SLURM jobs through submitit.

Every executor runs the same thing, ``python -m kwspi <step.config.to_argv()>`` with its
output appended to the step's log, in its own process, so a step on a node is exactly the
command a user would type and leaves no torch state or GPU memory behind. An executor only
says what a step asks for (:class:`Resources`) and starts, polls and cancels one step; which
step may start, what is already done and what is blocked behind a failure is decided once,
in :func:`kwspi.train.sweep.run_steps`, so ``after`` and resumption mean the same on every
executor. ``ray`` and ``submitit`` are imported inside their executor only: ``kwspi --help``
and the local executor work without them.

On Ray and SLURM the run and results folders must be one shared folder (NFS) seen by the
nodes and by the machine running ``kwspi sweep``, which checks each step's outputs.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kwspi.errors import MissingDependency, KwspiError


@dataclass(frozen=True)
class Resources:
    """What one step asks its executor for; ``cpus`` is also its thread count."""

    cpus: int
    gpus: int = 0

    def __str__(self) -> str:
        gpus = f"{self.gpus} GPU{'s' * (self.gpus != 1)}, " if self.gpus else ""
        return f"{gpus}{self.cpus} CPU{'s' * (self.cpus != 1)}"


def needs(step, base: Resources) -> Resources:
    """What ``step`` asks for: ``base``, less the GPUs for an export (int8 export and its
    measurement run on CPUs, so a GPU would sit idle while the step holds it)."""
    command = getattr(step.config, "COMMAND", None)
    return Resources(base.cpus, 0) if command == "export" else base


def kwspi_argv(argv) -> list[str]:
    """The command line of ``kwspi ARGV`` with this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "kwspi", *argv]


def step_env(threads: int, gpu: str | None = None) -> dict[str, str]:
    """This process's environment with ``threads`` BLAS/OpenMP threads (unless
    OMP_NUM_THREADS says otherwise) and, when given, the one GPU the step may see."""
    threads = os.environ.get("OMP_NUM_THREADS", str(threads))
    env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def run_step(argv: list[str], log: str, threads: int, cwd: str) -> int:
    """Run ``kwspi ARGV`` to its end in ``cwd`` with output appended to ``log``; its exit code.

    What a Ray task or a SLURM job executes. ``cwd`` is the folder ``kwspi sweep`` ran in, so
    relative paths in a step's config mean the same on a node (a Ray worker starts wherever
    ``ray start`` ran). The GPU the engine gave (CUDA_VISIBLE_DEVICES) passes through; a
    cancelled task (KeyboardInterrupt) or job (SIGTERM, which submitit turns into an
    exception) takes its step down with it, so nothing trains on as an orphan.
    """
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:  # a resumed step keeps the log of its first try
        process = subprocess.Popen(kwspi_argv(argv), stdout=out, stderr=subprocess.STDOUT, env=step_env(threads),
                                   cwd=cwd)
        try:
            return process.wait()
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait()


def _need(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise MissingDependency(f"this executor needs {module}: pip install 'kwspi[cluster]'") from None


class Executor:
    """Starts, polls and cancels steps. ``slots``: steps at once (``None``: every ready step
    is handed over and the engine queues them); ``poll_s``: seconds between polls."""

    name = "executor"
    slots: int | None = None
    poll_s = 0.5

    def resources(self, step) -> Resources:
        raise NotImplementedError

    def start(self, step, log: Path, slot: int):
        """Start ``step``; a handle for :meth:`poll` and :meth:`cancel`."""
        raise NotImplementedError

    def poll(self, handle) -> int | None:
        """The step's exit code once it has finished, else ``None``."""
        raise NotImplementedError

    def cancel(self, handle) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Give back what the executor started (a Ray instance)."""


class LocalExecutor(Executor):
    """``jobs`` processes on this machine, each with CPUs / jobs threads and, with GPUs,
    one GPU per slot. ``command(argv)``: the process to start (tests put a stand-in there)."""

    name = "local"

    def __init__(self, jobs: int = 1, gpus: int = 0, cpus_per_step: int | None = None, command=kwspi_argv):
        self.slots, self.gpus, self.command = jobs, gpus, command
        self.cpus = cpus_per_step or max(1, (os.cpu_count() or 1) // jobs)

    def resources(self, step) -> Resources:
        return needs(step, Resources(self.cpus, 1 if self.gpus else 0))

    def start(self, step, log: Path, slot: int):
        with open(log, "a") as out:  # a resumed step keeps the log of its first try
            return subprocess.Popen(self.command(step.argv), stdout=out, stderr=subprocess.STDOUT,
                                    env=step_env(self.cpus, str(slot % self.gpus) if self.gpus else None))

    def poll(self, process) -> int | None:
        return process.poll()

    def cancel(self, process) -> None:
        process.terminate()


class RayExecutor(Executor):
    """One Ray task per step, asking for ``gpus`` GPUs (Ray sets CUDA_VISIBLE_DEVICES) and
    ``cpus`` CPUs, so Ray packs steps onto the nodes they fit. Joins the cluster at
    ``address``, or the Ray already initialized in this process, or starts one here."""

    name = "ray"

    def __init__(self, address: str | None = None, gpus: int = 0, cpus: int = 1, jobs: int | None = None):
        self.ray = _need("ray")
        self.slots, self.need = jobs, Resources(cpus, gpus)
        self.started = not self.ray.is_initialized()
        if self.started:
            # A Ray that kwspi starts for a user sends no usage report unless they asked for it.
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                self.ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except ConnectionError as e:
                raise KwspiError(f"--address {address}: no Ray cluster there ({e})") from None
        # No retries: a step that failed once fails the same way again; the sweep reports it.
        self.task = self.ray.remote(max_retries=0)(run_step)

    def resources(self, step) -> Resources:
        return needs(step, self.need)

    def start(self, step, log: Path, slot: int):
        need = self.resources(step)
        task = self.task.options(num_cpus=need.cpus, num_gpus=need.gpus)
        return task.remote(list(step.argv), str(log.resolve()), need.cpus, os.getcwd())

    def poll(self, ref) -> int | None:
        ready, _ = self.ray.wait([ref], timeout=0)
        if not ready:
            return None
        try:
            return self.ray.get(ref)
        except Exception:  # the task or its node died: the step failed, the sweep goes on
            return -1

    def cancel(self, ref) -> None:
        self.ray.cancel(ref)  # not force: the task gets KeyboardInterrupt and stops its step

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


class SubmititExecutor(Executor):
    """One SLURM job per step through submitit (``cluster="slurm"``), or submitit's local
    executor (``cluster="local"``: the same pickled job, run as a process here). submitit's
    own logs go to ``folder``; the step's output to its log beside them."""

    name = "slurm"
    poll_s = 5.0  # each poll of a SLURM job may query sacct

    def __init__(self, folder: Path, partition: str | None = None, gpus: int = 0, cpus: int = 1, minutes: int = 1440,
                 cluster: str = "slurm", jobs: int | None = None):
        submitit = _need("submitit")
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise KwspiError("--executor slurm: no SLURM here (sbatch not found); run on a login node, or use "
                             "--executor local")
        self.slots, self.need = jobs, Resources(cpus, gpus)
        self.name, self.poll_s = ("slurm", 5.0) if cluster == "slurm" else ("submitit-local", 0.5)
        self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        params = {"timeout_min": minutes, "cpus_per_task": cpus, "nodes": 1, "tasks_per_node": 1}
        if partition:
            params["slurm_partition"] = partition
        self.executor.update_parameters(**params)

    def resources(self, step) -> Resources:
        return needs(step, self.need)

    def start(self, step, log: Path, slot: int):
        need = self.resources(step)
        self.executor.update_parameters(name="kwspi-" + step.name.replace("/", "-"), gpus_per_node=need.gpus)
        return self.executor.submit(run_step, list(step.argv), str(log.resolve()), need.cpus, os.getcwd())

    def poll(self, job) -> int | None:
        if not job.done():
            return None
        try:
            return job.result()
        except Exception:  # killed, timed out or lost: the step failed, the sweep goes on
            return -1

    def cancel(self, job) -> None:
        job.cancel(check=False)


def planned_resources(cfg, gpus_here: int = 0) -> Resources:
    """What every step of a :class:`~kwspi.train.config.SweepConfig` asks for; ``gpus_here``:
    this machine's GPUs (the local executor runs one step per GPU, each with one)."""
    if cfg.executor == "local":
        jobs = cfg.jobs or max(gpus_here, 1)
        return Resources(cfg.cpus_per_step or max(1, (os.cpu_count() or 1) // jobs), 1 if gpus_here else 0)
    return Resources(cfg.cpus_per_step or 1, cfg.gpus_per_step)


def make_executor(cfg, gpus_here: int = 0) -> Executor:
    """The executor a sweep config asks for, started (Ray joined or launched)."""
    need = planned_resources(cfg, gpus_here)
    if cfg.executor == "ray":
        return RayExecutor(cfg.address, need.gpus, need.cpus, cfg.jobs)
    if cfg.executor in ("slurm", "submitit-local"):
        cluster = "slurm" if cfg.executor == "slurm" else "local"
        return SubmititExecutor(cfg.runs / "logs" / "submitit", cfg.partition, need.gpus, need.cpus,
                                cfg.step_minutes, cluster, cfg.jobs)
    return LocalExecutor(cfg.jobs or max(gpus_here, 1), gpus_here, need.cpus)
