"""Reading and writing PCM WAV files with the standard library.

:func:`read_wav` returns float32 mono audio in [-1, 1) and the file's sampling rate; it
reads 8-bit (unsigned), 16-, 24- and 32-bit (signed) PCM, downmixes any number of
channels by averaging, and raises :class:`~kwspi.errors.WavError` naming the file and the
problem for anything else: not a WAV, not PCM, empty, or truncated.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from kwspi.atomic import atomic_write
from kwspi.errors import WavError

_WAVE_FORMAT_PCM = 1


def read_wav(path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file as ``(samples, sample_rate)``; samples float32, mono, [-1, 1)."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            data = w.readframes(n)
    except FileNotFoundError:
        raise WavError(path, "no such file") from None
    except IsADirectoryError:
        raise WavError(path, "is a directory, not a WAV file") from None
    except PermissionError:
        raise WavError(path, "permission denied") from None
    except (wave.Error, EOFError) as e:
        raise WavError(path, _explain(path, e)) from None
    if n == 0 or not data:
        raise WavError(path, "contains no audio (0 samples)")
    frame_bytes = channels * width
    if len(data) < n * frame_bytes:
        raise WavError(
            path,
            f"truncated: the header promises {n} frames but only {len(data) // frame_bytes} are there",
        )
    return _decode(data, channels, width), rate


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
