"""systemd's notification protocol: readiness and watchdog pings over $NOTIFY_SOCKET."""

import os

from deploy_fixtures import NotifySocket
from kwspi.deploy.notify import Watchdog, notify, watchdog_interval


def test_notify_does_nothing_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_watchdog_interval_is_half_of_systemds_and_only_for_this_process(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert watchdog_interval() is None


def test_watchdog_pings_at_most_once_per_interval(monkeypatch):
    with NotifySocket() as sd:
        monkeypatch.setenv("NOTIFY_SOCKET", sd.name)
        watchdog = Watchdog(interval=3600)
        watchdog.alive()
        watchdog.alive()
        assert sd.receive(timeout=1) == "WATCHDOG=1"
        assert sd.receive(timeout=0.1) is None
        assert notify("READY=1") and sd.receive(timeout=1) == "READY=1"


def test_an_unreachable_socket_is_logged_not_raised(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert notify("READY=1") is False
    assert "cannot notify systemd" in caplog.text
