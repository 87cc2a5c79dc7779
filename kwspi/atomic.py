"""Writing files so that a crash never leaves half of one.

Everything kwspi writes for later (clips, caches, checkpoints, models, truth files) goes to
a temp file beside its target, then is renamed over it: on POSIX the rename is atomic, so
readers see the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def temp_path(path) -> Path:
    """A fresh temp name beside ``path`` (same folder, so the rename stays atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", **open_kwargs):
    """Open a temp file for writing; on a clean exit rename it over ``path``.

    The temp file is created with mode ``"x"``, so it gets the umask's permissions
    (``tempfile.mkstemp`` would give 0600: a model or clip written that way is unreadable
    to a service running as another user). It is synced before the rename and the folder
    after it, so a power cut (a Pi unplugged) leaves the old file or the whole new one, not
    an empty one. On an exception the temp file is removed and ``path`` is left as it was.
    The first write into a folder removes the temp files that writers which died (kill -9)
    left there.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent not in _swept:
        _remove_stale(path.parent)
        _swept.add(path.parent)
    tmp = temp_path(path)
    try:
        with open(tmp, mode.replace("w", "x"), **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


#: Folders whose stale temp files this process has removed (once is enough: a scan per
#: write would cost a folder of N clips N^2 directory entries).
_swept: set[Path] = set()


def _remove_stale(folder: Path) -> None:
    for tmp in folder.glob(".*.*.*.tmp"):
        pid = tmp.name.rsplit(".", 3)[-3]  # temp_path's .NAME.PID.HEX.tmp
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (newlines as given)."""
    with atomic_write(path, "w", newline="") as f:
        f.write(text)
