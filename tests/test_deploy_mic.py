"""The microphone path through real PortAudio and ALSA, against a fake capture device.

ALSA's ``file`` plugin reads a raw file as if it were a microphone; pointing ``HOME`` at a
folder with an ``.asoundrc`` makes PortAudio see it (``research/feasibility.md`` section 1).
It is not paced in real time, which suits a test. ALSA reads its configuration once per
process, so every test here runs in a subprocess with its own ``HOME``.
"""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from deploy_fixtures import NotifySocket, Running, kwspi_command, make_stream, shared_centroid_model

pytest.importorskip("sounddevice", exc_type=OSError)

EVENTS = [("high", 1.5), ("low", 4.0)]

ASOUNDRC = """
pcm.!default {{ type plug  slave {{ pcm "filemic"  format S16_LE  rate 16000  channels 1 }} }}
pcm.filemic  {{ type file  slave.pcm "nullpcm"  file "/dev/null"  infile "{raw}"  format "raw" }}
pcm.nullpcm  {{ type null }}
"""


def fake_mic_home(folder: Path, rate: int = 16000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pcm = np.round(make_stream(EVENTS, 6.0, rate=rate) * 32767).astype("<i2")
    raw = folder / "mic.raw"
    raw.write_bytes(pcm.tobytes())
    (folder / ".asoundrc").write_text(ASOUNDRC.format(raw=raw))
    return folder


class FifoMic:
    """A microphone fed through a FIFO: :meth:`play` writes audio into it, and when the test
    stops writing the device stalls, as a wedged USB microphone does (no error, no audio)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.home, self.fifo = folder, folder / "mic.fifo"
        os.mkfifo(self.fifo)
        (folder / ".asoundrc").write_text(ASOUNDRC.format(raw=self.fifo))
        # Read-write, so opening never waits for a reader and device probes that open and
        # close the FIFO never break the pipe.
        self.fd = os.open(self.fifo, os.O_RDWR)

    def play(self, x: np.ndarray) -> None:
        pcm = np.round(x * 32767).astype("<i2").tobytes()
        threading.Thread(target=os.write, args=(self.fd, pcm), daemon=True).start()  # blocks until read

    def unplug(self) -> None:
        """Opening the device fails from now on; a stream already open only stalls."""
        self.fifo.rename(self.fifo.with_suffix(".away"))

    def plug_in(self) -> None:
        self.fifo.with_suffix(".away").rename(self.fifo)

    def close(self) -> None:
        os.close(self.fd)


def env_home(home: Path) -> dict:
    return {"HOME": str(home)}


def test_devices_lists_the_fake_microphone(tmp_path):
    home = fake_mic_home(tmp_path / "home")
    out = subprocess.run(kwspi_command("devices"), capture_output=True, text=True, env=_env(home), timeout=60)
    assert out.returncode == 0, out.stderr
    names = [line.split()[-1] for line in out.stdout.splitlines()[1:]]
    assert "filemic" in names and "default" in names
    assert any(line.startswith("*") and line.endswith("default") for line in out.stdout.splitlines())


def test_devices_and_listen_without_any_input_device(tmp_path, tmp_path_factory):
    if Path("/proc/asound/cards").exists() and "no soundcards" not in Path("/proc/asound/cards").read_text():
        pytest.skip("this machine has a sound card")
    home = tmp_path / "empty"
    home.mkdir()
    out = subprocess.run(kwspi_command("devices"), capture_output=True, text=True, env=_env(home), timeout=60)
    assert out.returncode == 0 and "No audio input devices found" in out.stdout
    model = str(shared_centroid_model(tmp_path_factory))
    out = subprocess.run(kwspi_command("listen", "--model", model), capture_output=True, text=True,
                         env=_env(home), timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("Error: no audio input device found")
    assert "Traceback" not in out.stderr


def test_listen_to_the_default_microphone_then_sigterm(tmp_path, tmp_path_factory):
    home = fake_mic_home(tmp_path / "home")
    run = Running(["listen", "--model", str(shared_centroid_model(tmp_path_factory)), "--json"], env=env_home(home))
    try:
        assert run.wait_for('"label"', stream="out", count=2, timeout=30), run.err
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish() == 0, run.err
        got = [json.loads(line) for line in run.out]
        assert [(d["label"], d["time"]) for d in got[:2]] == [("high", 1.9), ("low", 4.4)]
        assert any("listening to input device" in line and "default" in line for line in run.err)
    finally:
        run.kill()


def test_a_stalled_microphone_is_opened_again_feeds_the_watchdog_and_sigterm_still_stops(tmp_path,
                                                                                       tmp_path_factory):
    mic = FifoMic(tmp_path / "home")
    with NotifySocket() as sd:
        run = Running(["listen", "--model", str(shared_centroid_model(tmp_path_factory)), "--json"],
                      env={**env_home(mic.home), "NOTIFY_SOCKET": sd.name, "WATCHDOG_USEC": "2000000"})
        try:
            mic.play(make_stream(EVENTS, 6.0))
            assert run.wait_for('"label"', stream="out", count=2, timeout=30), run.err
            assert run.wait_for("delivered no audio for 5 s: opening it again", timeout=30), run.err
            messages = iter(lambda: sd.receive(timeout=0.5), None)
            assert sum(m == "WATCHDOG=1" for m in messages) >= 4  # a ping a second while stalled
            run.proc.send_signal(signal.SIGTERM)
            assert run.finish(timeout=10) == 0, run.err
            assert any("stopped after 6.00 s of audio" in line for line in run.err), run.err
        finally:
            run.kill()
            mic.close()


def test_an_unplugged_microphone_is_found_again_by_name_when_it_comes_back(tmp_path, tmp_path_factory):
    mic = FifoMic(tmp_path / "home")
    run = Running(["listen", "--model", str(shared_centroid_model(tmp_path_factory)), "--json", "--device", "filemic"],
                  env=env_home(mic.home))
    try:
        mic.play(make_stream(EVENTS, 6.0))
        assert run.wait_for('"label"', stream="out", count=2, timeout=30), run.err
        mic.unplug()
        assert run.wait_for("delivered no audio for 5 s: opening it again", timeout=30), run.err
        assert run.wait_for("trying again in 2 s", timeout=30), run.err  # the second attempt, after 1 s
        assert any("cannot open input device" in line and "filemic" in line for line in run.err)
        mic.plug_in()
        # Play only once the device is open again: audio written before could be read by the
        # abandoned stream, which still holds the FIFO (a rare failure under load).
        assert run.wait_for("filemic (1 ch) again", timeout=60), run.err
        assert any(line.endswith("filemic (1 ch) again") and "listening to input device" in line
                   for line in run.err), run.err
        mic.play(make_stream([("low", 2.5), ("high", 4.5)], 6.0))  # the stalled stream's last read takes a bit
        assert run.wait_for('"label"', stream="out", count=4, timeout=60), run.err
        assert [json.loads(line)["label"] for line in run.out] == ["high", "low", "low", "high"]
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish(timeout=10) == 0, run.err
    finally:
        run.kill()
        mic.close()


PROBE = """
import ctypes, json, sys, threading
mdwe = ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) == 0  # PR_SET_MDWE, REFUSE_EXEC_GAIN
import sounddevice
try:
    sounddevice._ffi.callback("void(void)")(lambda: None)
    refused = False
