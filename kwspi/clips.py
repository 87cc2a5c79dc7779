"""One clip as the model sees it: read, resampled to the front end's rate, cut or padded.

Training, ``kwspi eval`` and the tests all load clips through :func:`load_clip`, so an
ONNX model on a Pi is scored on exactly the samples the network was trained on.
"""

from __future__ import annotations

import numpy as np
import soxr

from kwspi.wavio import read_wav


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut to ``n`` samples, or zero-padded at the end to ``n``."""
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1) as int16 (exact for audio that came from 16-bit PCM)."""
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def load_clip(path, sample_rate: int, n_samples: int) -> tuple[np.ndarray, int, int]:
    """Read a WAV as one model window of 16-bit PCM.

    Returns
    -------
    (wave, source_rate, source_samples)
        ``wave`` int16 ``[n_samples]`` at ``sample_rate`` Hz (resampled with soxr when the
        file's rate differs, then cut or zero-padded at the end); the file's own rate in Hz
        and its length in samples at ``sample_rate``, so callers can count what was done.

    Raises
    ------
    WavError
        The file cannot be read as PCM WAV.
    """
    x, rate = read_wav(path)
    if rate != sample_rate:
        x = soxr.resample(x, rate, sample_rate)
    return to_pcm16(fit_length(x, n_samples)), rate, len(x)
