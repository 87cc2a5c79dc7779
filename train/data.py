"""Training and evaluation data: GSC-layout clips to cached MFCC features (paper section 1.1).

:func:`load_split` takes one split of a GSC-layout folder with the paper's class balance
(:func:`kwspi.gsc.build_split`: all K keyword clips, K//10 unknown, K//10 silence), loads
every clip robustly, and returns a :class:`FeatureSet` of float32 features shaped
``[n, 1, n_mfcc, n_frames]`` (cepstra on the height axis, time on the width axis) with
int64 labels.

Loading never stops half-way through a data set: a clip at another sampling rate is
resampled with soxr, a clip shorter than the model window is zero-padded at the end and a
longer one is cut (the paper's loader raised on those; GSC has none), and an unreadable
clip is skipped. Each load logs one summary line with the counts. Silence examples are
all-zero clips. Clips are held as 16-bit PCM after loading, which is lossless for GSC's
16-bit files and makes a cached and a freshly computed view bit-identical.

**Cache.** Features are written to ``<cache_dir>/<dataset fingerprint>/`` as ``.npy``
files (memory-mapped when read back), atomically (temp file, then rename):

- ``<split>-<examples>-<front end>.json``: which examples were loaded, and the counts;
- ``<split>-<examples>-<front end>.npy``: unaugmented features (every eval split);
- ``<split>-<examples>-<front end>-<augment>-s<seed>-v<k>.npy``: augmented view ``k``.

The fingerprint hashes the relative path, size and mtime of every clip, noise recording
and list file, so adding, removing or rewriting a clip starts a fresh cache; ``<examples>``
hashes the split's example list (task and seed pick the unknown clips); ``<front end>``
is :meth:`FeatureConfig.hash`; ``<augment>`` is :meth:`AugmentConfig.hash`. The default
cache folder is ``<root>/.kwspi-cache``, or ``$XDG_CACHE_HOME/kwspi`` (``~/.cache/kwspi``)
when the data folder is read-only. Nothing ever deletes old cache files.

**Augmented training views (a decision).** Augmentation acts on the waveform before the
MFCC, so a training example has no single set of features to cache. Instead ``views``
augmented copies of every training example are computed once and cached: view ``k`` of
example ``i`` is drawn from ``np.random.default_rng([seed, i, k])``, and epoch ``e``
trains on view ``e % views``. This trades augmentation diversity (``views`` distinct
shifts and noise mixes per clip instead of one per epoch) for not recomputing about a
millisecond of MFCC per clip per epoch on the CPU. With ``views=None`` (or 0) nothing is
cached: the waveforms stay in memory and the dataset of epoch ``e`` computes view ``e``
of each example in its ``__getitem__``, a fresh augmentation every epoch; its epoch ``e``
equals cached view ``e``. Evaluation splits are never augmented.

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
import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import struct
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import click
import numpy as np
from threadpoolctl import threadpool_limits
import soxr

from kwspi import gsc
from kwspi.atomic import atomic_write
from kwspi.clips import load_clip
from kwspi.errors import DatasetError, WavError
from kwspi.features import FeatureConfig, clip_features
from kwspi.gsc import TaskSpec
from kwspi.train.augment import AugmentConfig, AugmentResources, augment_features, augment_waveform
from kwspi.wavio import read_wav

log = logging.getLogger(__name__)

DEFAULT_VIEWS = 4
CACHE_DIR_NAME = ".kwspi-cache"
#: Bumped when the cache's file layout or contents change meaning.
CACHE_VERSION = 1
#: Feature computations below which a process pool costs more to start than it saves.
PARALLEL_MIN = 1000
_CHUNK = 64
_SHOW_SKIPPED = 3
# A damaged file raises one of these; anything else is a bug and keeps its traceback.
_UNREADABLE = (WavError, ValueError, OSError, EOFError, struct.error)


# ---------------------------------------------------------------------------------------
# Loading one clip


def load_noise(root, sample_rate: int) -> tuple[np.ndarray, ...]:
    """The ``_background_noise_`` recordings as float32 at ``sample_rate``; bad files skipped."""
    out = []
    for path in gsc.noise_files(root):
        try:
            x, rate = read_wav(path)
            if rate != sample_rate:
                x = soxr.resample(x, rate, sample_rate)
        except _UNREADABLE as e:
            log.warning("skipping background noise %s", _reason(path, e))
            continue
        out.append(np.ascontiguousarray(x, dtype=np.float32))
    return tuple(out)


def view_rng(seed: int, index: int, view: int) -> np.random.Generator:
    """The generator of augmented view ``view`` of example ``index`` (see module docstring)."""
    return np.random.default_rng([seed, index, view])


def example_features(
    wave: np.ndarray,
    cfg: FeatureConfig,
    aug: AugmentConfig | None = None,
    res: AugmentResources | None = None,
    seed: int = 0,
    index: int = 0,
    view: int | None = None,
) -> np.ndarray:
    """Features of one example, float32 ``[1, n_mfcc, n_frames]``.

    ``view=None`` (or ``aug=None``) gives the unaugmented features; otherwise the clip is
    augmented with :func:`view_rng` ``(seed, index, view)`` first. ``wave`` is int16
    ``[cfg.clip_samples]`` as :func:`load_clip` returns it.
    """
    if aug is None or view is None:
        return clip_features(wave, cfg)[None]
    rng = view_rng(seed, index, view)
    x = augment_waveform(wave.astype(np.float32) / np.float32(32768.0), rng, aug, res)
    return augment_features(clip_features(x, cfg), rng, aug)[None]


def _reason(path, err: Exception) -> str:
    return str(err) if isinstance(err, WavError) else f"{path}: {type(err).__name__}: {err}"


# ---------------------------------------------------------------------------------------
# Computing many examples, in one process or a pool


@dataclass(frozen=True, eq=False)
class _Job:
    """What a worker needs to turn examples into waves and/or feature views."""

    cfg: FeatureConfig
    aug: AugmentConfig | None
    res: AugmentResources | None
    seed: int
    views: tuple[int | None, ...]  # views to compute; None: unaugmented
    keep_waves: bool = False


@dataclass
class _Done:
    """The outcome of a run of examples, in the order given."""

    ok: np.ndarray  # bool [m]
    feats: np.ndarray  # float32 [len(views), m, 1, n_mfcc, n_frames]
    waves: np.ndarray | None  # int16 [m, clip_samples]
    sources: list[tuple[int, int]]  # (rate, samples) per loaded clip file
    errors: list[str]


def _run_chunk(job: _Job, chunk: list[tuple[int, str | None]]) -> _Done:
    cfg, m = job.cfg, len(chunk)
    done = _Done(
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
            except _UNREADABLE as e:
                done.errors.append(_reason(path, e))
                continue
            done.sources.append((rate, n))
        done.ok[j] = True
        if done.waves is not None:
            done.waves[j] = wave
        for v, view in enumerate(job.views):
            done.feats[v, j] = example_features(wave, cfg, job.aug, job.res, job.seed, index, view)
    return done


_worker_job: _Job | None = None  # set once in each pool process by _init_worker


def _init_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job
    pin_blas_thread()
    # Ctrl-C is the parent's to handle: it cancels the queued chunks and shuts the pool
    # down, instead of every worker printing its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_task(chunk):
    return _run_chunk(_worker_job, chunk)


@contextlib.contextmanager
def blas_threads(n: int = 1):
    """Run a block with the BLAS limited to ``n`` threads, then restore the counts.

    For the workers of a ``DataLoader`` over a fresh-augmentation set,
    ``worker_init_fn=pin_blas_thread``.
    """
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def pin_blas_thread(*_) -> None:
    """Limit the BLAS to one thread for the rest of this process (a ``worker_init_fn``)."""
    threadpool_limits(limits=1, user_api="blas")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _progress(enabled: bool, length: int, label: str):
    if enabled:
        return click.progressbar(length=length, label=label, file=sys.stderr)
    return contextlib.nullcontext(_NoBar())


class _NoBar:
    def update(self, n: int) -> None:
        pass


def _compute_in_pool(job: _Job, chunks: list, workers: int, bar) -> list[_Done]:
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
            bar.update(len(c))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return parts


def _compute(job: _Job, items, workers: int | None, progress: bool, label: str) -> _Done:
    """Run ``job`` over ``items`` (``(index, path or None)``), in parallel when it pays."""
    chunks = [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    if workers is None:
        big = len(items) * max(1, len(job.views)) >= PARALLEL_MIN
        workers = _cpu_count() if big else 1
    parts = []
    with _progress(progress, len(items), label) as bar:
        if workers <= 1 or len(chunks) <= 1:
            with blas_threads(1):
                for c in chunks:
                    parts.append(_run_chunk(job, c))
                    bar.update(len(c))
        else:
            parts = _compute_in_pool(job, chunks, workers, bar)
    return _Done(
        ok=np.concatenate([p.ok for p in parts]),
        feats=np.concatenate([p.feats for p in parts], axis=1),
        waves=np.concatenate([p.waves for p in parts]) if job.keep_waves else None,
        sources=[s for p in parts for s in p.sources],
        errors=[e for p in parts for e in p.errors],
    )


# ---------------------------------------------------------------------------------------
# Statistics and the summary line


@dataclass(frozen=True)
class LoadStats:
    """What loading one split did.

    Attributes
    ----------
    examples:
        Examples in the split as :func:`kwspi.gsc.build_split` gives it, skipped ones included.
    skipped:
        Clips that could not be read and are left out.
    resampled, padded, cut:
        Clips read at another rate, shorter than the window, longer than the window.
    resampled_from:
        The distinct source rates (Hz) that needed resampling.
    skipped_examples:
        ``"path: reason"`` for the first few skipped clips.
    computed:
        Feature matrices (or waveforms, without a cache) computed by this call; 0 when
        everything came from the cache.
    from_cache:
        Feature files read from the cache by this call.
    """

    examples: int
    skipped: int = 0
    resampled: int = 0
    padded: int = 0
    cut: int = 0
    resampled_from: tuple[int, ...] = ()
    skipped_examples: tuple[str, ...] = ()
    computed: int = 0
    from_cache: int = 0

    @classmethod
    def from_done(cls, done: _Done, sample_rate: int, n_samples: int, computed: int) -> "LoadStats":
        rates = [r for r, _ in done.sources if r != sample_rate]
        return cls(
            examples=len(done.ok),
            skipped=len(done.errors),
            resampled=len(rates),
            padded=sum(n < n_samples for _, n in done.sources),
            cut=sum(n > n_samples for _, n in done.sources),
            resampled_from=tuple(sorted(set(rates))),
            skipped_examples=tuple(done.errors[:_SHOW_SKIPPED]),
            computed=computed,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LoadStats":
        d = dict(d)
        d["resampled_from"] = tuple(d.get("resampled_from", ()))
        d["skipped_examples"] = tuple(d.get("skipped_examples", ()))
        return cls(**d)


def _log_summary(split: str, stats: LoadStats, sample_rate: int, fresh: bool) -> None:
    parts = [f"{split}: {stats.examples - stats.skipped} of {stats.examples} examples loaded"]
    if stats.skipped:
        parts.append(f"{stats.skipped} unreadable clip(s) skipped (e.g. {stats.skipped_examples[0]})")
    if stats.resampled:
        rates = ", ".join(str(r) for r in stats.resampled_from)
        parts.append(f"{stats.resampled} clip(s) resampled to {sample_rate} Hz from {rates} Hz")
    if stats.padded or stats.cut:
        parts.append(f"{stats.padded} zero-padded and {stats.cut} cut to the window")
    if fresh:
        parts.append("waveforms held in memory, augmented afresh every epoch")
    else:
        parts.append(f"{stats.computed} feature matrices computed, {stats.from_cache} file(s) from the cache")
    level = logging.WARNING if stats.skipped or stats.resampled else logging.INFO
    log.log(level, "; ".join(parts))


# ---------------------------------------------------------------------------------------
# The cache


def dataset_fingerprint(root) -> str:
    """16 hex digits that change when any clip, noise file or list file changes.

    Hashes the relative path, size and modification time (ns) of every ``.wav`` in the
    word and noise folders and of the list files; hidden folders (the cache) are ignored.
    """
    root = Path(root)
    entries = []
    for d in os.scandir(root):
        if d.is_file() and d.name in (gsc.VALIDATION_LIST, gsc.TESTING_LIST):
            entries.append((d.name, d.stat()))
        elif d.is_dir() and not d.name.startswith("."):
            clips = (f for f in os.scandir(d.path) if f.name.endswith(".wav"))
            entries.extend((f"{d.name}/{f.name}", f.stat()) for f in clips)
    h = hashlib.sha256(f"kwspi-cache-{CACHE_VERSION}\n".encode())
    for rel, st in sorted(entries, key=lambda e: e[0]):
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def resolve_cache_dir(root, cache_dir=None) -> Path:
    """``cache_dir`` if given, else ``<root>/.kwspi-cache``, else the user's cache folder."""
    if cache_dir is not None:
        return Path(cache_dir)
    local = Path(root) / CACHE_DIR_NAME
    try:
        local.mkdir(exist_ok=True)
        if os.access(local, os.W_OK):
            return local
    except OSError:
        pass
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kwspi"


