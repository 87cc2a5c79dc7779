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
    to a service running as another user). On an exception the temp file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, mode.replace("w", "x"), **open_kwargs) as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (newlines as given)."""
    with atomic_write(path, "w", newline="") as f:
        f.write(text)
