"""Telling systemd how the service is doing: readiness, the watchdog, stopping.

This is the whole of the ``sd_notify(3)`` protocol that a ``Type=notify`` service needs:
each message is one datagram of ``KEY=VALUE`` lines sent to the unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). A few lines of
:mod:`socket` do it, so the runtime needs no library for it. Outside systemd the variable is
unset and every call does nothing.

:class:`Watchdog` pings at half of systemd's ``WatchdogSec=``, as ``sd_watchdog_enabled(3)``
advises; it is driven by the audio loop itself, so a loop that wedges stops the pings and
systemd restarts the process.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send ``message`` (``"READY=1"``, ``"WATCHDOG=1"``, ...) to systemd; False if not under it.

    A socket that cannot be reached is logged, never raised: listening matters more.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(message.encode(), address)
    except OSError as e:
        log.warning("cannot notify systemd at %s: %s", os.environ["NOTIFY_SOCKET"], e)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between two pings systemd wants from this process, or None for no watchdog."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None


class Watchdog:
    """Pings systemd's watchdog at most once per interval; :meth:`alive` is cheap to call often."""

    def __init__(self, interval: float | None = None):
        self.interval = watchdog_interval() if interval is None else interval
        self._last = -float("inf")

    def alive(self) -> None:
        """The caller is making progress: ping if an interval has passed since the last ping."""
        if self.interval is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            notify("WATCHDOG=1")
