"""Telling systemd how the service is doing: readiness and stopping.

This is the whole of the ``sd_notify(3)`` protocol that a ``Type=notify`` service needs:
each message is one datagram of ``KEY=VALUE`` lines sent to the unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). A few lines of
:mod:`socket` do it, so the runtime needs no library for it. Outside systemd the variable is
unset and every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

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

