"""The listen loop: reload between blocks, signals, and a real ``kwspi listen`` process."""

import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from deploy_fixtures import LABELS, NotifySocket, Running, centroid_info, centroid_model, graph_that_breaks_at_run_time, \
    kwspi_command, make_stream, save_model, shared_centroid_model, write_wav
from kwspi.deploy import Detector
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.service import Listener, signal_handlers

EVENTS = [("low", 1.5), ("high", 4.0), ("low", 6.5), ("high", 9.0)]


class ScriptedSource:
    """Yields the stream in 0.5 s blocks and runs ``actions[i]`` before block ``i``."""

    description = "scripted"

    def __init__(self, x, actions):
        self.x, self.actions = x, actions

    def blocks(self, stop):
        for i, pos in enumerate(range(0, len(self.x), 8000)):
            if stop.is_set():
                return
            self.actions.get(i, lambda: None)()
            yield self.x[pos:pos + 8000]


def test_reload_swaps_a_good_model_and_keeps_the_old_one_when_the_new_is_bad(tmp_path, tmp_path_factory, caplog):
    path = tmp_path / "model.onnx"
    shutil.copy(shared_centroid_model(tmp_path_factory), path)
    renamed = centroid_model(tmp_path / "renamed.onnx", labels=LABELS[:2] + ("LOW", "HIGH"))
    found = []
    listener = None

    def swap_in(src):
        def act():
            shutil.copy(src, path) if src else path.write_bytes(b"garbage")
            listener.reload()
        return act

    # Before block 10 (5.0 s): a renamed model; before block 16 (8.0 s): a broken file.
    source = ScriptedSource(make_stream(EVENTS, 11.0), {10: swap_in(renamed), 16: swap_in(None)})
    detector = Detector(path)
    windows_per_block = []
    push = detector.scorer.push
    detector.scorer.push = lambda x: (lambda w: (windows_per_block.append(len(w)), w)[1])(push(x))
    listener = Listener(source, detector, lambda: LoadedModel.load(path), found.append)
    with caplog.at_level(logging.INFO, logger="kwspi.deploy.service"):
        stats = listener.run()
    # Same front end: the block right after the reload is scored at every hop, no warm-up gap.
    assert windows_per_block == [0, 1] + [5] * 20  # incl. block 10, the first after the reload
    assert [(d.label, round(d.time, 3)) for d in found] == [("low", 1.9), ("high", 4.4), ("LOW", 6.9), ("HIGH", 9.4)]
    assert (stats.reloads, stats.failed_reloads, stats.detections) == (1, 1, 4)
    assert stats.audio_s == pytest.approx(11.0)
    assert "reloaded model" in caplog.text
    assert "reload failed, keeping the running model" in caplog.text and "not a valid ONNX model" in caplog.text


def test_reload_that_fails_unexpectedly_keeps_the_old_model(tmp_path_factory, caplog):
    # A loader tripping over metadata nobody foresaw (not a KwspiError) must not end the service.
    model = shared_centroid_model(tmp_path_factory)
    listener, found = None, []

    def broken_loader():
        raise AttributeError("'list' object has no attribute 'items'")

    source = ScriptedSource(make_stream(EVENTS, 11.0), {5: lambda: listener.reload()})
    listener = Listener(source, Detector(model), broken_loader, found.append)
    with caplog.at_level(logging.ERROR, logger="kwspi.deploy.service"):
        stats = listener.run()
    assert [(d.label, round(d.time, 3)) for d in found] == [("low", 1.9), ("high", 4.4), ("low", 6.9), ("high", 9.4)]
    assert (stats.reloads, stats.failed_reloads) == (0, 1)
    assert listener.detector.model.path == model
    record = next(r for r in caplog.records if "reload failed, keeping the running model" in r.getMessage())
    assert "AttributeError" in record.getMessage() and record.exc_info


