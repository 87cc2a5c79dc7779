"""Generated background noise for the ``_background_noise_`` folder of a synthetic set.

Google Speech Commands ships six long recordings (white and pink noise, a running tap,
dishes, an exercise bike, a cat). None can be downloaded here, so these functions make
stand-ins from numpy alone: stationary coloured noise (white, pink, brown), a mains hum
with harmonics, band-limited noise under a slow random envelope (tap- or fan-like), and
bursty clatter. The last three matter: a model that only ever heard white/pink/brown noise
took band-limited, bursty noise for keywords (``research/generalisation.md``).

Every generator takes the number of samples, a :class:`numpy.random.Generator` and the
sampling rate in Hz, and returns float32 mono audio peak-normalised to :data:`PEAK`, so a
file never clips and the training mixer's volume ``v ~ U(0, 0.1)`` means the same for each.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from kwspi.features import SAMPLE_RATE
from kwspi.wavio import write_wav

PEAK = 0.9
#: Below this frequency (Hz) coloured noise is flat: a 1/f slope continued to 1/60 Hz would
#: put most of the energy in inaudible drift and leave the audible band nearly silent after
#: peak normalisation.
LOW_CUTOFF_HZ = 20.0


def white(n: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Gaussian white noise (flat spectrum), ``n`` samples."""
    return _peak(rng.standard_normal(n))


