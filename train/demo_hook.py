"""The hook ``kwspi demo`` passes to ``kwspi listen``: the smallest useful hook there is.

``kwspi listen --hook kwspi.train.demo_hook:on_detect`` calls :func:`on_detect` on a worker
thread for every detection. Copy it to start your own: switch a light, send a message.
"""

from __future__ import annotations

import sys


def on_detect(detection) -> None:
    """Say what was heard, on stderr: stdout carries ``--json`` lines and must stay parseable."""
    print(f"hook: heard {detection.label!r} at {detection.time:.2f} s (score {detection.score:.2f})",
          file=sys.stderr, flush=True)
