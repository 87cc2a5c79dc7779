import os
import struct
import wave

import numpy as np
import pytest

from kwspi.errors import WavError
from kwspi.wavio import read_wav, read_wav_bytes_lenient, write_wav


def _write_pcm(path, data: bytes, channels=1, width=2, rate=16000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)


def test_round_trip_16_bit(tmp_path):
    x = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    write_wav(tmp_path / "a.wav", x, 16000)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000 and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1 / 32768)


@pytest.mark.parametrize(
    "width, raw, expected",
    [
        (1, bytes([128, 255, 0]), [0.0, 127 / 128, -1.0]),
        (2, struct.pack("<3h", 0, 16384, -32768), [0.0, 0.5, -1.0]),
        (3, b"\x00\x00\x00" + b"\x00\x00\x40" + b"\x00\x00\x80", [0.0, 0.5, -1.0]),
        (4, struct.pack("<3i", 0, 1 << 30, -(1 << 31)), [0.0, 0.5, -1.0]),
    ],
)
def test_reads_8_16_24_32_bit_pcm(tmp_path, width, raw, expected):
    _write_pcm(tmp_path / "a.wav", raw, width=width, rate=8000)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 8000
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_stereo_is_downmixed(tmp_path):
    _write_pcm(tmp_path / "s.wav", struct.pack("<4h", 16384, 0, -16384, -16384), channels=2, rate=44100)
    y, rate = read_wav(tmp_path / "s.wav")
    assert rate == 44100
    np.testing.assert_allclose(y, [0.25, -0.5])


def test_write_clips_floats_and_leaves_no_temp_files(tmp_path):
    write_wav(tmp_path / "c.wav", np.array([2.0, -2.0, 0.0]), 16000)
    y, _ = read_wav(tmp_path / "c.wav")
    np.testing.assert_allclose(y, [32767 / 32768, -1.0, 0.0])
    assert [p.name for p in tmp_path.iterdir()] == ["c.wav"]


def test_written_files_follow_the_umask(tmp_path):
    # A clip or model readable only by its writer breaks a service running as another user.
    old = os.umask(0o022)
    try:
        write_wav(tmp_path / "c.wav", np.zeros(10), 16000)
    finally:
        os.umask(old)
    assert (tmp_path / "c.wav").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    write_wav(tmp_path / "c.wav", np.zeros(10), 16000)

    def disk_full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wave.Wave_write, "writeframes", disk_full)
    with pytest.raises(OSError):
        write_wav(tmp_path / "c.wav", np.zeros(20), 16000)
    monkeypatch.undo()
    assert read_wav(tmp_path / "c.wav")[0].shape == (10,)
    assert [p.name for p in tmp_path.iterdir()] == ["c.wav"]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"ID3\x03 this is an mp3" * 10), "not a WAV"),
        (lambda p: _write_pcm(p, b""), "no audio"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(WavError, match=match) as e:
        read_wav(path)
    assert str(path) in str(e.value)


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "t.wav"
    _write_pcm(path, b"\x01\x00" * 8000)
    path.write_bytes(path.read_bytes()[:-4000])
    with pytest.raises(WavError, match="truncated"):
        read_wav(path)


def test_float_wav_is_reported_as_not_pcm(tmp_path):
    path = tmp_path / "f.wav"
    data = struct.pack("<2f", 0.1, -0.1)
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(WavError, match="not PCM"):
        read_wav(path)


def test_directory_is_reported(tmp_path):
    with pytest.raises(WavError, match="directory"):
        read_wav(tmp_path)


def test_lenient_reader_accepts_placeholder_sizes():
    import io

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(struct.pack("<3h", 1, 2, 3))
    raw = bytearray(buf.getvalue())
    raw[4:8] = struct.pack("<I", 0x7FFFF024)  # what espeak-ng --stdout writes
    raw[40:44] = struct.pack("<I", 0x7FFFF000)
    y, rate = read_wav_bytes_lenient(bytes(raw))
    assert rate == 16000
    np.testing.assert_allclose(y * 32768, [1, 2, 3])


def _streamed(path, declared: int, riff: int | None = None, rate: int = 16000):
    """A WAV whose header sizes are what a tool writing to a pipe puts there (``arecord -t wav -``)."""
    _write_pcm(path, struct.pack("<4h", 1, 2, 3, 4), rate=rate)
    raw = bytearray(path.read_bytes())
    raw[40:44] = struct.pack("<I", declared)
    if riff is not None:
        raw[4:8] = struct.pack("<I", riff)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("declared, riff", [(0xFFFFFFFF, None), (0x80000000, None), (0xFFFFFFFF, 0xFFFFFFFF),
                                            (0x80000000, 0x80000024), (0x7FFFF000, 0x7FFFF024), (0, None)])
def test_placeholder_sizes_of_streaming_tools_read_what_is_there(tmp_path, declared, riff):
    y, rate = read_wav(_streamed(tmp_path / "s.wav", declared, riff))
    assert rate == 16000
    np.testing.assert_allclose(y * 32768, [1, 2, 3, 4])


def test_sample_rate_0_is_one_clear_line(tmp_path):
    path = _streamed(tmp_path / "z.wav", 8)
    raw = bytearray(path.read_bytes())
    raw[24:28] = struct.pack("<I", 0)
    path.write_bytes(bytes(raw))
    with pytest.raises(WavError, match="sample rate of 0 Hz") as e:
        read_wav(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_atomic_write_syncs_the_file_and_its_folder(tmp_path, monkeypatch):
    import stat

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real_fsync(fd)))
    write_wav(tmp_path / "c.wav", np.zeros(10), 16000)
    assert synced == [False, True]  # the data before the rename, the rename after it


def test_atomic_write_removes_temp_files_left_by_dead_writers(tmp_path):
    dead = [tmp_path / f".{name}.{2 ** 22 + 1}.0123abcd.tmp" for name in ("c.wav", "d.wav")]  # no such pid
    alive = tmp_path / f".c.wav.{os.getpid()}.89abcdef.tmp"  # a write in progress
    for path in dead + [alive]:
        path.write_bytes(b"half")
    write_wav(tmp_path / "c.wav", np.zeros(10), 16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.wav", alive.name])
