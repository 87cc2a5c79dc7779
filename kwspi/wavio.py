"""Reading and writing PCM WAV files with the standard library.

:func:`read_wav` returns float32 mono audio in [-1, 1) and the file's sampling rate; it
reads 8-bit (unsigned), 16-, 24- and 32-bit (signed) PCM, downmixes any number of
channels by averaging, and raises :class:`~kwspi.errors.WavError` naming the file and the
problem for anything else: not a WAV, not PCM, empty, or truncated.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Iterator

import numpy as np

from kwspi.atomic import atomic_write
from kwspi.errors import WavError

_WAVE_FORMAT_PCM = 1


class WavReader:
    """An open PCM WAV file, checked, read whole or block by block as float32 mono.

    Opening reads the header and the last frame only, so a missing, empty, truncated or
    non-PCM file is reported (as :class:`~kwspi.errors.WavError`, naming the file) before
    any audio is read, and memory does not grow with the file when it is read in blocks.

    Attributes
    ----------
    frames, rate, channels, width:
        Frames in the file, sampling rate in Hz, channels, bytes per sample.
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            self._w = wave.open(str(self.path), "rb")
        except FileNotFoundError:
            raise WavError(self.path, "no such file") from None
        except IsADirectoryError:
            raise WavError(self.path, "is a directory, not a WAV file") from None
        except PermissionError:
            raise WavError(self.path, "permission denied") from None
        except (wave.Error, EOFError) as e:
            raise WavError(self.path, _explain(self.path, e)) from None
        try:
            self._check()
        except BaseException:
            self._w.close()
            raise

    def _check(self) -> None:
        w = self._w
        self.channels, self.width, self.rate, self.frames = (
            w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())
        present = self.frames
        if self.frames:
            w.setpos(self.frames - 1)
            if len(w.readframes(1)) < self.channels * self.width:  # truncated: count what is there
                w.rewind()
                present = 0
                while chunk := w.readframes(65536):
                    present += len(chunk) // (self.channels * self.width)
            w.rewind()
        if self.frames == 0 or present == 0:
            raise WavError(self.path, "contains no audio (0 samples)")
        if present < self.frames:
            raise WavError(self.path, f"truncated: the header promises {self.frames} frames but only {present} are there")
        if self.width not in (1, 2, 3, 4):
            raise WavError(self.path, f"has {8 * self.width}-bit samples; kwspi reads 8-, 16-, 24- and 32-bit PCM")

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Float32 mono blocks of ``frames`` frames (the last may be shorter), from the start.

        Stops early, with whatever was there, if the file shrank after it was opened.
        """
        self._w.rewind()
        frame_bytes = self.channels * self.width
        while data := self._w.readframes(frames):
            usable = len(data) - len(data) % frame_bytes
            if usable:
                yield _decode(data[:usable], self.channels, self.width)
            if usable < frames * frame_bytes:
                return

    def read(self) -> np.ndarray:
        """The whole file as one float32 mono array."""
        return np.concatenate(list(self.blocks(self.frames)))

    def close(self) -> None:
        self._w.close()

    def __enter__(self) -> "WavReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_wav(path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file as ``(samples, sample_rate)``; samples float32, mono, [-1, 1)."""
    with WavReader(path) as r:
        return r.read(), r.rate


def read_wav_bytes_lenient(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a WAV held in memory whose header sizes may be placeholders.

    espeak-ng's ``--stdout`` writes its header before it knows the length; this trusts the
    bytes that are there instead of the header's counts.
    """
    import io

    with wave.open(io.BytesIO(data), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        body = w.readframes(w.getnframes())
    usable = len(body) - len(body) % (channels * width)
    return _decode(body[:usable], channels, width), rate


def write_wav(path, samples, sample_rate: int) -> None:
    """Write mono audio as 16-bit PCM, atomically (a crash never leaves half a file).

    Float samples are taken as [-1, 1) and clipped; int16 samples are written as they are.
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio of shape [n], got {x.shape}")
    if x.dtype != np.int16:
        x = np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    with atomic_write(path) as f, wave.open(f, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(x.astype("<i2").tobytes())


def _decode(data: bytes, channels: int, width: int) -> np.ndarray:
    if width == 1:
        x = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = (np.frombuffer(data, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    else:
        raise ValueError(f"unsupported sample width {width}")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return x


def _explain(path: Path, err: Exception) -> str:
    head = b""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        pass
    if len(head) == 0:
        return "is empty (0 bytes)"
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return "is not a WAV file (no RIFF/WAVE header)"
    msg = str(err)
    if msg.startswith("unknown format"):
        return f"is not PCM audio ({msg}); convert it with `sox in.wav -b 16 -e signed-integer out.wav`"
    if isinstance(err, EOFError) or "chunk" in msg:
        return f"is truncated or damaged ({msg or 'unexpected end of file'})"
    return f"cannot be read as WAV ({msg})"
