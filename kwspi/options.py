"""What every command line of kwspi shares: option decorators and the progress bar.

Only CLI modules import this; libraries take a :data:`kwspi.progress.Progress` instead.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import click

from kwspi.progress import Advance


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[Advance]:
    """A :data:`kwspi.progress.Progress` that draws click's bar on stderr."""
    with click.progressbar(length=total, label=label, file=sys.stderr,
                           item_show_func=lambda status: status) as bar:
        yield lambda n, status=None: bar.update(n, status)
