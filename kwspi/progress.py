"""Progress reporting: libraries call back, only command lines draw.

A long job takes a ``progress`` argument of type :data:`Progress`: it calls
``progress(label, total)`` once, as a context manager, and gets ``advance(n, status=None)``
to call as work is done (``status``: a short text such as the running loss). The CLI
passes :func:`kwspi.options.progress_bar`, which draws click's bar on stderr; libraries,
tests and scripts default to :func:`silent`.
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator

Advance = Callable[..., None]
Progress = Callable[[str, int], ContextManager[Advance]]


@contextlib.contextmanager
def silent(label: str, total: int) -> Iterator[Advance]:
    """A :data:`Progress` that reports nothing."""
    yield lambda n, status=None: None
