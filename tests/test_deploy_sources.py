"""WAV sources at any rate and channel count, the resampler, and device selection logic."""

import logging
import sys
import threading
import time

import numpy as np
import pytest

from deploy_fixtures import STALL, FakeSounddevice, make_stream, shared_centroid_model, write_wav
from kwspi.deploy import Detector
from kwspi.deploy.devices import DeviceError, InputDevice, resolve_device
from kwspi.deploy.mic import MicSource
from kwspi.deploy.sources import Resampler, WavSource
from kwspi.errors import WavError

EVENTS = [("high", 1.5), ("low", 4.0)]


def run(model, source):
    det = Detector(model)
    out = [d for block in source.blocks(threading.Event()) for d in det.process(block)]
    return [(d.label, round(d.time, 3)) for d in out], det.time


@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 1), (48000, 1), (48000, 2), (22050, 2)])
def test_wav_at_any_rate_and_channel_count_gives_the_same_detections(tmp_path, tmp_path_factory, rate, channels):
    model = shared_centroid_model(tmp_path_factory)
    path = write_wav(tmp_path / "x.wav", make_stream(EVENTS, 6.0, rate=rate), rate, channels)
    found, seconds = run(model, WavSource(path))
    assert found == [("high", 1.9), ("low", 4.4)]
    assert seconds == pytest.approx(6.0, abs=0.1)