def test_reload_to_a_model_that_crashes_on_its_first_window_keeps_the_old_one(tmp_path, tmp_path_factory, caplog):
    path = tmp_path / "model.onnx"
    shutil.copy(shared_centroid_model(tmp_path_factory), path)
    listener, found = None, []

    def break_the_file():
        save_model(graph_that_breaks_at_run_time(centroid_info().features, "crashes"), path,
                   centroid_info().to_metadata())
        listener.reload()

    source = ScriptedSource(make_stream(EVENTS, 11.0), {5: break_the_file})
    listener = Listener(source, Detector(path), lambda: LoadedModel.load(path), found.append)
    with caplog.at_level(logging.ERROR, logger="kwspi.deploy.service"):
        stats = listener.run()
    assert [(d.label, round(d.time, 3)) for d in found] == [("low", 1.9), ("high", 4.4), ("low", 6.9), ("high", 9.4)]
    assert (stats.reloads, stats.failed_reloads) == (0, 1)
    assert "fails on a window of zeros" in caplog.text


def test_stop_from_another_thread_ends_the_loop(tmp_path_factory):
    listener = None

    def stop_soon():
        threading.Timer(0.05, listener.stop).start()
        time.sleep(0.2)

    source = ScriptedSource(make_stream([], 10.0), {2: stop_soon})
    listener = Listener(source, Detector(shared_centroid_model(tmp_path_factory)), lambda: None, lambda d: None)
    assert listener.run().audio_s == pytest.approx(1.5)


def test_signal_handlers_route_signals_and_are_restored():
    class Recorder:
        stopped = reloaded = 0

        def stop(self):
            self.stopped += 1

        def reload(self):
            self.reloaded += 1

    rec = Recorder()
    before = signal.getsignal(signal.SIGTERM)
    with signal_handlers(rec):
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert (rec.stopped, rec.reloaded) == (2, 1)
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("long") / "long.wav", make_stream([], 60.0))


def test_sigterm_stops_a_realtime_listen_within_a_second(tmp_path_factory, long_wav):
    run = Running(["listen", "--model", str(shared_centroid_model(tmp_path_factory)), "--input", str(long_wav),
                   "--realtime"])
    try:
        assert run.wait_for("listening to"), run.err
        time.sleep(0.3)
        start = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        rc = run.finish()
        assert time.monotonic() - start < 1.0
        assert rc == 0, run.err
        assert any("stopped after" in line for line in run.err)
    finally:
        run.kill()


def test_sighup_reloads_and_a_bad_model_keeps_the_old_one(tmp_path, tmp_path_factory, long_wav):
    path = tmp_path / "model.onnx"
    shutil.copy(shared_centroid_model(tmp_path_factory), path)
    run = Running(["listen", "--model", str(path), "--input", str(long_wav), "--realtime"])
    try:
        assert run.wait_for("listening to"), run.err
        run.proc.send_signal(signal.SIGHUP)
        assert run.wait_for("reloaded model", timeout=5), run.err
        path.write_bytes(b"garbage")
        run.proc.send_signal(signal.SIGHUP)
        assert run.wait_for("reload failed, keeping the running model", timeout=5), run.err
        time.sleep(0.3)
        assert run.proc.poll() is None  # still listening
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish() == 0, run.err
    finally:
        run.kill()


def _catches_sighup(pid: int) -> bool:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1)))
    return False


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc to see installed handlers")
def test_sighup_during_start_up_is_a_reload_not_a_death(tmp_path_factory, long_wav):
    # `systemctl reload` right after `start`: the SIGHUP lands while the model is loading.
    run = Running(["listen", "--model", str(shared_centroid_model(tmp_path_factory)), "--input", str(long_wav),
                   "--realtime"])
    try:
        deadline = time.monotonic() + 20
        while not _catches_sighup(run.proc.pid):  # the first thing `listen` does
            assert run.proc.poll() is None and time.monotonic() < deadline, run.err
            time.sleep(0.005)
        run.proc.send_signal(signal.SIGHUP)
        time.sleep(0.1)
        assert run.proc.poll() is None, run.err
        assert run.wait_for("listening to"), run.err
        assert run.wait_for("reload requested during start-up", timeout=5), run.err
        assert run.wait_for("reloaded model", timeout=5), run.err
        time.sleep(0.2)
        assert run.proc.poll() is None  # still listening
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish() == 0, run.err
        assert not any("Traceback" in line for line in run.err), run.err
    finally:
        run.kill()


