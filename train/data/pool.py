"""Turning many examples into features, in this process or a pool of forked workers.

**Parallelism.** Large jobs run in a pool of forked processes, one per core, in chunks.
numpy's OpenBLAS starts one busy-waiting thread per core, so two processes on two cores
fight over them. Measured on 2 cores: a pool of two was no faster than one process, and
while other programs kept the cores busy one process took 8.8 ms per MFCC with two
OpenBLAS threads against 0.5 ms with one. So every process computing features pins
OpenBLAS to one thread (:func:`blas_threads`, with threadpoolctl; the calling process
gets its own count back afterwards).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from kwspi.clips import load_clip
from kwspi.features import FeatureConfig
from kwspi.progress import Progress, silent
from kwspi.train.data.example import UNREADABLE, example_features, reason
from kwspi.train.speech.augment import AugmentConfig, AugmentResources

#: Feature computations below which a process pool costs more to start than it saves.
PARALLEL_MIN = 1000
_CHUNK = 64


@dataclass(frozen=True, eq=False)
class Job:
    """What a worker needs to turn examples into waves and/or feature views."""

    cfg: FeatureConfig
    aug: AugmentConfig | None
    res: AugmentResources | None
    seed: int
    views: tuple[int | None, ...]  # views to compute; None: unaugmented
    keep_waves: bool = False


@dataclass
class Done:
    """The outcome of a run of examples, in the order given."""

    ok: np.ndarray  # bool [m]
    feats: np.ndarray  # float32 [len(views), m, 1, n_mfcc, n_frames]
    waves: np.ndarray | None  # int16 [m, clip_samples]
    sources: list[tuple[int, int]]  # (rate, samples) per loaded clip file
    errors: list[str]


def _run_chunk(job: Job, chunk: list[tuple[int, str | None]]) -> Done:
    cfg, m = job.cfg, len(chunk)
    done = Done(
        ok=np.zeros(m, bool),
        feats=np.zeros((len(job.views), m, 1, cfg.n_mfcc, cfg.n_frames), np.float32),
        waves=np.zeros((m, cfg.clip_samples), np.int16) if job.keep_waves else None,
        sources=[],
        errors=[],
    )
    for j, (index, path) in enumerate(chunk):
        wave = np.zeros(cfg.clip_samples, np.int16)
        if path is not None:
            try:
                wave, rate, n = load_clip(path, cfg.sample_rate, cfg.clip_samples)
            except UNREADABLE as e:
                done.errors.append(reason(path, e))
                continue
            done.sources.append((rate, n))
        done.ok[j] = True
        if done.waves is not None:
            done.waves[j] = wave
        for v, view in enumerate(job.views):
            done.feats[v, j] = example_features(wave, cfg, job.aug, job.res, job.seed, index, view)
    return done


_worker_job: Job | None = None  # set once in each pool process by _init_worker


def _init_worker(job: Job) -> None:
    global _worker_job
    _worker_job = job
    threadpool_limits(limits=1, user_api="blas")
    # Ctrl-C is the parent's to handle: it cancels the queued chunks and shuts the pool
    # down, instead of every worker printing its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_task(chunk):
    return _run_chunk(_worker_job, chunk)


@contextlib.contextmanager
def blas_threads(n: int = 1):
    """Run a block with the BLAS limited to ``n`` threads, then restore the counts."""
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _compute_in_pool(job: Job, chunks: list, workers: int, advance) -> list[Done]:
    # fork: workers start in milliseconds and need no `if __name__ == "__main__"` guard.
    # An executor, not multiprocessing.Pool: a worker that dies (out of memory) raises
    # BrokenProcessPool here instead of hanging the load for ever.
    methods = multiprocessing.get_all_start_methods()
    mp_context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = ProcessPoolExecutor(min(workers, len(chunks)), mp_context, _init_worker, (job,))
    parts = []
    try:
        for c, part in zip(chunks, pool.map(_pool_task, chunks)):
            parts.append(part)
            advance(len(c))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return parts


def compute(job: Job, items, workers: int | None, progress: Progress = silent, label: str = "features") -> Done:
    """Run ``job`` over ``items`` (``(index, path or None)``), in parallel when it pays."""
    chunks = [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    if workers is None:
        big = len(items) * max(1, len(job.views)) >= PARALLEL_MIN
        workers = _cpu_count() if big else 1
    parts = []
    with progress(label, len(items)) as advance:
        if workers <= 1 or len(chunks) <= 1:
            with blas_threads(1):
                for c in chunks:
                    parts.append(_run_chunk(job, c))
                    advance(len(c))
        else:
            parts = _compute_in_pool(job, chunks, workers, advance)
    return Done(
        ok=np.concatenate([p.ok for p in parts]),
        feats=np.concatenate([p.feats for p in parts], axis=1),
        waves=np.concatenate([p.waves for p in parts]) if job.keep_waves else None,
        sources=[s for p in parts for s in p.sources],
        errors=[e for p in parts for e in p.errors],
    )