def test_resampler_is_block_size_invariant_and_keeps_alignment():
    x = make_stream([("high", 0.5)], 2.0, rate=44100)
    whole = Resampler(44100).process(x, last=True)
    r = Resampler(44100)
    parts = [r.process(x[i:i + 333], last=i + 333 >= len(x)) for i in range(0, len(x), 333)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert len(whole) == 32000
    onset_in = np.flatnonzero(np.abs(x) > 0.1)[0] / 44100
    onset_out = np.flatnonzero(np.abs(whole) > 0.1)[0] / 16000
    assert onset_out == pytest.approx(onset_in, abs=0.0005)  # no filter delay
    assert Resampler(16000).process(x[:10]) is not None and len(Resampler(16000).process(x[:10])) == 10


def test_realtime_wav_is_paced_and_stops_when_asked(tmp_path):
    path = write_wav(tmp_path / "x.wav", make_stream([], 5.0))
    stop = threading.Event()
    start = time.monotonic()
    got = 0
    for block in WavSource(path, realtime=True).blocks(stop):
        got += len(block)
        if got >= 4800:
            stop.set()
    elapsed = time.monotonic() - start
    assert got == 4800 and 0.29 <= elapsed < 2.0  # paced: 0.3 s of audio takes at least 0.3 s


@pytest.mark.parametrize("content,reason", [(b"", "is empty"), (b"RIFF\x24\x00\x00\x00WAVEfmt ", "truncated")])
def test_bad_wav_is_a_one_line_error(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(WavError, match=reason):
        WavSource(path)


DEVICES = [
    InputDevice(0, "HDA Intel PCH: ALC892 Analog (hw:0,0)", 2, 44100.0),
    InputDevice(1, "USB PnP Sound Device: Audio (hw:1,0)", 1, 48000.0),
    InputDevice(2, "USB Camera: Audio (hw:2,0)", 2, 16000.0),
    InputDevice(5, "default", 32, 44100.0, is_default=True),
]


def test_device_by_index_name_substring_or_default():
    assert resolve_device("1", DEVICES).index == 1
    assert resolve_device(5, DEVICES).name == "default"
    assert resolve_device("pnp", DEVICES).index == 1
    assert resolve_device("DEFAULT", DEVICES).index == 5  # exact name beats substrings
    assert resolve_device(None, DEVICES).index == 5


def test_device_errors_name_the_candidates():
    with pytest.raises(DeviceError, match=r"several input devices match 'USB': \[1\] USB PnP.*; \[2\] USB Camera"):
        resolve_device("USB", DEVICES)
    with pytest.raises(DeviceError, match=r"no input device matches 'blue yeti'.*kwspi devices"):
        resolve_device("blue yeti", DEVICES)
    with pytest.raises(DeviceError, match="no input device with index 7"):
        resolve_device("7", DEVICES)
    with pytest.raises(DeviceError, match=r"no audio input device found .*`kwspi devices`"):
        resolve_device(None, [])
    with pytest.raises(DeviceError, match="no default input device"):
        resolve_device(None, DEVICES[:3])


def fake_mic(monkeypatch, **kwargs):
    fake = FakeSounddevice([("USB PnP Sound Device", 1)], default=0, **kwargs)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    return fake


def _consume(source, stop, until):
    """Reads ``source`` on a thread until ``until(blocks so far)``; returns the thread and the blocks."""
    got = []

    def run():
        for out in source.blocks(stop):
            got.append(out)
            if until(got):
                stop.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, got


def test_mic_opens_at_16k_when_it_can_else_at_its_own_rate(monkeypatch):
    fake_mic(monkeypatch)
    assert MicSource().rate == 16000
    fake = fake_mic(monkeypatch, rates={48000})
    mic = MicSource("USB")
    assert (mic.rate, mic.channels) == (48000, 1) and "resampled from 48000 Hz" in mic.description
    block = (np.arange(2400) % 100).astype(np.int16)[:, None]
    fake.script = [(block, False), (block, False)]
    got = []
    for out in mic.blocks(threading.Event()):
        got.append(out)
        if sum(map(len, got)) >= 1400:
            break
    assert fake.opened[0]["samplerate"] == 48000 and fake.opened[0]["dtype"] == "int16"
    assert got[0].dtype == np.float32 and 1400 <= sum(map(len, got)) <= 1600  # 2 x 50 ms at 16 kHz


def test_mic_overflows_are_counted_and_a_failing_device_is_found_again_by_its_name(monkeypatch, caplog):
    block = np.full((800, 1), 1000, dtype=np.int16)
    fake = fake_mic(monkeypatch, script=[(block, False), (block, True), (block, True), (block, False),
                                         OSError("device unplugged"), (block, False)],
                    rescans=[[], [("HDA Intel PCH", 2), ("USB PnP Sound Device", 1)]])  # gone, then back as [1]
    mic = MicSource("USB", retry_s=(0.01, 0.02))
    with caplog.at_level(logging.INFO, logger="kwspi.deploy.mic"):
        thread, got = _consume(mic, threading.Event(), until=lambda got: sum(len(b) > 0 for b in got) == 5)
        thread.join(10)
    assert not thread.is_alive()
    assert all(np.allclose(b, 1000 / 32768) for b in got if len(b))  # every block before and after the failure
    assert [s["device"] for s in fake.opened] == [0, 1]
    assert mic.overflows == 2
    assert [r.getMessage() for r in caplog.records] == [
        "input overflow: audio was lost (1 overflows so far)",
        "input device [0] USB PnP Sound Device (1 ch) failed: device unplugged: opening it again",
        "no audio input device found (plug in a microphone; `kwspi devices` lists inputs); trying again in 0.01 s",
        "listening to input device [1] USB PnP Sound Device (1 ch) again",
    ]


def test_busy_device_says_why_no_setting_was_accepted(monkeypatch):
    fake_mic(monkeypatch, busy=True)
    with pytest.raises(DeviceError) as info:
        MicSource()
    message = str(info.value)
    assert "accepts none of [16000, 48000] Hz with 1 or 2 channels" in message
    assert message.endswith("(last error: Error opening InputStream: Device unavailable [PaErrorCode -9985])")
    assert "\n" not in message


def test_stream_that_fails_to_start_is_a_one_line_error_and_is_closed(monkeypatch):
    fake = fake_mic(monkeypatch, start_error="Error starting stream: Device unavailable [PaErrorCode -9985]")
    mic = MicSource()
    with pytest.raises(DeviceError, match=r"^cannot open input device \[0\] USB PnP Sound Device .*"
                                          r"Error starting stream: Device unavailable") as info:
        next(mic.blocks(threading.Event()))
    assert "\n" not in str(info.value)
    assert fake.streams[0].closed


def test_mono_blocks_are_the_channel_itself_and_the_stream_is_closed_at_the_end(monkeypatch):
    block = (np.arange(-400, 400) * 41).astype(np.int16)[:, None]
    fake = fake_mic(monkeypatch, script=[(block, False)])
    mic = MicSource()
    stop = threading.Event()
    for out in mic.blocks(stop):
        np.testing.assert_array_equal(out, block[:, 0].astype(np.float32) / 32768.0)
        assert out.dtype == np.float32
        break
    assert fake.streams[0].closed and not fake.streams[0].started


def _reference_blocks(path, block_s=0.1):
    """The former WavSource: the whole file through read_wav, then the same blocks."""
    from kwspi.wavio import read_wav

    x, rate = read_wav(path)
    resampler, block = Resampler(rate), max(1, int(round(block_s * rate)))
    outs = [resampler.process(x[pos:pos + block], last=pos + block >= len(x)) for pos in range(0, len(x), block)]
    return [o for o in outs if len(o)]


@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2), (8000, 3)])
def test_wav_read_in_blocks_is_bit_identical_to_reading_it_whole(tmp_path, rate, channels):
    path = write_wav(tmp_path / "x.wav", make_stream([("high", 0.5), ("low", 2.0)], 3.37, rate=rate), rate, channels)
    got = list(WavSource(path).blocks(threading.Event()))
    want = _reference_blocks(path)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_wav_source_does_not_hold_the_file_in_memory(tmp_path):
    import tracemalloc

    path = write_wav(tmp_path / "long.wav", make_stream([], 60.0))  # 1.9 MB of PCM, 3.8 MB as float32
    tracemalloc.start()
    try:
        source = WavSource(path)
        peak_init = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        total = sum(len(b) for b in source.blocks(threading.Event()))
        peak_read = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 60 * 16000
    assert peak_init < 200_000 and peak_read < 200_000, (peak_init, peak_read)