def examples_hash(paths: list[str | None], labels: list[int], names: tuple[str, ...]) -> str:
    """12 hex digits naming a split's exact example list (relative paths, labels, class names)."""
    text = json.dumps({"labels": list(names), "examples": list(zip(paths, labels))}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def relative_paths(root, examples: list[gsc.Example]) -> list[str | None]:
    """Each example's clip as ``word/file.wav`` (``None`` for silence)."""
    # String slicing: Path.relative_to was a third of a warm (cached) load's time.
    prefix = str(Path(root)) + os.sep
    out = []
    for e in examples:
        p = None if e.path is None else str(e.path)
        if p is not None:
            p = p[len(prefix):] if p.startswith(prefix) else Path(p).relative_to(root).as_posix()
            p = p.replace(os.sep, "/")
        out.append(p)
    return out


def _write_atomic(path: Path, write: Callable) -> None:
    with atomic_write(path) as f:
        write(f)


def _read_view(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """A cached view, memory-mapped, or ``None`` when missing or not the expected shape."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return arr if arr.shape == shape and arr.dtype == np.float32 else None


def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    valid = isinstance(meta, dict) and meta.get("version") == CACHE_VERSION
    return meta if valid and isinstance(meta.get("kept"), list) and "stats" in meta else None


@dataclass(frozen=True)
class _CachePlan:
    """Where one split's files live for one front end (and augmentation)."""

    folder: Path
    stem: str
    aug_hash: str | None
    seed: int

    @property
    def meta(self) -> Path:
        return self.folder / f"{self.stem}.json"

    def view(self, view: int | None) -> Path:
        if view is None:
            return self.folder / f"{self.stem}.npy"
        return self.folder / f"{self.stem}-{self.aug_hash}-s{self.seed}-v{view}.npy"


# ---------------------------------------------------------------------------------------
# Data sets for torch


def _torch():
    # Imported on first use: pool workers import this module and need no torch.
    import torch

    return torch


class ViewDataset:
    """Map-style dataset over fixed features, for ``torch.utils.data.DataLoader``.

    Items are ``(x, y)``: x float32 tensor ``[1, n_mfcc, n_frames]``, y an int label.
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray):
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return _torch().from_numpy(np.array(self.features[i])), int(self.labels[i])


class FreshDataset:
    """Map-style dataset that augments each example afresh: item ``i`` is view ``epoch``.

    Computes about a millisecond of MFCC per item; use DataLoader workers for speed.
    """

    def __init__(self, waves, labels, index, cfg, aug, res, seed: int, epoch: int):
        self.waves, self.labels, self.index = waves, labels, index
        self.cfg, self.aug, self.res, self.seed, self.epoch = cfg, aug, res, seed, epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        index = int(self.index[i])
        f = example_features(self.waves[i], self.cfg, self.aug, self.res, self.seed, index, self.epoch)
        return _torch().from_numpy(f), int(self.labels[i])


@dataclass(frozen=True, eq=False)
class _Fresh:
    waves: np.ndarray  # int16 [n, clip_samples]
    cfg: FeatureConfig
    aug: AugmentConfig
    res: AugmentResources
    seed: int


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """One split, ready for training or evaluation.

    Attributes
    ----------
    split:
        ``"training"``, ``"validation"`` or ``"testing"``.
    label_names:
        Class names in label-index order (the task's keywords, ``_silence_``, ``_unknown_``).
    labels:
        int64 ``[n]``.
    paths:
        Each example's clip relative to the data folder, ``None`` for silence.
    index:
        int64 ``[n]``: each example's position in :func:`kwspi.gsc.build_split`'s list,
        which seeds its augmented views (skipped clips leave gaps).
    views:
        float32 ``[n, 1, n_mfcc, n_frames]`` arrays: one for an unaugmented set, ``views``
        for cached augmentation, none for fresh augmentation.
    stats:
        What loading did (:class:`LoadStats`).
    """

    split: str
    label_names: tuple[str, ...]
    labels: np.ndarray
    paths: tuple[str | None, ...]
    index: np.ndarray
    views: tuple[np.ndarray, ...]
    stats: LoadStats
    fresh: _Fresh | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def features(self) -> np.ndarray:
        """float32 ``[n, 1, n_mfcc, n_frames]`` of epoch 0 (all epochs, for an unaugmented set)."""
        return self.features_for_epoch(0)

    def features_for_epoch(self, epoch: int) -> np.ndarray:
        """The cached features epoch ``epoch`` trains on: view ``epoch % len(views)``."""
        if self.fresh is not None:
            raise ValueError("fresh augmentation has no fixed features; use for_epoch(epoch)")
        return self.views[epoch % len(self.views)]

    def for_epoch(self, epoch: int):
        """A map-style dataset (``(x [1, n_mfcc, n_frames], label)`` items) for one epoch."""
        if self.fresh is None:
            return ViewDataset(self.features_for_epoch(epoch), self.labels)
        f = self.fresh
        return FreshDataset(f.waves, self.labels, self.index, f.cfg, f.aug, f.res, f.seed, epoch)

    def batches(
        self, epoch: int = 0, batch_size: int = 100, shuffle: bool = True, generator=None
    ) -> Iterator[tuple]:
        """Yield ``(x, y)`` tensors: x float32 ``[b, 1, n_mfcc, n_frames]``, y int64 ``[b]``.

        Cached features are gathered by fancy indexing, far cheaper than collating single
        items; fresh augmentation computes each item here, in this process.
        """
        torch = _torch()
        n = len(self)
        order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
        ds = self.for_epoch(epoch)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if self.fresh is None:
                x = torch.from_numpy(np.ascontiguousarray(ds.features[idx]))  # [b, 1, n_mfcc, T]
            else:
                x = torch.stack([ds[int(i)][0] for i in idx])
            yield x, torch.from_numpy(self.labels[idx])


# ---------------------------------------------------------------------------------------
# Loading a split


def load_split(
    root,
    split: str,
    cfg: FeatureConfig = FeatureConfig(),
    task: TaskSpec = TaskSpec(),
    aug: AugmentConfig | None = AugmentConfig(),
    views: int | None = DEFAULT_VIEWS,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> FeatureSet:
    """Load one split of a GSC-layout folder as features, from the cache when possible.

    Parameters
    ----------
    root:
        The data folder (GSC layout; see :mod:`kwspi.gsc` for the split rule).
    split:
        ``"training"``, ``"validation"`` or ``"testing"``.
    cfg:
        The front end; its hash keys the cache.
    task:
        Keywords and the unknown/silence fractions.
    aug:
        Augmentation of the training split (the paper's by default); ignored for the
        evaluation splits. ``None`` or nothing enabled: unaugmented features.
    views:
        Augmented views cached per training example; ``None`` or 0: fresh augmentation
        every epoch, nothing cached.
    seed:
        Seeds the choice of unknown clips and every augmented view.
    cache_dir:
        Where the cache lives (default: see the module docstring).
    progress:
        Show a progress bar on stderr while computing.
    workers:
        Processes for computing; ``None``: one per core for large jobs, else one.

    Returns
    -------
    FeatureSet
    """
    if views is not None and views < 0:
        raise ValueError(f"views must be >= 0 or None, got {views}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    root = Path(root)
    examples = gsc.build_split(root, split, task, seed)
    if not examples:
        raise DatasetError(f"{root}: the {split} split has no examples")
    aug = aug if split == "training" and aug is not None and aug.any_enabled else None
    res = None
    if aug is not None:
        aug, res = _resources(root, cfg, aug)
    ctx = _Context(root, split, cfg, task.labels, examples, aug, res, seed, progress, workers)
    fs = _load_fresh(ctx) if aug is not None and not views else _load_cached(ctx, views, cache_dir)
    _log_summary(split, fs.stats, cfg.sample_rate, fs.fresh is not None)
    return fs


@dataclass(frozen=True, eq=False)
class _Context:
    root: Path
    split: str
    cfg: FeatureConfig
    labels: tuple[str, ...]
    examples: list[gsc.Example]
    aug: AugmentConfig | None
    res: AugmentResources | None
    seed: int
    progress: bool
    workers: int | None

    @functools.cached_property
    def relative(self) -> list[str | None]:
        return relative_paths(self.root, self.examples)

    @property
    def items(self) -> list[tuple[int, str | None]]:
        return [(i, None if e.path is None else str(e.path)) for i, e in enumerate(self.examples)]

    def job(self, views, keep_waves: bool = False) -> _Job:
        return _Job(self.cfg, self.aug, self.res, self.seed, tuple(views), keep_waves)

    def feature_set(self, kept: np.ndarray, views, stats: LoadStats, fresh=None) -> FeatureSet:
        ex = [self.examples[i] for i in kept]
        return FeatureSet(
            split=self.split,
            label_names=self.labels,
            labels=np.array([e.label for e in ex], np.int64),
            paths=tuple(self.relative[i] for i in kept),
            index=np.asarray(kept, np.int64),
            views=tuple(views),
            stats=stats,
            fresh=fresh,
        )


def _resources(root: Path, cfg: FeatureConfig, aug: AugmentConfig):
    noise = load_noise(root, cfg.sample_rate) if aug.background_noise else ()
    if aug.background_noise and not noise:
        log.warning("%s: no background noise recordings in %s; training without noise mixing",
                    root, gsc.BACKGROUND_NOISE_DIR)
        aug = dataclasses.replace(aug, background_noise=False)
    return aug, AugmentResources(cfg.sample_rate, noise)


def _check_loaded(ctx: _Context, done: _Done) -> np.ndarray:
    if done.errors and not done.sources:  # silence examples alone are no data set
        raise DatasetError(
            f"{ctx.root}: no clip of the {ctx.split} split could be read (e.g. {done.errors[0]})"
        )
    return np.flatnonzero(done.ok)


def _load_fresh(ctx: _Context) -> FeatureSet:
    job = ctx.job((), keep_waves=True)
    done = _compute(job, ctx.items, ctx.workers, ctx.progress, f"loading {ctx.split}")
    kept = _check_loaded(ctx, done)
    stats = LoadStats.from_done(done, ctx.cfg.sample_rate, ctx.cfg.clip_samples, computed=len(kept))
    fresh = _Fresh(np.ascontiguousarray(done.waves[kept]), ctx.cfg, ctx.aug, ctx.res, ctx.seed)
    return ctx.feature_set(kept, (), stats, fresh)


def _load_cached(ctx: _Context, views: int | None, cache_dir) -> FeatureSet:
    folder = resolve_cache_dir(ctx.root, cache_dir) / dataset_fingerprint(ctx.root)
    ex_hash = examples_hash(ctx.relative, [e.label for e in ctx.examples], ctx.labels)
    stem = f"{ctx.split}-{ex_hash}-{ctx.cfg.hash()}"
    plan = _CachePlan(folder, stem, ctx.aug.hash() if ctx.aug else None, ctx.seed)
    wanted = [None] if ctx.aug is None else list(range(views))
    found, meta = _read_cached(plan, wanted, ctx.cfg)
    missing = [v for v in wanted if v not in found]
    if not missing:
        stats = dataclasses.replace(LoadStats.from_dict(meta["stats"]), computed=0, from_cache=len(found))
        return ctx.feature_set(np.array(meta["kept"], np.int64), [found[v] for v in wanted], stats)
    kept, computed, stats = _compute_views(ctx, missing)
    if found and meta["kept"] != kept.tolist():
        # Which clips load changed under an unchanged fingerprint (permissions, a flaky
        # disk): the cached views hold other examples, so rebuild them all.
        log.warning("%s: cached %s features are stale; recomputing", ctx.root, ctx.split)
        found = {}
        kept, computed, stats = _compute_views(ctx, wanted)
    _write_cache(plan, computed, kept, stats)
    stats = dataclasses.replace(stats, from_cache=len(found))
    return ctx.feature_set(kept, [found[v] if v in found else computed[v] for v in wanted], stats)


def _compute_views(ctx: _Context, views: list) -> tuple[np.ndarray, dict, LoadStats]:
    """Kept example positions, ``{view: float32 [n_kept, 1, n_mfcc, n_frames]}``, stats."""
    done = _compute(ctx.job(views), ctx.items, ctx.workers, ctx.progress, f"features {ctx.split}")
    kept = _check_loaded(ctx, done)
    everything = len(kept) == len(done.ok)  # then skip a copy of up to a GB
    arrays = {v: done.feats[k] if everything else done.feats[k][kept] for k, v in enumerate(views)}
    n_computed = len(kept) * len(views)
    stats = LoadStats.from_done(done, ctx.cfg.sample_rate, ctx.cfg.clip_samples, computed=n_computed)
    return kept, arrays, stats


def _read_cached(plan: _CachePlan, wanted, cfg: FeatureConfig) -> tuple[dict, dict | None]:
    meta = _read_meta(plan.meta)
    if meta is None:
        return {}, None
    shape = (len(meta["kept"]), 1, cfg.n_mfcc, cfg.n_frames)
    found = {}
    for v in wanted:
        arr = _read_view(plan.view(v), shape)
        if arr is not None:
            found[v] = arr
    return found, meta


def _write_cache(plan: _CachePlan, computed: dict, kept: np.ndarray, stats: LoadStats) -> None:
    meta = {"version": CACHE_VERSION, "kept": kept.tolist(), "stats": stats.to_dict()}
    try:
        for v, arr in computed.items():
            _write_atomic(plan.view(v), lambda f, a=arr: np.save(f, a))
        # Metadata last: views without it are never trusted.
        _write_atomic(plan.meta, lambda f: f.write(json.dumps(meta).encode()))
    except OSError as e:
        log.warning("could not write the feature cache in %s (%s); continuing without it", plan.folder, e)