def pink(n: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Pink noise: power falls 3 dB per octave (power ∝ 1/f) above :data:`LOW_CUTOFF_HZ`."""
    return _peak(_coloured(n, rng, rate, exponent=1.0))


def brown(n: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Brown (red) noise: power falls 6 dB per octave (power ∝ 1/f²) above :data:`LOW_CUTOFF_HZ`."""
    return _peak(_coloured(n, rng, rate, exponent=2.0))


def hum(n: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mains hum (50 or 60 Hz) with decaying harmonics, slow wobble and a little hiss.

    Like a fridge or a transformer near the microphone: narrow spectral lines that a
    model must learn to ignore.
    """
    t = np.arange(n) / rate
    f0 = rng.choice([50.0, 60.0])
    x = np.zeros(n)
    for k in range(1, 13):
        if k * f0 >= rate / 2:
            break
        amp = rng.uniform(0.3, 1.0) / k
        x += amp * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    x *= 1.0 + 0.2 * _slow_envelope(n, rng, rate, hz=0.3)
    x += 0.02 * np.std(x) * rng.standard_normal(n)
    return _peak(x)


def modulated_band(n: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited noise (a random band within ~300–6000 Hz) under a slow random envelope.

    Sounds like running water or a fan that changes speed.
    """
    low = rng.uniform(300.0, 1500.0)
    high = min(low * rng.uniform(2.0, 4.0), 0.45 * rate)
    x = _bandpass(rng.standard_normal(n), rate, low, high)
    env = 0.6 + 0.4 * _slow_envelope(n, rng, rate, hz=1.0)
    return _peak(x * env)


def bursts(n: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Clatter: short decaying band-limited bursts at random times over quiet pink noise.

    Like doing the dishes; non-stationary, with sharp onsets that resemble plosives.
    """
    x = _coloured(n, rng, rate, exponent=1.0)
    x *= 0.05 / (_rms(x) + 1e-12)
    count = rng.poisson(2.0 * n / rate)  # about two bursts a second
    for start in rng.integers(0, n, size=count):
        length = int(rng.uniform(0.02, 0.25) * rate)
        length = min(length, n - start)
        if length < 8:
            continue
        low = rng.uniform(500.0, 3000.0)
        burst = _bandpass(rng.standard_normal(length), rate, low, min(low * 3.0, 0.45 * rate))
        decay = np.exp(-np.arange(length) / (length / rng.uniform(3.0, 8.0)))
        x[start:start + length] += rng.uniform(0.3, 1.0) * burst * decay / (_rms(burst) + 1e-12)
    return _peak(x)


#: file name -> generator; the folder gets one ~60 s file per entry (GSC's are 60–95 s).
NOISES: dict[str, Callable[[int, np.random.Generator, int], np.ndarray]] = {
    "white_noise": white,
    "pink_noise": pink,
    "brown_noise": brown,
    "hum": hum,
    "running_water": modulated_band,
    "clatter": bursts,
}


def write_noise_folder(folder, seed: int = 0, seconds: float = 60.0, rate: int = SAMPLE_RATE) -> list[Path]:
    """Write every noise in :data:`NOISES` to ``folder/<name>.wav``; return the paths.

    Parameters
    ----------
    folder : path-like
        Created if missing. Files already there are kept as they are (a rerun is free).
    seed : int
        Each file's generator is seeded by ``(seed, name)``, so files do not depend on
        one another or on the order they are made in.
    seconds : float
        Length of each file in seconds.
    rate : int
        Sampling rate in Hz.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in NOISES.items():
        path = folder / f"{name}.wav"
        if not path.exists():
            rng = np.random.default_rng([seed, _name_key(name)])
            write_wav(path, make(int(seconds * rate), rng, rate), rate)
        paths.append(path)
    return paths


def _coloured(n: int, rng: np.random.Generator, rate: int, exponent: float) -> np.ndarray:
    """Noise whose power spectrum falls as ``1 / f**exponent`` above :data:`LOW_CUTOFF_HZ`."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    gain = np.maximum(f, LOW_CUTOFF_HZ) ** (-exponent / 2.0)  # amplitude is the root of power
    gain[0] = 0.0  # no DC offset
    return np.fft.irfft(spectrum * gain, n)


def _bandpass(x: np.ndarray, rate: int, low: float, high: float) -> np.ndarray:
    """Brick-wall band-pass in the frequency domain with 10% cosine edges (no ringing clicks)."""
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / rate)
    gain = np.clip(np.minimum((f - low * 0.9) / (low * 0.2), (high * 1.1 - f) / (high * 0.2)), 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spectrum * gain, len(x))


def _slow_envelope(n: int, rng: np.random.Generator, rate: int, hz: float) -> np.ndarray:
    """A smooth random curve in [-1, 1] that changes on a time scale of ``1 / hz`` seconds."""
    knots = max(2, int(n / rate * hz) + 2)
    y = rng.uniform(-1.0, 1.0, size=knots)
    return np.interp(np.linspace(0, knots - 1, n), np.arange(knots), y)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _peak(x: np.ndarray) -> np.ndarray:
    x = x - np.mean(x)
    return (x * (PEAK / (np.max(np.abs(x)) + 1e-12))).astype(np.float32)


def _name_key(name: str) -> int:
    # A stable integer per name: Python's hash() is salted per process.
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:16], 16)


class NoiseTrack:
    """Endless background noise at a fixed RMS, handed out in pieces of any length.

    Made of segments of a few seconds, each a stationary coloured noise (white, pink or
    brown), half of them with hum, band-limited or bursty noise on top; neighbours are
    cross-faded with equal power. Only the current segment is held in memory.
    """

    BASES = (white, pink, brown)
    EXTRAS = (hum, modulated_band, bursts)

    def __init__(self, rng: np.random.Generator, rms: float, segment_s=(2.0, 4.0), fade_s: float = 0.2):
        self._rng, self._rms = rng, rms
        self._segment_s, self._fade = segment_s, int(fade_s * SAMPLE_RATE)
        self._pending = np.zeros(0)

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples (float64)."""
        if self._rms == 0.0:
            return np.zeros(n)
        # The last `fade` samples stay pending: they are cross-faded with the next segment.
        while len(self._pending) < n + self._fade:
            self._pending = self._join(self._pending, self._segment())
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def _segment(self) -> np.ndarray:
        rng = self._rng
        n = int(rng.uniform(*self._segment_s) * SAMPLE_RATE)
        x = self.BASES[rng.integers(len(self.BASES))](n, rng, SAMPLE_RATE).astype(np.float64)
        x /= np.sqrt(np.mean(x**2)) + 1e-12
        if rng.uniform() < 0.5:
            extra = self.EXTRAS[rng.integers(len(self.EXTRAS))](n, rng, SAMPLE_RATE).astype(np.float64)
            x += rng.uniform(0.5, 2.0) * extra / (np.sqrt(np.mean(extra**2)) + 1e-12)
        return x * (self._rms / (np.sqrt(np.mean(x**2)) + 1e-12))

    def _join(self, pending: np.ndarray, segment: np.ndarray) -> np.ndarray:
        f = self._fade
        if len(pending) < f:
            return np.concatenate([pending, segment])
        ramp = np.pi / 2 * (np.arange(f) + 0.5) / f
        overlap = pending[-f:] * np.cos(ramp) + segment[:f] * np.sin(ramp)
        return np.concatenate([pending[:-f], overlap, segment[f:]])
