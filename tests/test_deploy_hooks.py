"""Hooks: loading by name or file, isolation of failing and hanging hooks, shell commands."""

import logging
import os
import threading
import time

import pytest

from kwspi.deploy.decision import Detection
from kwspi.deploy.hooks import HookError, HookRunner, HookSet, ShellHook, load_hook


def det(label="low", t=1.0):
    return Detection(label, 0.9, t, time.time())


def test_load_hook_from_a_file_and_from_a_module(tmp_path, monkeypatch):
    (tmp_path / "myhooks.py").write_text("calls = []\ndef on_detect(d):\n    calls.append(d.label)\n")
    fn = load_hook(f"{tmp_path}/myhooks.py:on_detect")
    fn(det("high"))
    assert fn.__globals__["calls"] == ["high"]
    monkeypatch.chdir(tmp_path)  # module:function also finds modules in the current directory
    monkeypatch.delitem(__import__("sys").modules, "myhooks", raising=False)
    assert load_hook("myhooks:on_detect").__name__ == "on_detect"
    assert load_hook("json:dumps").__module__ == "json"


@pytest.mark.parametrize("spec,message", [
    ("no_such_module_xyz:f", r"cannot import no_such_module_xyz \(ModuleNotFoundError"),
    ("json:no_such_function", "json has no attribute 'no_such_function'"),
    ("json", "expected module:function"),
    ("json:", "expected module:function"),
    ("missing/hooks.py:f", "no such file missing/hooks.py"),
    ("json:__doc__", "is not callable"),
])
def test_hook_errors_are_one_line(spec, message):
    with pytest.raises(HookError, match=message) as info:
        load_hook(spec)
    assert "\n" not in str(info.value)


def test_hook_file_that_raises_on_import(tmp_path):
    (tmp_path / "broken.py").write_text("import nonexistent_dependency_xyz\n")
    with pytest.raises(HookError, match=r"cannot load .*broken.py \(ModuleNotFoundError"):
        load_hook(f"{tmp_path}/broken.py:f")


def test_raising_hook_is_logged_with_traceback_and_the_next_detection_delivered(caplog):
    seen = []

    def flaky(d):
        if d.label == "boom":
            raise RuntimeError("hook bug")
        seen.append(d.label)

    runner = HookRunner(flaky, "flaky")
    with caplog.at_level(logging.ERROR, logger="kwspi.deploy.hooks"):
        for label in ("boom", "low", "high"):
            runner.submit(det(label))
        assert runner.close(timeout=5.0) == 0
    assert seen == ["low", "high"]
    assert (runner.delivered, runner.failed) == (2, 1)
    record = next(r for r in caplog.records if "hook flaky failed" in r.getMessage())
    assert record.exc_info and "hook bug" in str(record.exc_info[1])


def test_hook_calling_sys_exit_keeps_its_worker_and_gets_the_next_detection(caplog):
    import sys

    seen = []

    def quits(d):
        if not seen:
            seen.append("exit")
            sys.exit(3)
        seen.append(d.label)

    runner = HookRunner(quits, "quits")
    with caplog.at_level(logging.ERROR, logger="kwspi.deploy.hooks"):
        for label in ("low", "high", "low"):
            assert runner.submit(det(label))
        assert runner.close(timeout=5.0) == 0
    assert seen == ["exit", "high", "low"]
    assert (runner.delivered, runner.failed, runner.dropped) == (2, 1, 0)
    record = next(r for r in caplog.records if "hook quits failed" in r.getMessage())
    assert record.exc_info and isinstance(record.exc_info[1], SystemExit)


def test_hanging_hook_drops_without_blocking_and_other_hooks_still_run(caplog):
    release = threading.Event()
    fast = []
    hooks = HookSet([("stuck", lambda d: release.wait(10)), ("fast", lambda d: fast.append(d.time))], maxsize=2)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="kwspi.deploy.hooks"):
        for i in range(6):
            hooks(det(t=float(i)))
            time.sleep(0.01)  # lets the stuck worker take the first one
        submit_s = time.monotonic() - start
        undelivered = hooks.close(timeout=0.5)
    release.set()
    assert submit_s < 0.5
    assert hooks.dropped == 3  # one running, two queued, three dropped
    assert undelivered == 3
    assert fast == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert any("hook stuck is busy: dropped low" in r.getMessage() for r in caplog.records)
    assert any("still busy at exit: 3 detection(s) not delivered" in r.getMessage() for r in caplog.records)


def test_shell_hook_sees_label_score_and_time(tmp_path, caplog):
    out = tmp_path / "out.txt"
    ShellHook(f'echo "$KWSPI_LABEL $KWSPI_SCORE $KWSPI_TIME" >> {out}')(Detection("high", 0.97123, 12.3400001, 0))
    assert out.read_text() == "high 0.9712 12.340\n"
    with caplog.at_level(logging.WARNING, logger="kwspi.deploy.hooks"):
        ShellHook("exit 3")(det())
    assert "exited with status 3" in caplog.text
    assert "KWSPI_LABEL" not in os.environ


def _alive(pid_file) -> bool:
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its parent has ended too
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_shell_command_running_over_its_time_is_ended_with_its_children(tmp_path, caplog):
    pid = tmp_path / "pid"
    with caplog.at_level(logging.WARNING, logger="kwspi.deploy.hooks"):
        ShellHook(f"sleep 300 & echo $! > {pid}; wait", timeout_s=0.5)(det())
    assert not _alive(pid)
    assert "ran over 0.5 s" in caplog.text


def test_listen_ends_what_its_commands_left_running_so_stdout_closes(tmp_path, tmp_path_factory):
    # `kwspi listen --json | consumer`: a child holding stdout kept the consumer waiting for ever.
    import subprocess

    from deploy_fixtures import kwspi_command, make_stream, shared_centroid_model, write_wav

    wav = write_wav(tmp_path / "one.wav", make_stream([("high", 0.5)], 2.0))
    pid = tmp_path / "pid"
    out = subprocess.run(kwspi_command("listen", "--model", str(shared_centroid_model(tmp_path_factory)), "--input",
                                       str(wav), "--json", "--exec", f"sleep 300 & echo $! > {pid}"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not _alive(pid)


def test_drops_are_logged_once_per_interval_with_a_count(caplog):
    release = threading.Event()
    runner = HookRunner(lambda d: release.wait(10), "stuck", maxsize=1)
    try:
        with caplog.at_level(logging.WARNING, logger="kwspi.deploy.hooks"):
            for i in range(20):
                runner.submit(det(t=float(i)))
        assert runner.dropped >= 18
        lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(lines) == 1 and lines[0].endswith("(1 dropped so far)"), lines
    finally:
        release.set()
        runner.close(5)
