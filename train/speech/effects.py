"""The signal processing behind voice transforms: formants, pitch, rooms, microphones.

Pure functions of 16 kHz float32 audio (and, for the random ones, a seeded generator) that
return audio of the same length, rate and RMS level; :mod:`kwspi.train.speech.transforms`
names them by spec and makes speakers of them. WORLD (pyworld, MIT licence; not
praat-parselmouth, GPL-3) does formants and pitch, pyroomacoustics the rooms, scipy the
microphone; each is imported when first used (:func:`load`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import sys
import types
from dataclasses import dataclass

import numpy as np

from kwspi.features import SAMPLE_RATE
from kwspi.train.speech.augment import rms

# WORLD's frame period, ms: its default, fine enough for 16 kHz words.
_FRAME_MS = 5.0


@functools.lru_cache(maxsize=None)
def load(name: str):
    try:
        return __import__(name)
    except ModuleNotFoundError as e:
        if name != "pyworld" or e.name != "pkg_resources":
            raise
    # pyworld 0.3.5, the newest on PyPI, asks pkg_resources for its own version string and
    # nothing else; setuptools 81+ no longer ships pkg_resources. Lend it one that answers
    # from importlib.metadata for the length of the import, then take it back.
    shim = types.ModuleType("pkg_resources")
    shim.get_distribution = lambda dist: types.SimpleNamespace(version=importlib.metadata.version(dist))
    sys.modules["pkg_resources"] = shim
    try:
        return __import__(name)
    finally:
        if sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


def vtl(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` with its formants (spectral envelope) moved by ``factor``, pitch kept."""
    return world(x, factor=factor)


def pitch(x: np.ndarray, semitones: float) -> np.ndarray:
    """``x`` with its F0 moved by ``semitones``, spectral envelope kept."""
    return world(x, semitones=semitones)


def world(x: np.ndarray, factor: float = 1.0, semitones: float = 0.0) -> np.ndarray:
    """Vocal-tract length and pitch in one WORLD analysis and resynthesis.

    F0 by DIO refined by StoneMask (a tenth of Harvest's time, and words are short and
    clean), envelope by CheapTrick, aperiodicity by D4C. The envelope and aperiodicity are
    resampled along frequency: bin ``k`` of the output takes the input's at ``k / factor``,
    so a peak at ``f`` moves to ``f * factor``; above the input's top (for factor < 1) the
    top bin is held. Unvoiced frames (F0 0) stay unvoiced. Same length and level as ``x``.
    """
    pw = load("pyworld")
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    if not len(x64) or not np.any(x64):
        return np.asarray(x, np.float32).copy()
    f0, t = pw.dio(x64, SAMPLE_RATE, f0_floor=50.0, f0_ceil=600.0, frame_period=_FRAME_MS)
    f0 = pw.stonemask(x64, f0, t, SAMPLE_RATE)
    sp = pw.cheaptrick(x64, f0, t, SAMPLE_RATE)
    ap = pw.d4c(x64, f0, t, SAMPLE_RATE)
    if factor != 1.0:
        bins = np.arange(sp.shape[1], dtype=np.float64)
        src = np.minimum(bins / factor, bins[-1])
        sp = np.stack([np.interp(src, bins, row) for row in sp])
        ap = np.stack([np.interp(src, bins, row) for row in ap])
    f0 = f0 * 2.0 ** (semitones / 12.0)
    y = pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap),
                      SAMPLE_RATE, _FRAME_MS)
    return same_level(_fit(y, len(x)), x)


@dataclass(frozen=True)
class RoomDraw:
    """The room :func:`room_ir` drew: metres, seconds."""

    size: tuple[float, float, float]
    rt60: float
    talker: tuple[float, float, float]
    mic: tuple[float, float, float]