def test_wav_errors_are_worded_as_read_wav_words_them(tmp_path):
    import wave

    from kwspi.wavio import read_wav

    good = write_wav(tmp_path / "good.wav", make_stream([], 1.0)).read_bytes()
    (tmp_path / "short.wav").write_bytes(good[: len(good) // 2])  # header promises 16000 frames
    (tmp_path / "nothing.wav").write_bytes(good[:44])  # header promises frames, none there
    with wave.open(str(tmp_path / "zero.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    (tmp_path / "float.wav").write_bytes(good[:20] + b"\x03\x00" + good[22:])  # WAVE_FORMAT_IEEE_FLOAT
    (tmp_path / "text.wav").write_text("hello, not a wav file")
    cases = {"short.wav": "truncated: the header promises 16000 frames but only 7989 are there",
             "nothing.wav": "contains no audio", "zero.wav": "contains no audio", "float.wav": "is not PCM audio",
             "text.wav": "is not a WAV file", "missing.wav": "no such file"}
    for name, reason in cases.items():
        with pytest.raises(WavError) as ours:
            WavSource(tmp_path / name)
        with pytest.raises(WavError) as theirs:
            read_wav(tmp_path / name)
        assert str(ours.value) == str(theirs.value) and reason in str(ours.value), name
        assert "\n" not in str(ours.value)


def test_a_stalled_device_is_opened_again(monkeypatch, caplog):
    block = np.full((800, 1), 1000, dtype=np.int16)
    fake = fake_mic(monkeypatch, script=[(block, False), STALL, (block, False)])
    try:
        with caplog.at_level(logging.WARNING, logger="kwspi.deploy.mic"):
            thread, got = _consume(MicSource(no_audio_s=0.3), threading.Event(),
                                   until=lambda got: len(fake.opened) == 2 and len(got[-1]))
            thread.join(10)
        assert not thread.is_alive()
        assert [len(b) for b in got if len(b)] == [800, 800]  # before the stall, and from the reopened stream
        assert "delivered no audio for 0.3 s: opening it again" in caplog.text
        assert "did not close within" in caplog.text  # the stalled stream's stop() never returned
    finally:
        fake.unstall.set()


def test_stop_ends_a_stalled_device_without_waiting_for_its_driver(monkeypatch):
    fake = fake_mic(monkeypatch, script=[(np.zeros((800, 1), np.int16), False), STALL])
    stop = threading.Event()
    try:
        thread, got = _consume(MicSource(), stop, until=lambda got: False)
        deadline = time.monotonic() + 10
        while not (fake.streams and fake.streams[0].stalled) and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        thread.join(10)
        assert not thread.is_alive() and len(fake.opened) == 1
    finally:
        fake.unstall.set()
