"""The MFCC front end: one definition for training and for the runtime.

A :class:`FeatureConfig` fully describes how audio becomes the model's input. Training
caches features keyed by :meth:`FeatureConfig.hash`, every exported model carries the
config's canonical JSON, and the runtime rebuilds the same config from that JSON, so the
two sides cannot drift apart.

Two ways to compute the same numbers:

- :func:`mfcc` for a whole signal (training, evaluation);
- :class:`StreamingMfcc` for audio arriving in chunks of any size (the microphone). It
  returns exactly the frames :func:`mfcc` would return for the concatenated signal,
  because pre-emphasis state is carried across chunks and frames are cut at the same
  sample positions.

Frames are whole: a signal of ``n`` samples gives ``1 + (n - win) // hop`` frames and a
trailing partial frame is never padded (padding would change once more audio arrives).
Audio is float in [-1, 1) or int16 (scaled by 1/32768).

A config may normalise each model window per coefficient (``cmvn``); :func:`clip_features`
and the runtime engine both apply it through :func:`cmvn_`, to the window the model sees.

The filterbank, power spectrum and lifter come from python_speech_features; the framing,
windowing and log floor are done here so that streaming and batch share one code path.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, fields

import numpy as np
from python_speech_features.base import get_filterbanks, lifter
from python_speech_features.sigproc import powspec
from scipy.fftpack import dct

from kwspi.errors import FeatureConfigError

#: Bumped whenever the computation below changes in a way that changes its numbers.
FRONTEND_VERSION = 1

_WINDOWS = {
    "hamming": np.hamming,
    "hann": np.hanning,
    "rect": np.ones,
}


#: The sample rate kwspi works at, in Hz: GSC's, every model's, the runtime's.
SAMPLE_RATE = 16000

#: Per-window cepstral normalisation: none, mean (CMN), meanvar (CMVN).
CMVN_MODES = ("none", "mean", "meanvar")
#: Digital silence has no spread; dividing by at least this keeps its window at zero. The
#: cepstra of any sound spread by about 1 and more in these log units.
CMVN_STD_FLOOR = 1e-2

@dataclass(frozen=True)
class FeatureConfig:
    """How one second of audio becomes a ``[n_mfcc, n_frames]`` matrix of cepstra.

    Attributes
    ----------
    sample_rate:
        Sampling rate of the audio in Hz. Sources are resampled to it.
    win_ms:
        Length of one analysis frame in milliseconds (40 ms = 640 samples at 16 kHz).
    hop_ms:
        Step between the starts of two frames in milliseconds (20 ms = 320 samples).
    n_fft:
        FFT size; at least the frame length, or the frame would be truncated.
    n_mels:
        Number of triangular mel filters.
    n_mfcc:
        Number of cepstral coefficients kept: the model input's height (the paper tries
        10, 20, 30 and 40).
    low_hz, high_hz:
        Band edges of the mel filterbank in Hz; ``high_hz`` at most ``sample_rate / 2``.
    preemphasis:
        Coefficient of the first-order high-pass ``y[n] = x[n] - a * x[n-1]``; 0 disables it.
    lifter:
        Cepstral lifter coefficient (python_speech_features' ``ceplifter``); 0 disables it.
    append_energy:
        Replace coefficient 0 by the log of the frame's total power.
    window:
        Analysis window applied to each frame: ``"hamming"``, ``"hann"`` or ``"rect"``.
    energy_floor:
        Filterbank and frame energies are clamped to at least this before the log, so
        digital silence gives bounded features (about -100 dBFS) instead of ``log(eps)``.
    clip_ms:
        Length of the window the model sees, in milliseconds (GSC clips are 1 s).
    cmvn:
        Normalisation of each model window, per coefficient over its frames (:func:`cmvn_`):
        ``"none"``, ``"mean"`` or ``"meanvar"``. Left out of :meth:`to_json` at ``"none"``, so
        the hash of every front end made before it existed is unchanged.
    """

    sample_rate: int = SAMPLE_RATE
    win_ms: int = 40
    hop_ms: int = 20
    n_fft: int = 1024
    n_mels: int = 40
    n_mfcc: int = 10
    low_hz: float = 0.0
    high_hz: float = 8000.0
    preemphasis: float = 0.97
    lifter: int = 22
    append_energy: bool = True
    window: str = "hamming"
    energy_floor: float = 1e-10
    clip_ms: int = 1000
    cmvn: str = "none"

    def __post_init__(self):
        def bad(msg):
            raise FeatureConfigError(f"invalid front end: {msg}")

        if self.sample_rate <= 0:
            bad(f"sample_rate must be positive, got {self.sample_rate}")
        if (self.win_ms * self.sample_rate) % 1000 or (self.hop_ms * self.sample_rate) % 1000:
            bad("win_ms and hop_ms must be whole numbers of samples")
        if not 0 < self.hop_ms <= self.win_ms:
            bad(f"need 0 < hop_ms <= win_ms, got hop {self.hop_ms}, win {self.win_ms}")
        if self.n_fft < self.win_samples:
            bad(f"n_fft ({self.n_fft}) is smaller than the frame ({self.win_samples} samples)")
        if not 1 <= self.n_mfcc <= self.n_mels:
            bad(f"n_mfcc must be in 1..n_mels ({self.n_mels}), got {self.n_mfcc}")
        if not 0 <= self.low_hz < self.high_hz <= self.sample_rate / 2:
            bad(f"need 0 <= low_hz < high_hz <= {self.sample_rate / 2}")
        if self.window not in _WINDOWS:
            bad(f"window must be one of {sorted(_WINDOWS)}, got {self.window!r}")
        if self.energy_floor <= 0:
            bad("energy_floor must be positive")
        if self.clip_ms < self.win_ms:
            bad("clip_ms must be at least one frame long")
        if self.cmvn not in CMVN_MODES:
            bad(f"cmvn must be one of {CMVN_MODES}, got {self.cmvn!r}")

    @property
    def win_samples(self) -> int:
        return self.win_ms * self.sample_rate // 1000

    @property
    def hop_samples(self) -> int:
        return self.hop_ms * self.sample_rate // 1000

    @property
    def clip_samples(self) -> int:
        return self.clip_ms * self.sample_rate // 1000

    @property
    def n_frames(self) -> int:
        """Frames in one model window: the model input's width."""
        return frame_count(self.clip_samples, self)

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, with the front-end version."""
        d = asdict(self)
        if self.cmvn == "none":
            del d["cmvn"]
        d["frontend_version"] = FRONTEND_VERSION
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        """16 hex digits of the SHA-256 of :meth:`to_json`; names feature caches and models."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, text: str) -> "FeatureConfig":
        """Rebuild a config from :meth:`to_json`, refusing anything it cannot reproduce."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise FeatureConfigError(f"front end is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise FeatureConfigError("front end JSON must be an object")
        version = d.pop("frontend_version", None)
        if version != FRONTEND_VERSION:
            raise FeatureConfigError(
                f"front end version {version!r} is not supported by this kwspi "
                f"(it computes version {FRONTEND_VERSION}); upgrade kwspi or re-export the model"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise FeatureConfigError(f"front end has unknown keys {unknown}")
        return cls(**d)


def frame_count(n_samples: int, cfg: FeatureConfig) -> int:
    """Number of whole frames in ``n_samples`` samples."""
    if n_samples < cfg.win_samples:
        return 0
    return 1 + (n_samples - cfg.win_samples) // cfg.hop_samples


def as_float(signal) -> np.ndarray:
    """Audio as float64: int16 is scaled to [-1, 1), floats are taken as they are."""
    x = np.asarray(signal)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio of shape [n], got shape {x.shape}")
    if x.dtype == np.int16:
        return x.astype(np.float64) / 32768.0
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float64, copy=False)
    raise TypeError(f"audio must be int16 or floating point, got {x.dtype}")


def mfcc(signal, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """MFCCs of a whole signal, shape ``[cfg.n_mfcc, frame_count(len(signal))]`` (float64)."""
    x = as_float(signal)
    y = _preemphasize(x, cfg.preemphasis, prev=0.0)
    return _frames_to_mfcc(_frames(y, cfg), cfg)


def clip_features(signal, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Features of one model window, shape ``[n_mfcc, cfg.n_frames]`` (float32).

    The signal is cut or zero-padded at the end to ``cfg.clip_samples`` first, as GSC
    loaders pad clips shorter than a second.
    """
    x = as_float(signal)[: cfg.clip_samples]
    if len(x) < cfg.clip_samples:
        x = np.pad(x, (0, cfg.clip_samples - len(x)))
    return cmvn_(mfcc(x, cfg).astype(np.float32), cfg.cmvn)


def cmvn_(window: np.ndarray, mode: str) -> np.ndarray:
    """Normalise a model window ``[n_mfcc, n_frames]`` (float32) in place, per coefficient
    over its frames, and return it. Training (:func:`clip_features`) and the runtime (the
    window the engine hands the model) both call this on float32 frames, so they agree."""
    if mode == "none":
        return window
    centred = window - window.mean(axis=1, keepdims=True, dtype=np.float64)  # float64
    if mode == "meanvar":
        centred /= np.maximum(centred.std(axis=1, keepdims=True), CMVN_STD_FLOOR)
    window[:] = centred
    return window


class StreamingMfcc:
    """MFCC frames of a stream that arrives in chunks of any size.

    ``push`` returns the frames completed by the new chunk, shape ``[n_mfcc, k]``, equal
    (to float rounding) to the matching columns of :func:`mfcc` over everything pushed
    so far. Only new frames are computed, so the cost per hop is one or a few frames.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig()):
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        """Forget all audio, as if the stream started again."""
        self._prev = 0.0  # last raw sample, the pre-emphasis filter's state
        self._pending = np.zeros(0)  # pre-emphasised samples from the next frame's start on
        self.frames_emitted = 0

    def push(self, chunk) -> np.ndarray:
        x = as_float(chunk)
        if len(x) == 0:
            return np.zeros((self.cfg.n_mfcc, 0))
        y = _preemphasize(x, self.cfg.preemphasis, prev=self._prev)
        self._prev = float(x[-1])
        buf = np.concatenate([self._pending, y])
        out = _frames_to_mfcc(_frames(buf, self.cfg), self.cfg)
        k = out.shape[1]
        self._pending = buf[k * self.cfg.hop_samples:]
        self.frames_emitted += k
        return out


def _preemphasize(x: np.ndarray, a: float, prev: float) -> np.ndarray:
    y = np.empty_like(x)
    if len(x):
        y[0] = x[0] - a * prev
        y[1:] = x[1:] - a * x[:-1]
    return y


def _frames(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    n = frame_count(len(y), cfg)
    if n == 0:
        return np.zeros((0, cfg.win_samples))
    return np.lib.stride_tricks.sliding_window_view(y, cfg.win_samples)[:: cfg.hop_samples][:n]


def _frames_to_mfcc(frames: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    if len(frames) == 0:
        return np.zeros((cfg.n_mfcc, 0))
    window = _window(cfg.window, cfg.win_samples)
    pspec = powspec(frames * window, cfg.n_fft)  # [T, n_fft // 2 + 1]
    fb = _filterbank(cfg.n_mels, cfg.n_fft, cfg.sample_rate, cfg.low_hz, cfg.high_hz)
    energies = np.maximum(pspec @ fb.T, cfg.energy_floor)  # [T, n_mels]
    cep = dct(np.log(energies), type=2, axis=1, norm="ortho")[:, : cfg.n_mfcc]
    cep = lifter(cep, cfg.lifter)
    if cfg.append_energy:
        cep[:, 0] = np.log(np.maximum(pspec.sum(axis=1), cfg.energy_floor))
    return np.ascontiguousarray(cep.T)


@functools.lru_cache(maxsize=16)
def _window(name: str, n: int) -> np.ndarray:
    w = _WINDOWS[name](n).astype(np.float64)
    w.flags.writeable = False
    return w


@functools.lru_cache(maxsize=16)
def _filterbank(n_mels, n_fft, sample_rate, low_hz, high_hz) -> np.ndarray:
    fb = get_filterbanks(n_mels, n_fft, sample_rate, low_hz, high_hz)
    fb.flags.writeable = False
    return fb
