"""Training-time augmentation of 1-second waveforms (paper section 1.1, training only).

The paper's recipe, as the authors' code implements it, applied to every training
example including the all-zero silence clips:

1. **Time shift** by a whole number of milliseconds drawn uniformly from
   ``[-shift_ms, shift_ms)`` (Python's ``randint(-100, 100)`` in the authors' code, so
   -100..99 ms), times the samples per millisecond (16 at 16 kHz). The clip keeps its
   length: content moves later for a positive shift, and the gap is filled with zeros.
2. **Background noise**: with probability ``noise_prob`` pick a random noise recording and
   a random offset in it and mix that excerpt at volume ``v ~ U(0, noise_max)``.
   The authors mix as ``x * (1 - v) + noise * v`` (``noise_mix="paper"``, the default);
   TensorFlow's speech_commands recipe instead adds ``x + noise * v`` and clips to
   [-1, 1] (``noise_mix="tf"``).

Every function is pure: randomness comes only from the :class:`numpy.random.Generator`
passed in, so an augmented view is reproducible from its seed.

Beyond the paper, off by default, for voices and channels never heard in training: speed
perturbation, synthetic reverberation, a random equaliser, noise at an SNR drawn from a
range, and SpecAugment-style masking (``kwspi train --augment``; :data:`EXTRA_AUGMENTATIONS`).

Adding an augmentation is one function with the signature ``step(x, rng, cfg, res) -> x``
plus one boolean field on :class:`AugmentConfig` (and its parameters), registered in
:data:`WAVEFORM_STEPS` in the order it should run. Augmentations of the features go in
:data:`FEATURE_STEPS` with the signature ``step(f, rng, cfg) -> f``. Inputs a step needs
besides the clip (noise recordings) travel in :class:`AugmentResources`. A new field
changes :meth:`AugmentConfig.hash` for every config, which only means cached augmented
features are computed once more.

(Past the ~350-line mark on purpose: one config and the small pure steps it switches on
read best side by side; a split would put each flag a file away from what it does.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

#: Bumped whenever a step below changes the numbers it produces for the same config and seed.
AUGMENT_VERSION = 1

_NOISE_MIXES = ("paper", "tf", "snr")
_PAPER_FIELDS = ("time_shift", "shift_ms", "background_noise", "noise_prob", "noise_max", "noise_mix")


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run, and their parameters.

    Attributes
    ----------
    time_shift:
        Shift the clip in time (zero fill).
    shift_ms:
        Shifts are whole milliseconds in ``[-shift_ms, shift_ms)``.
    background_noise:
        Mix in background noise (needs noise recordings; see :class:`AugmentResources`).
    noise_prob:
        Probability that a clip gets noise at all.
    noise_max:
        Noise volume ``v`` is drawn from ``U(0, noise_max)``.
    noise_mix:
        ``"paper"``: ``x * (1 - v) + noise * v``; ``"tf"``: ``clip(x + noise * v, -1, 1)``;
        ``"snr"``: ``x + noise * g`` with ``g`` giving an SNR drawn from ``snr_db``.
    snr_db:
        ``(low, high)`` dB: the SNR range of ``noise_mix="snr"``.

    Beyond the paper, for voices and channels never heard in training (research/generalisation.md):

    speed:
        Speed perturbation: resample by a factor in ``[1 - speed_range, 1 + speed_range]``,
        which moves tempo and pitch together (Ko et al. 2015).
    eq:
        A random smooth equaliser: gains in ``[-eq_db, eq_db]`` at ``eq_points`` log-spaced
        frequencies, interpolated over the spectrum (microphones and rooms colour speech).
    reverb:
        With probability ``reverb_prob``, convolve with a synthetic room impulse response:
        a direct path plus exponentially decaying noise with RT60 in ``rt60_s``.
    spec_augment:
        SpecAugment-style masking of the features: ``time_masks`` runs of up to
        ``time_mask_frames`` frames and ``freq_masks`` runs of up to ``freq_mask_coeffs``
        coefficients, each set to that coefficient's mean over the clip.
    """

    time_shift: bool = True
    shift_ms: int = 100
    background_noise: bool = True
    noise_prob: float = 0.8
    noise_max: float = 0.1
    noise_mix: str = "paper"
    snr_db: tuple[float, float] = (0.0, 30.0)
    speed: bool = False
    speed_range: float = 0.1
    eq: bool = False
    eq_db: float = 6.0
    eq_points: int = 6
    reverb: bool = False
    reverb_prob: float = 0.5
    rt60_s: tuple[float, float] = (0.1, 0.7)
    spec_augment: bool = False
    time_masks: int = 2
    time_mask_frames: int = 5
    freq_masks: int = 1
    freq_mask_coeffs: int = 2

    def __post_init__(self):
        if self.shift_ms < 0:
            raise ValueError(f"shift_ms must be >= 0, got {self.shift_ms}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ValueError(f"noise_prob must be in [0, 1], got {self.noise_prob}")
        if not 0.0 <= self.noise_max <= 1.0:
            raise ValueError(f"noise_max must be in [0, 1], got {self.noise_max}")
        if self.noise_mix not in _NOISE_MIXES:
            raise ValueError(f"noise_mix must be one of {_NOISE_MIXES}, got {self.noise_mix!r}")
        if not 0.0 <= self.speed_range < 1.0:
            raise ValueError(f"speed_range must be in [0, 1), got {self.speed_range}")
        if not (0.0 <= self.reverb_prob <= 1.0 and 0.0 < self.rt60_s[0] <= self.rt60_s[1]):
            raise ValueError(f"need reverb_prob in [0, 1] and 0 < rt60_s[0] <= rt60_s[1], got {self.rt60_s}")
        if self.snr_db[0] > self.snr_db[1] or self.eq_points < 2:
            raise ValueError("snr_db must be (low, high) with low <= high, and eq_points >= 2")

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, with the augmentation version.

        Fields added after the paper's recipe appear only when they differ from their
        defaults, so the paper's config keeps its JSON, its hash and its cached features.
        """
        defaults = AugmentConfig()
        d = {k: v for k, v in asdict(self).items() if k in _PAPER_FIELDS or v != getattr(defaults, k)}
        d["augment_version"] = AUGMENT_VERSION
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "AugmentConfig":
        """Rebuild a config from :meth:`to_json` (as stored in a checkpoint)."""
        d = json.loads(text)
        version = d.pop("augment_version", None)
        if version != AUGMENT_VERSION:
            raise ValueError(f"augmentation version {version!r} is not {AUGMENT_VERSION}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})  # JSON has no tuples

    def hash(self) -> str:
        """16 hex digits of the SHA-256 of :meth:`to_json`; keys caches of augmented features."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def any_enabled(self) -> bool:
        return any(getattr(self, flag) for flag, _ in WAVEFORM_STEPS + FEATURE_STEPS)


@dataclass(frozen=True, eq=False)
class AugmentResources:
    """What the steps need besides the clip.

    Attributes
    ----------
    sample_rate:
        Rate of the clips and of the noise, in Hz.
    noise:
        Background-noise recordings, each float32 mono ``[n_i]`` at ``sample_rate``.
    """

    sample_rate: int
    noise: tuple[np.ndarray, ...] = field(default=())


def shift(x: np.ndarray, samples: int) -> np.ndarray:
    """``x`` moved ``samples`` later (earlier if negative), same length, zero fill."""
    out = np.zeros_like(x)
    if samples >= len(x) or -samples >= len(x):
        return out
    if samples > 0:
        out[samples:] = x[:-samples]
    elif samples < 0:
        out[:samples] = x[-samples:]
    else:
        out[:] = x
    return out


def time_shift(
    x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, res: AugmentResources
) -> np.ndarray:
    """Shift by ``U{-shift_ms, ..., shift_ms - 1}`` ms, converted to samples."""
    if cfg.shift_ms == 0:
        return x
    ms = int(rng.integers(-cfg.shift_ms, cfg.shift_ms))
    return shift(x, round(ms * res.sample_rate / 1000))


def noise_excerpt(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` consecutive samples of ``noise`` from a random offset.

    A recording shorter than ``n`` is repeated (GSC's are a minute or more; generated or
    user-supplied ones may be shorter).
    """
    if len(noise) < n:
        noise = np.resize(noise, n)
    start = int(rng.integers(0, len(noise) - n + 1))
    return noise[start:start + n]


def background_noise(
    x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, res: AugmentResources
) -> np.ndarray:
    """With probability ``noise_prob``, mix a random noise excerpt at ``v ~ U(0, noise_max)``."""
    if not res.noise or rng.random() >= cfg.noise_prob:
        return x
    noise = res.noise[int(rng.integers(len(res.noise)))]
    excerpt = noise_excerpt(noise, len(x), rng).astype(x.dtype, copy=False)
    if cfg.noise_mix == "snr":
        return mix_at_snr(x, excerpt, rng.uniform(*cfg.snr_db))
    v = x.dtype.type(rng.uniform(0.0, cfg.noise_max))
    if cfg.noise_mix == "paper":
        return x * (1 - v) + excerpt * v
    return np.clip(x + excerpt * v, -1.0, 1.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def mix_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x + g * noise`` with ``rms(x) / rms(g * noise) = 10^(snr_db / 20)``, clipped to [-1, 1].

    The clip's RMS includes its silence, so this is the SNR over the whole second; a clip
    with no signal (the silence class) gets the noise at full scale of the noise itself.
    """
    speech, n = rms(x), rms(noise)
    if n == 0.0:
        return x
    gain = speech / n / 10 ** (snr_db / 20) if speech > 0 else 1.0
    return np.clip(x + noise * x.dtype.type(gain), -1.0, 1.0)


def fit_to(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded symmetrically to ``n`` samples, keeping its centre."""
    if len(x) >= n:
        start = (len(x) - n) // 2
        return x[start:start + n]
    out = np.zeros(n, dtype=x.dtype)
    start = (n - len(x)) // 2
    out[start:start + len(x)] = x
    return out


def speed(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, res: AugmentResources) -> np.ndarray:
    """Play ``x`` at a speed factor in ``1 +- speed_range`` (resampled, so pitch moves too)."""
    import soxr  # the runtime's resampler; imported here so the module loads without it

    factor = rng.uniform(1 - cfg.speed_range, 1 + cfg.speed_range)
    played = soxr.resample(x, res.sample_rate * factor, res.sample_rate, quality="HQ")
    return fit_to(played.astype(x.dtype, copy=False), len(x))


def eq(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, res: AugmentResources) -> np.ndarray:
    """A random smooth gain curve over the spectrum: dB gains at log-spaced frequencies from
    50 Hz to Nyquist, linear in dB between them."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / res.sample_rate)
    points = np.geomspace(50.0, res.sample_rate / 2, cfg.eq_points)
    gains_db = rng.uniform(-cfg.eq_db, cfg.eq_db, cfg.eq_points)
    curve = np.interp(np.log(np.maximum(freqs, 50.0)), np.log(points), gains_db)
    out = np.fft.irfft(spectrum * 10 ** (curve / 20), n=len(x)).astype(x.dtype)
    return np.clip(out, -1.0, 1.0)


def room_impulse(rng: np.random.Generator, rt60_s: float, sample_rate: int) -> np.ndarray:
    """A synthetic RIR: unit direct path, then noise decaying 60 dB over ``rt60_s``,
    starting 2.5 ms later (a first reflection), its energy about a third of the whole."""
    n = int(rt60_s * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)  # 10^(-60/20) = e^-6.9
    tail[: int(0.0025 * sample_rate)] = 0.0
    tail *= np.sqrt(0.5 / max(np.sum(tail**2), 1e-12))
    tail[0] = 1.0
    return tail


def reverb(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, res: AugmentResources) -> np.ndarray:
    """With probability ``reverb_prob``, ``x`` in a synthetic room, at its original RMS."""
    if rng.random() >= cfg.reverb_prob:
        return x
    h = room_impulse(rng, rng.uniform(*cfg.rt60_s), res.sample_rate)
    n = len(x) + len(h) - 1
    wet = np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(h, n), n)[: len(x)]
    before, after = rms(x), rms(wet)
    if after > 0:
        wet *= before / after
    return np.clip(wet, -1.0, 1.0).astype(x.dtype)


def spec_augment(f: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Mask runs of frames and of coefficients of ``[n_mfcc, n_frames]`` features with each
    coefficient's mean (zero would be a loud or silent frame, not a missing one)."""
    f = f.copy()
    mean = f.mean(axis=1, keepdims=True)
    n_coeffs, n_frames = f.shape
    for _ in range(cfg.time_masks):
        width = int(rng.integers(0, cfg.time_mask_frames + 1))
        start = int(rng.integers(0, max(n_frames - width, 0) + 1))
        f[:, start:start + width] = mean
    for _ in range(cfg.freq_masks):
        width = int(rng.integers(0, cfg.freq_mask_coeffs + 1))
        start = int(rng.integers(0, max(n_coeffs - width, 0) + 1))
        f[start:start + width] = mean[start:start + width]
    return f


WaveformStep = Callable[[np.ndarray, np.random.Generator, AugmentConfig, AugmentResources], np.ndarray]
FeatureStep = Callable[[np.ndarray, np.random.Generator, AugmentConfig], np.ndarray]

#: ``(AugmentConfig flag, step)`` in the order they run on the waveform.
#: The speaker (speed), then the room (reverb), the microphone (eq), the position in the
#: window (shift) and last the background, which is not in the room with the speaker.
WAVEFORM_STEPS: tuple[tuple[str, WaveformStep], ...] = (
    ("speed", speed),
    ("reverb", reverb),
    ("eq", eq),
    ("time_shift", time_shift),
    ("background_noise", background_noise),
)
#: ``(AugmentConfig flag, step)`` run on the ``[n_mfcc, n_frames]`` features; none in the paper.
FEATURE_STEPS: tuple[tuple[str, FeatureStep], ...] = (("spec_augment", spec_augment),)

#: ``kwspi train --augment`` names: what each adds to the paper's recipe.
EXTRA_AUGMENTATIONS = {
    "speed": {"speed": True},
    "eq": {"eq": True},
    "reverb": {"reverb": True},
    "snr": {"noise_mix": "snr"},
    "specaugment": {"spec_augment": True},
}


def with_extras(names) -> AugmentConfig:
    """The paper's recipe plus the named :data:`EXTRA_AUGMENTATIONS`."""
    unknown = sorted(set(names) - set(EXTRA_AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(EXTRA_AUGMENTATIONS)}")
    changes = {}
    for name in names:
        changes.update(EXTRA_AUGMENTATIONS[name])
    return AugmentConfig(**changes)


def augment_waveform(
    x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, res: AugmentResources
) -> np.ndarray:
    """Run the enabled waveform steps on one clip.

    Parameters
    ----------
    x:
        float32 mono clip ``[n]`` in [-1, 1), already cut or padded to the model window.
    rng:
        The only source of randomness; the same generator state gives the same output.

    Returns
    -------
    np.ndarray
        A new float array ``[n]``; ``x`` is not modified.
    """
    for flag, step in WAVEFORM_STEPS:
        if getattr(cfg, flag):
            x = step(x, rng, cfg, res)
    return x


def augment_features(f: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Run the enabled feature steps on ``[n_mfcc, n_frames]`` features."""
    for flag, step in FEATURE_STEPS:
        if getattr(cfg, flag):
            f = step(f, rng, cfg)
    return f
