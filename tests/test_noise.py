"""Generated background noise: spectra, levels, lengths and determinism."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from kwspi.train.speech import noise
from kwspi.wavio import read_wav

RATE = noise.SAMPLE_RATE


def _psd(x: np.ndarray, seg: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectrum: mean periodogram of half-overlapping Hann-windowed segments."""
    hop = seg // 2
    starts = range(0, len(x) - seg + 1, hop)
    win = np.hanning(seg)
    power = np.mean([np.abs(np.fft.rfft(x[s:s + seg] * win)) ** 2 for s in starts], axis=0)
    return np.fft.rfftfreq(seg, 1.0 / RATE), power


def _slope_db_per_octave(x: np.ndarray, lo: float = 100.0, hi: float = 4000.0) -> float:
    f, p = _psd(x)
    band = (f >= lo) & (f <= hi)
    return float(np.polyfit(np.log2(f[band]), 10 * np.log10(p[band]), 1)[0])


def _gen(make, seconds=20.0, seed=0):
    return make(int(seconds * RATE), np.random.default_rng(seed), RATE)


@pytest.mark.parametrize(
    "make, slope, tol",
    [(noise.white, 0.0, 0.5), (noise.pink, -3.0, 0.5), (noise.brown, -6.0, 0.7)],
)
def test_spectral_slope(make, slope, tol):
    measured = _slope_db_per_octave(_gen(make))
    assert abs(measured - slope) < tol, f"{make.__name__}: {measured:.2f} dB/octave, expected {slope}"


def test_brown_is_not_pink_and_pink_is_not_white():
    # Guards the tolerance above: neighbouring colours must be told apart.
    w, p, b = (_slope_db_per_octave(_gen(m)) for m in (noise.white, noise.pink, noise.brown))
    assert w - p > 2.0 and p - b > 2.0


@pytest.mark.parametrize("name", sorted(noise.NOISES))
def test_length_level_and_dtype(name):
    x = _gen(noise.NOISES[name], seconds=5.0)
    assert x.dtype == np.float32 and x.shape == (5 * RATE,)
    peak = float(np.max(np.abs(x)))
    assert peak <= noise.PEAK + 1e-6, "must never clip"
    assert peak > 0.5 * noise.PEAK, "peak-normalised"
    assert abs(float(np.mean(x))) < 0.01, "no DC offset"
    assert np.isfinite(x).all()


@pytest.mark.parametrize("name", sorted(noise.NOISES))
def test_deterministic_per_seed(name):
    make = noise.NOISES[name]
    a, b, c = _gen(make, 2.0, seed=1), _gen(make, 2.0, seed=1), _gen(make, 2.0, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_hum_has_mains_lines():
    f, p = _psd(_gen(noise.hum, seconds=10.0), seg=16000)
    fundamental = f[np.argmax(p)]
    assert fundamental in (50.0, 60.0)
    # Most of the power sits on the harmonic lines (±2 Hz: the Hann window's main lobe).
    distance = np.abs(f - fundamental * np.round(f / fundamental))
    on_lines = (distance <= 2.0) & (f > 0)
    assert p[on_lines].sum() > 0.9 * p.sum()


def test_modulated_band_is_band_limited_and_varies():
    x = _gen(noise.modulated_band, seconds=20.0)
    f, p = _psd(x)
    assert p[f < 200].sum() < 0.01 * p.sum()
    assert p[f > 7000].sum() < 0.01 * p.sum()
    frame_rms = np.sqrt(np.mean(x[: len(x) // 1600 * 1600].reshape(-1, 1600) ** 2, axis=1))
    assert frame_rms.max() > 1.5 * frame_rms.min(), "the envelope should move"


def test_bursts_are_bursty():
    x = _gen(noise.bursts, seconds=20.0)
    frame_rms = np.sqrt(np.mean(x.reshape(-1, 160) ** 2, axis=1))
    assert frame_rms.max() > 5 * np.median(frame_rms)
    # Stationary noise of the same level for contrast: no such peaks.
    w = _gen(noise.white, seconds=20.0)
    w_rms = np.sqrt(np.mean(w.reshape(-1, 160) ** 2, axis=1))
    assert w_rms.max() < 2 * np.median(w_rms)


def test_write_noise_folder_gsc_like_files(tmp_path):
    paths = noise.write_noise_folder(tmp_path / "n", seed=0, seconds=60.0)
    assert sorted(p.name for p in paths) == sorted(f"{n}.wav" for n in noise.NOISES)
    assert {"white_noise.wav", "pink_noise.wav", "brown_noise.wav"} <= {p.name for p in paths}
    for p in paths:
        with wave.open(str(p)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, RATE, 60 * RATE)
        x, _ = read_wav(p)
        assert 0.5 < np.max(np.abs(x)) < 0.95


def test_write_noise_folder_deterministic_and_keeps_existing(tmp_path):
    a = noise.write_noise_folder(tmp_path / "a", seed=3, seconds=2.0)
    b = noise.write_noise_folder(tmp_path / "b", seed=3, seconds=2.0)
    c = noise.write_noise_folder(tmp_path / "c", seed=4, seconds=2.0)
    for pa, pb, pc in zip(a, b, c):
        assert pa.read_bytes() == pb.read_bytes()
        assert pa.read_bytes() != pc.read_bytes()
    a[0].write_bytes(b"sentinel")
    noise.write_noise_folder(tmp_path / "a", seed=3, seconds=2.0)
    assert a[0].read_bytes() == b"sentinel", "existing files are not rewritten"
