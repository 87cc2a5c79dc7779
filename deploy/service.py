"""The listen loop: source -> detector -> output and hooks, with stop and reload.

:class:`Listener` pulls blocks from a source, feeds the :class:`~kwspi.deploy.engine.Detector`
and hands each detection to a callback. It stops at the end of the source or when
:meth:`Listener.stop` is called (sources check every 0.1 s at most, so a stop lands within a
second), and applies :meth:`Listener.reload` between two blocks: the model file is read
again and swapped in without closing the audio stream; if that fails the old model keeps
running and the log says why. :func:`signal_handlers` wires SIGTERM/SIGINT to stop and SIGHUP
to reload, for systemd (``systemctl reload kwspi``) and the terminal. Under systemd
(``Type=notify``) the first block of audio is what makes the service ready, so
``systemctl start`` returns, and a reload can follow, only once kwspi is listening; each
block then pings systemd's watchdog (``WatchdogSec=``), so a loop that wedges gets the
process restarted.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

from kwspi.errors import KwspiError

from kwspi.deploy.decision import Detection
from kwspi.deploy.engine import Detector
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.notify import Watchdog, notify
from kwspi.deploy.sources import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenStats:
    """What one run did.

    Attributes
    ----------
    audio_s:
        Seconds of audio processed.
    wall_s:
        Seconds the loop ran.
    detections:
        Number of detections.
    reloads, failed_reloads:
        Model reloads applied and refused.
    """

    audio_s: float
    wall_s: float
    detections: int
    reloads: int
    failed_reloads: int


class Listener:
    """Runs a detector over a source until the source ends or :meth:`stop` is called.

    Parameters
    ----------
    source:
        Where audio comes from (:mod:`kwspi.deploy.sources`, :mod:`kwspi.deploy.mic`).
    detector:
        The detector; its model is replaced in place on reload.
    load_model:
        Returns a freshly loaded model for a reload (usually the same path read again).
    on_detection:
        Called on the listening thread with each detection; keep it quick (printing, or
        handing to :class:`~kwspi.deploy.hooks.HookSet`).
    """

    def __init__(self, source: Source, detector: Detector, load_model: Callable[[], LoadedModel],
                 on_detection: Callable[[Detection], None]):
        self.source, self.detector = source, detector
        self._load_model, self._on_detection = load_model, on_detection
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.reloads = self.failed_reloads = 0

    def stop(self) -> None:
        """Ask the loop to end (safe from signal handlers and other threads)."""
        self._stop.set()

    def reload(self) -> None:
        """Ask the loop to reload the model before the next block."""
        self._reload.set()

    def run(self) -> ListenStats:
        """Listen until the source ends or :meth:`stop`; returns what happened."""
        start, count = time.monotonic(), 0
        log.info("listening to %s", self.source.description)
        ready, watchdog = False, Watchdog()
        with contextlib.closing(self.source.blocks(self._stop)) as blocks:
            for block in blocks:
                if not ready:
                    ready = True
                    notify(f"READY=1\nSTATUS=listening to {self.source.description}")
                watchdog.alive()
                if self._reload.is_set():
                    self._reload.clear()
                    self._apply_reload()
                for detection in self.detector.process(block):
                    count += 1
                    self._on_detection(detection)
                if self._stop.is_set():
                    break
        notify("STOPPING=1")
        stats = ListenStats(self.detector.time, time.monotonic() - start, count, self.reloads, self.failed_reloads)
        log.info("stopped after %.2f s of audio (%.2f s wall): %d detection(s)", stats.audio_s, stats.wall_s, count)
        return stats

    def _apply_reload(self) -> None:
        old = self.detector.model.path
        try:
            self.detector.replace_model(self._load_model())
        except KwspiError as e:
            self.failed_reloads += 1
            log.error("reload failed, keeping the running model %s: %s", old, e)
            return
        except Exception as e:  # a file malformed in a way nobody foresaw must not end the service
            self.failed_reloads += 1
            log.error("reload failed, keeping the running model %s: %s: %s", old, type(e).__name__, e,
                      exc_info=True)
            return
        self.reloads += 1
        model = self.detector.model
        log.info("reloaded model %s (labels %s, thresholds %s)", model.path, ", ".join(model.info.labels),
                 _fmt(self.detector.thresholds))


def _fmt(thresholds: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in thresholds.items())


@contextlib.contextmanager
def signal_handlers(listener: Listener):
    """SIGTERM and SIGINT stop ``listener``, SIGHUP reloads its model; restored on exit.

    Does nothing outside the main thread, where Python cannot install handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = {
        signal.SIGTERM: lambda *_: listener.stop(),
        signal.SIGINT: lambda *_: listener.stop(),
        signal.SIGHUP: lambda *_: listener.reload(),
    }
    previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
