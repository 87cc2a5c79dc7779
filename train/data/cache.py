"""The feature cache: one split's features on disk, keyed by what they were made from.

Features are written to ``<cache_dir>/<dataset fingerprint>/`` as ``.npy``
files (memory-mapped when read back):

- ``<split>-<examples>-<front end>.json``: which examples were loaded (``kept``), and the counts;
- ``<split>-<examples>-<front end>-k<kept>.npy``: unaugmented features (every eval split);
- ``<split>-<examples>-<front end>-k<kept>-<augment>-s<seed>-v<k>.npy``: augmented view ``k``.

The fingerprint hashes the relative path, size and mtime of every clip, noise recording
and list file, so adding, removing or rewriting a clip starts a fresh cache; ``<examples>``
hashes the split's example list (task and seed pick the unknown clips); ``<front end>``
is :meth:`FeatureConfig.hash`; ``<augment>`` is :meth:`AugmentConfig.hash`. The default
cache folder is ``<root>/.kwspi-cache``, or ``$XDG_CACHE_HOME/kwspi`` (``~/.cache/kwspi``)
when the data folder is read-only. Nothing ever deletes old cache files.

Many writers at once (sweep steps on several machines sharing the folder over NFS): atomic
publication, no lock. Each file is first written whole under a temp name unique to its
process and host (pid and random bits, in the same folder), then published in one atomic
step; the metadata goes last, so views without it are never trusted. A view's name says
everything it depends on (``<kept>`` too), so a name always means the same bytes, and a view
is published with ``link`` (which fails when the name exists) rather than ``rename``: a view
once there is never replaced, because on NFS a file replaced by another machine under a
reader's memory map turns stale (ESTALE, a SIGBUS). Only a file that does not hold what its
name says (a shape that does not match) is replaced. The metadata is small and read whole,
so it is replaced atomically. Why no lock: locks over NFS hang on lockd and a crashed holder
leaves one behind, while the worst the lock-free way costs is that steps starting the same
split at the same moment each compute it once, never a torn or mixed file (tested with two
processes writing one split). Per-step files would recompute every split in every step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kwspi import gsc
from kwspi.atomic import atomic_write, temp_path
from kwspi.features import FeatureConfig

log = logging.getLogger(__name__)

CACHE_DIR_NAME = ".kwspi-cache"
#: Bumped when the cache's file layout or contents change meaning.
CACHE_VERSION = 2  # 2: views named by their kept examples, published without replacing


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


def _publish_view(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` unless a valid file is already there (see the module doc)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "xb") as f:
            np.save(f, arr)
        try:
            os.link(tmp, path)
        except FileExistsError:
            if _read_view(path, arr.shape) is None:  # not what its name says: nobody can use it
                os.replace(tmp, path)
        except OSError:  # a file system without hard links: an atomic rename is the best left
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
class CachePlan:
    """Where one split's files live for one front end (and augmentation)."""

    folder: Path
    stem: str
    aug_hash: str | None
    seed: int

    @property
    def meta(self) -> Path:
        return self.folder / f"{self.stem}.json"

    def view(self, view: int | None, kept: list[int]) -> Path:
        """View ``view`` (``None``: unaugmented) of the examples ``kept``."""
        kept_hash = hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:8]
        if view is None:
            return self.folder / f"{self.stem}-k{kept_hash}.npy"
        return self.folder / f"{self.stem}-k{kept_hash}-{self.aug_hash}-s{self.seed}-v{view}.npy"


def read_cached(plan: CachePlan, wanted, cfg: FeatureConfig) -> tuple[dict, dict | None]:
    meta = _read_meta(plan.meta)
    if meta is None:
        return {}, None
    shape = (len(meta["kept"]), 1, cfg.n_mfcc, cfg.n_frames)
    found = {}
    for v in wanted:
        arr = _read_view(plan.view(v, meta["kept"]), shape)
        if arr is not None:
            found[v] = arr
    return found, meta


def write_cache(plan: CachePlan, computed: dict, kept: np.ndarray, stats: dict) -> None:
    meta = {"version": CACHE_VERSION, "kept": kept.tolist(), "stats": stats}
    try:
        for v, arr in computed.items():
            _publish_view(plan.view(v, meta["kept"]), arr)
        # Metadata last: views without it are never trusted.
        _write_atomic(plan.meta, lambda f: f.write(json.dumps(meta).encode()))
    except OSError as e:
        log.warning("could not write the feature cache in %s (%s); continuing without it", plan.folder, e)
