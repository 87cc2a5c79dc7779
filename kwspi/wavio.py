"""Reading and writing PCM WAV files with the standard library.

:func:`read_wav` returns float32 mono audio in [-1, 1) and the file's sampling rate; it
reads 8-bit (unsigned), 16-, 24- and 32-bit (signed) PCM, downmixes any number of
channels by averaging, and raises :class:`~kwspi.errors.WavError` naming the file and the
problem for anything else: not a WAV, not PCM, empty, or truncated.
"""

from __future__ import annotations

import os
import struct
import wave
from pathlib import Path
from typing import Iterator

import numpy as np

from kwspi.atomic import atomic_write
from kwspi.errors import WavError

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
#: Data sizes from here up are placeholders of tools that wrote the header before the audio.
_PLACEHOLDER = 0x7FFFF000


class WavReader:
    """An open PCM WAV file, checked, read whole or block by block as float32 mono.

    Opening reads the header only, so a missing, empty, truncated or non-PCM file is
    reported (as :class:`~kwspi.errors.WavError`, naming the file) before any audio is read,
    and memory does not grow with the file when it is read in blocks.

    The header is parsed here rather than by :mod:`wave`, which fails on the placeholder
    sizes that tools writing to a pipe leave in it (``arecord -t wav -`` writes data size
    0x80000000 or 0xFFFFFFFF): as sox does, such a file is read to its end.

    Attributes
    ----------
    frames, rate, channels, width:
        Frames in the file, sampling rate in Hz, channels, bytes per sample.
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            self._f = open(self.path, "rb")
        except FileNotFoundError:
            raise WavError(self.path, "no such file") from None
        except IsADirectoryError:
            raise WavError(self.path, "is a directory, not a WAV file") from None
        except PermissionError:
            raise WavError(self.path, "permission denied") from None
        try:
            self._check()
        except BaseException:
            self._f.close()
            raise

    def _check(self) -> None:
        tag, self.channels, self.rate, bits, self._start, declared = _header(self._f, self.path)
        if tag != _WAVE_FORMAT_PCM:
            raise WavError(self.path, f"is not PCM audio (format {tag:#x}); convert it with "
                                      "`sox in.wav -b 16 -e signed-integer out.wav`")
        self.width = (bits + 7) // 8
        if self.width not in (1, 2, 3, 4):
            raise WavError(self.path, f"has {bits}-bit samples; kwspi reads 8-, 16-, 24- and 32-bit PCM")
        if self.channels == 0 or self.rate == 0:
            raise WavError(self.path, f"has {self.channels} channel(s) at a sample rate of {self.rate} Hz")
        frame = self.channels * self.width
        present = (os.fstat(self._f.fileno()).st_size - self._start) // frame
        self.frames = present if declared == 0 or declared >= _PLACEHOLDER else declared // frame
        if self.frames == 0 or present == 0:
            raise WavError(self.path, "contains no audio (0 samples)")
        if present < self.frames:
            raise WavError(self.path, f"truncated: the header promises {self.frames} frames but only {present} are there")

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Float32 mono blocks of ``frames`` frames (the last may be shorter), from the start.

        Stops early, with whatever was there, if the file shrank after it was opened.
        """
        self._f.seek(self._start)
        frame_bytes = self.channels * self.width
        left = self.frames
        while left:
            want = min(frames, left) * frame_bytes
            data = self._f.read(want)
            usable = len(data) - len(data) % frame_bytes
            if usable:
                yield _decode(data[:usable], self.channels, self.width)
                left -= usable // frame_bytes
            if usable < want:
                return

    def read(self) -> np.ndarray:
        """The whole file as one float32 mono array."""
        return np.concatenate(list(self.blocks(self.frames)))

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "WavReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _header(f, path) -> tuple[int, int, int, int, int, int]:
    """(format tag, channels, rate, bits per sample, offset of the audio, declared data bytes)."""
    head = f.read(12)
    if not head:
        raise WavError(path, "is empty (0 bytes)")
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError(path, "is not a WAV file (no RIFF/WAVE header)")
    fmt = None
    while len(chunk := f.read(8)) == 8:
        name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"data":
            if fmt is None:
                break
            return (*fmt, f.tell(), size)
        body = f.read(size + size % 2)  # chunks are padded to an even length
        if name == b"fmt ":
            if len(body) < 16:
                break
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]  # the sub-format's first two bytes
            fmt = (tag, channels, rate, bits)
    raise WavError(path, "is truncated or damaged (no complete fmt and data chunks)")


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

