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

Adding an augmentation (speed/pitch perturbation, EQ, reverb, ...) is one function with
the signature ``step(x, rng, cfg, res) -> x`` plus one boolean field on
:class:`AugmentConfig` (and its parameters), registered in :data:`WAVEFORM_STEPS` in the
order it should run. Augmentations of the features rather than the waveform
(SpecAugment) go in :data:`FEATURE_STEPS` with the signature ``step(f, rng, cfg) -> f``;
it is empty because the paper uses none. Inputs a step needs besides the clip (noise
recordings today, room impulse responses later) travel in :class:`AugmentResources`.
A new field changes :meth:`AugmentConfig.hash` for every config, which only means
cached augmented features are computed once more.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

#: Bumped whenever a step below changes the numbers it produces for the same config and seed.
AUGMENT_VERSION = 1

_NOISE_MIXES = ("paper", "tf")


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
        ``"paper"``: ``x * (1 - v) + noise * v``; ``"tf"``: ``clip(x + noise * v, -1, 1)``.
    """

    time_shift: bool = True
    shift_ms: int = 100
    background_noise: bool = True
    noise_prob: float = 0.8
    noise_max: float = 0.1
    noise_mix: str = "paper"

    def __post_init__(self):
        if self.shift_ms < 0:
            raise ValueError(f"shift_ms must be >= 0, got {self.shift_ms}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ValueError(f"noise_prob must be in [0, 1], got {self.noise_prob}")
        if not 0.0 <= self.noise_max <= 1.0:
            raise ValueError(f"noise_max must be in [0, 1], got {self.noise_max}")
        if self.noise_mix not in _NOISE_MIXES:
            raise ValueError(f"noise_mix must be one of {_NOISE_MIXES}, got {self.noise_mix!r}")

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, with the augmentation version."""
        d = asdict(self)
        d["augment_version"] = AUGMENT_VERSION
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "AugmentConfig":
        """Rebuild a config from :meth:`to_json` (as stored in a checkpoint)."""
        d = json.loads(text)
        version = d.pop("augment_version", None)
        if version != AUGMENT_VERSION:
            raise ValueError(f"augmentation version {version!r} is not {AUGMENT_VERSION}")
        return cls(**d)

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
    v = x.dtype.type(rng.uniform(0.0, cfg.noise_max))
    if cfg.noise_mix == "paper":
        return x * (1 - v) + excerpt * v
    return np.clip(x + excerpt * v, -1.0, 1.0)


WaveformStep = Callable[[np.ndarray, np.random.Generator, AugmentConfig, AugmentResources], np.ndarray]
FeatureStep = Callable[[np.ndarray, np.random.Generator, AugmentConfig], np.ndarray]

#: ``(AugmentConfig flag, step)`` in the order they run on the waveform.
WAVEFORM_STEPS: tuple[tuple[str, WaveformStep], ...] = (
    ("time_shift", time_shift),
    ("background_noise", background_noise),
)
#: ``(AugmentConfig flag, step)`` run on the ``[n_mfcc, n_frames]`` features; none in the paper.
FEATURE_STEPS: tuple[tuple[str, FeatureStep], ...] = ()


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
    """Run the enabled feature steps on ``[n_mfcc, n_frames]`` features (none yet)."""
    for flag, step in FEATURE_STEPS:
        if getattr(cfg, flag):
            f = step(f, rng, cfg)
    return f