def draw_room(rng: np.random.Generator) -> RoomDraw:
    """A random room, small office to hall: 3-9 x 2.5-7 x 2.4-4 m, RT60 0.15-0.6 s, talker and
    microphone at least 0.5 m from the walls and 0.5-3 m apart at 0.8-1.9 m height."""
    size = (rng.uniform(3.0, 9.0), rng.uniform(2.5, 7.0), rng.uniform(2.4, 4.0))
    rt60 = rng.uniform(0.15, 0.6)
    lo, hi = np.array([0.5, 0.5, 0.8]), np.array([size[0] - 0.5, size[1] - 0.5, 1.9])
    talker = rng.uniform(lo, hi)
    for _ in range(100):
        mic = rng.uniform(lo, hi)
        if 0.5 <= np.linalg.norm(mic - talker) <= 3.0:
            break
    return RoomDraw(tuple(map(float, size)), float(rt60), tuple(map(float, talker)), tuple(map(float, mic)))


def room_ir(rng: np.random.Generator) -> np.ndarray:
    """The impulse response, from talker to microphone, of a room drawn by :func:`draw_room`.

    Image-source model (pyroomacoustics ``ShoeBox``) with one absorption for every wall and
    the reflection order that Sabine's formula gives for the drawn RT60 (a lower order would
    end the tail early: capped at 17, a 0.6 s room decays in 0.4 s). The largest rooms take
    about 0.4 s, once per speaker (:func:`apply` keeps each).
    """
    pra = load("pyroomacoustics")
    d = draw_room(rng)
    absorption, order = pra.inverse_sabine(d.rt60, list(d.size))
    r = pra.ShoeBox(list(d.size), fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=order)
    r.add_source(list(d.talker))
    r.add_microphone(list(d.mic))
    r.compute_rir()
    return np.asarray(r.rir[0][0], np.float64)


def room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` as heard in a random room (:func:`room_ir`): same length and level, so
    reverberation past the end is cut (:func:`apply_padded` leaves room for it)."""
    return convolve(x, room_ir(rng))


def mic_sos(rng: np.random.Generator) -> np.ndarray:
    """Second-order sections of a random microphone: a high-pass at 70-300 Hz (order 1-2,
    the small capsule's bass loss), a low-pass at 3.5-7.5 kHz (order 2-4, from a phone's
    band to a good USB microphone's) and 1-3 resonances of -6..+8 dB at 1-6 kHz (capsule
    and housing), Q 1-4."""
    from scipy import signal

    nyq = SAMPLE_RATE / 2
    parts = [
        signal.butter(int(rng.integers(1, 3)), rng.uniform(70.0, 300.0) / nyq, "highpass", output="sos"),
        signal.butter(int(rng.integers(2, 5)), rng.uniform(3500.0, 7500.0) / nyq, "lowpass", output="sos"),
    ]
    for _ in range(int(rng.integers(1, 4))):
        parts.append(_peaking(rng.uniform(1000.0, 6000.0), rng.uniform(-6.0, 8.0), rng.uniform(1.0, 4.0)))
    return np.concatenate(parts)


def mic(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` through a random microphone (:func:`mic_sos`): causal, same length and level."""
    return filtered(x, mic_sos(rng))


def filtered(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """``x`` through the second-order sections ``sos``, at ``x``'s level."""
    from scipy import signal

    return same_level(signal.sosfilt(sos, np.asarray(x, np.float64)), x)


def _peaking(f0: float, gain_db: float, q: float) -> np.ndarray:
    # RBJ's audio-EQ cookbook peaking filter, as one second-order section.
    a = 10.0 ** (gain_db / 40.0)
    w = 2.0 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w) / (2.0 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def convolve(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    from scipy import signal

    y = signal.fftconvolve(np.asarray(x, np.float64), ir)[: len(x)]
    return same_level(y, x)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    # WORLD's output is a frame's worth longer or shorter than its input.
    return y[:n] if len(y) >= n else np.concatenate([y, np.zeros(n - len(y))])


def same_level(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``y`` scaled to ``x``'s RMS, as float32: a transform changes timbre, not loudness."""
    rx, ry = (rms(x) if len(x) else 0.0), (rms(y) if len(y) else 0.0)
    return np.asarray(y * (rx / ry) if ry > 0 else y, np.float32)