except MemoryError:
    refused = True
from kwspi.deploy import Detector
from kwspi.deploy.mic import MicSource
source = MicSource("filemic", rate=48000)
detector, found = Detector(sys.argv[1]), []
for block in source.blocks(threading.Event()):
    found += [(d.label, round(d.time, 3)) for d in detector.process(block)]
    if len(found) == 2 or detector.time > 20:
        break
print(json.dumps({"mdwe": mdwe, "callback_refused": refused, "found": found, "rate": source.rate}))
"""


def test_mic_at_48k_is_resampled_and_runs_under_memory_deny_write_execute(tmp_path, tmp_path_factory):
    # systemd's MemoryDenyWriteExecute=yes is emulated with prctl(PR_SET_MDWE): callback
    # streams die under it (the control), the blocking-read path must not.
    home = fake_mic_home(tmp_path / "home", rate=48000)
    out = subprocess.run([sys.executable, "-c", PROBE, str(shared_centroid_model(tmp_path_factory))],
                         capture_output=True, text=True, env=_env(home), timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["rate"] == 48000
    assert result["found"] == [["high", 1.9], ["low", 4.4]]
    if not result["mdwe"]:
        pytest.skip("kernel without PR_SET_MDWE: resampling checked, MemoryDenyWriteExecute not")
    assert result["callback_refused"]


def _env(home: Path) -> dict:
    import os

    return {**os.environ, "HOME": str(home)}