SIGNAL_WHILE_IMPORTING = """
import importlib.abc, os, signal, sys

class SignalOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "kwspi.deploy.cli":  # where onnxruntime and sounddevice get imported
            os.kill(os.getpid(), signal.Signals[sys.argv[1]])

sys.meta_path.insert(0, SignalOnImport())
from kwspi.cli import main
main(sys.argv[2:], prog_name="kwspi")
"""


@pytest.mark.parametrize("sig, then", [("SIGHUP", "reloaded model"), ("SIGINT", "stop requested during start-up")])
def test_a_signal_while_listen_imports_is_acted_on_once_listening(tmp_path_factory, sig, then):
    wav = write_wav(tmp_path_factory.mktemp("short") / "s.wav", make_stream([("low", 0.5)], 2.0))
    out = subprocess.run([sys.executable, "-c", SIGNAL_WHILE_IMPORTING, sig, "listen", "--model",
                          str(shared_centroid_model(tmp_path_factory)), "--input", str(wav)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert then in out.stderr and "Traceback" not in out.stderr and "Aborted" not in out.stderr, out.stderr


def test_systemd_hears_ready_once_listening_and_stopping_at_the_end(tmp_path_factory, long_wav):
    with NotifySocket() as sd:
        run = Running(["listen", "--model", str(shared_centroid_model(tmp_path_factory)), "--input", str(long_wav),
                       "--realtime"], env={"NOTIFY_SOCKET": sd.name})
        try:
            ready = sd.receive(timeout=20)
            assert ready.startswith("READY=1\nSTATUS=listening to WAV file"), (ready, run.err)
            assert _catches_sighup(run.proc.pid) and any("listening to" in line for line in run.err)
            run.proc.send_signal(signal.SIGHUP)
            assert run.wait_for("reloaded model", timeout=5), run.err
            run.proc.send_signal(signal.SIGTERM)
            assert run.finish() == 0, run.err
            assert sd.receive(timeout=5) == "STOPPING=1"
        finally:
            run.kill()


def test_a_hook_sleeping_10_s_does_not_hold_up_a_file(tmp_path, tmp_path_factory):
    # 12 detections; the hook takes the first and sleeps, 8 wait in its queue, 3 are dropped.
    wav = write_wav(tmp_path / "many.wav", make_stream([("low" if i % 2 else "high", 1.5 + 2.5 * i)
                                                        for i in range(12)], 32.0))
    (tmp_path / "slow.py").write_text("import time\ndef hook(d):\n    time.sleep(10)\n")
    start = time.monotonic()
    run = Running(["listen", "--model", str(shared_centroid_model(tmp_path_factory)), "--input", str(wav),
                   "--json", "--hook", f"{tmp_path}/slow.py:hook"])
    try:
        assert run.finish() == 0, run.err
        elapsed = time.monotonic() - start
        assert len(run.out) == 12
        assert elapsed < 8.0, elapsed  # start-up + 2 s of grace for hooks at the end, not 10 s per call
        assert any("hooks dropped 3 detection(s)" in line for line in run.err), run.err
        assert any("not delivered" in line for line in run.err)
    finally:
        run.kill()


def test_reader_closing_stdout_stops_listening_quietly(tmp_path, tmp_path_factory):
    # `kwspi listen --json | head -1`: once head has its line, the next write ends the run.
    wav = write_wav(tmp_path / "two.wav", make_stream([("high", 0.7), ("low", 1.9)], 30.0))
    cmd = " ".join(shlex.quote(a) for a in kwspi_command(
        "listen", "--model", str(shared_centroid_model(tmp_path_factory)), "--input", str(wav), "--realtime", "--json"))
    out = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -1"], capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["label"] for line in out.stdout.splitlines()] == ["high"]
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
    assert "stopped after 2.30 s of audio" in out.stderr, out.stderr  # at the second detection, not the end


def test_stdout_that_fails_to_take_a_line_is_one_error_line_not_a_traceback(tmp_path, tmp_path_factory):
    wav = write_wav(tmp_path / "two.wav", make_stream([("high", 0.7), ("low", 1.9)], 4.0))
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC
        out = subprocess.run(kwspi_command("listen", "--model", str(shared_centroid_model(tmp_path_factory)),
                                           "--input", str(wav), "--json"),
                             stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("Error: cannot write detections to stdout: "), out.stderr
    assert "Traceback" not in out.stderr
