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

Features are cached on disk (:mod:`kwspi.train.data.cache`) and computed in a pool of
processes when there are many (:mod:`kwspi.train.data.pool`); one example's features come
from :mod:`kwspi.train.data.example`, which also says how augmented views are cached.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwspi import gsc
from kwspi.errors import DatasetError
from kwspi.features import FeatureConfig
from kwspi.gsc import TaskSpec
from kwspi.progress import Progress, silent
from kwspi.train.data.cache import (CachePlan, dataset_fingerprint, examples_hash, read_cached, relative_paths,
                                    resolve_cache_dir, write_cache)
from kwspi.train.data.example import example_features, load_noise
from kwspi.train.data.pool import Done, Job, blas_threads, compute
from kwspi.train.speech.augment import AugmentConfig, AugmentResources

log = logging.getLogger(__name__)

DEFAULT_VIEWS = 4
_SHOW_SKIPPED = 3


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
    def from_done(cls, done: Done, sample_rate: int, n_samples: int, computed: int) -> "LoadStats":
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
        for cached augmentation, none for fresh augmentation (then ``fresh`` holds the
        waveforms).
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

    def features_for_epoch(self, epoch: int, progress: Progress = silent) -> np.ndarray:
        """The features epoch ``epoch`` trains on: cached view ``epoch % len(views)``, or,
        for fresh augmentation, view ``epoch`` of every example computed now (about a
        millisecond of MFCC per example)."""
        if self.fresh is None:
            return self.views[epoch % len(self.views)]
        f = self.fresh
        out = np.empty((len(self), 1, f.cfg.n_mfcc, f.cfg.n_frames), np.float32)
        with progress(f"augmenting {self.split} (epoch {epoch + 1})", len(self)) as advance, blas_threads(1):
            for i, (wave, index) in enumerate(zip(f.waves, self.index)):
                out[i] = example_features(wave, f.cfg, f.aug, f.res, f.seed, int(index), epoch)
                advance(1)
        return out


def load_split(
    root,
    split: str,
    cfg: FeatureConfig = FeatureConfig(),
    task: TaskSpec = TaskSpec(),
    aug: AugmentConfig | None = AugmentConfig(),
    views: int | None = DEFAULT_VIEWS,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: Progress = silent,
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
        Called back while features are computed (:mod:`kwspi.progress`).
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
    progress: Progress
    workers: int | None

    @functools.cached_property
    def relative(self) -> list[str | None]:
        return relative_paths(self.root, self.examples)

    @property
    def items(self) -> list[tuple[int, str | None]]:
        return [(i, None if e.path is None else str(e.path)) for i, e in enumerate(self.examples)]

    def job(self, views, keep_waves: bool = False) -> Job:
        return Job(self.cfg, self.aug, self.res, self.seed, tuple(views), keep_waves)

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


def _check_loaded(ctx: _Context, done: Done) -> np.ndarray:
    if done.errors and not done.sources:  # silence examples alone are no data set
        raise DatasetError(
            f"{ctx.root}: no clip of the {ctx.split} split could be read (e.g. {done.errors[0]})"
        )
    return np.flatnonzero(done.ok)


def _load_fresh(ctx: _Context) -> FeatureSet:
    job = ctx.job((), keep_waves=True)
    done = compute(job, ctx.items, ctx.workers, ctx.progress, f"loading {ctx.split}")
    kept = _check_loaded(ctx, done)
    stats = LoadStats.from_done(done, ctx.cfg.sample_rate, ctx.cfg.clip_samples, computed=len(kept))
    fresh = _Fresh(np.ascontiguousarray(done.waves[kept]), ctx.cfg, ctx.aug, ctx.res, ctx.seed)
    return ctx.feature_set(kept, (), stats, fresh)


def _load_cached(ctx: _Context, views: int | None, cache_dir) -> FeatureSet:
    folder = resolve_cache_dir(ctx.root, cache_dir) / dataset_fingerprint(ctx.root)
    ex_hash = examples_hash(ctx.relative, [e.label for e in ctx.examples], ctx.labels)
    stem = f"{ctx.split}-{ex_hash}-{ctx.cfg.hash()}"
    plan = CachePlan(folder, stem, ctx.aug.hash() if ctx.aug else None, ctx.seed)
    wanted = [None] if ctx.aug is None else list(range(views))
    found, meta = read_cached(plan, wanted, ctx.cfg)
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
    write_cache(plan, computed, kept, stats.to_dict())
    stats = dataclasses.replace(stats, from_cache=len(found))
    return ctx.feature_set(kept, [found[v] if v in found else computed[v] for v in wanted], stats)


def _compute_views(ctx: _Context, views: list) -> tuple[np.ndarray, dict, LoadStats]:
    """Kept example positions, ``{view: float32 [n_kept, 1, n_mfcc, n_frames]}``, stats."""
    done = compute(ctx.job(views), ctx.items, ctx.workers, ctx.progress, f"features {ctx.split}")
    kept = _check_loaded(ctx, done)
    everything = len(kept) == len(done.ok)  # then skip a copy of up to a GB
    arrays = {v: done.feats[k] if everything else done.feats[k][kept] for k, v in enumerate(views)}
    n_computed = len(kept) * len(views)
    stats = LoadStats.from_done(done, ctx.cfg.sample_rate, ctx.cfg.clip_samples, computed=n_computed)
    return kept, arrays, stats
