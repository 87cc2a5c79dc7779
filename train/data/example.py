"""One example: a clip (or silence) to features, augmented or not (paper section 1.1).

Clips are held as 16-bit PCM after loading, which is lossless for GSC's 16-bit files and
makes a cached and a freshly computed view bit-identical.

**Augmented training views (a decision).** Augmentation acts on the waveform before the
MFCC, so a training example has no single set of features to cache. Instead ``views``
augmented copies of every training example are computed once and cached: view ``k`` of
example ``i`` is drawn from ``np.random.default_rng([seed, i, k])``, and epoch ``e``
trains on view ``e % views``. This trades augmentation diversity (``views`` distinct
shifts and noise mixes per clip instead of one per epoch) for not recomputing about a
millisecond of MFCC per clip per epoch on the CPU. With ``views=None`` (or 0) nothing is
cached: the waveforms stay in memory and epoch ``e`` computes view ``e`` of every example,
a fresh augmentation every epoch, equal to cached view ``e``. Evaluation splits are never augmented.
"""

from __future__ import annotations

import logging
import struct

import numpy as np
import soxr

from kwspi import gsc
from kwspi.errors import WavError
from kwspi.features import FeatureConfig, clip_features
from kwspi.train.speech.augment import AugmentConfig, AugmentResources, augment_features, augment_waveform
from kwspi.wavio import read_wav

log = logging.getLogger(__name__)

# A damaged file raises one of these; anything else is a bug and keeps its traceback.
UNREADABLE = (WavError, ValueError, OSError, EOFError, struct.error)


def load_noise(root, sample_rate: int) -> tuple[np.ndarray, ...]:
    """The ``_background_noise_`` recordings as float32 at ``sample_rate``; bad files skipped."""
    out = []
    for path in gsc.noise_files(root):
        try:
            x, rate = read_wav(path)
            if rate != sample_rate:
                x = soxr.resample(x, rate, sample_rate)
        except UNREADABLE as e:
            log.warning("skipping background noise %s", reason(path, e))
            continue
        out.append(np.ascontiguousarray(x, dtype=np.float32))
    return tuple(out)


def view_rng(seed: int, index: int, view: int) -> np.random.Generator:
    """The generator of augmented view ``view`` of example ``index`` (see module docstring)."""
    return np.random.default_rng([seed, index, view])


def example_features(
    wave: np.ndarray,
    cfg: FeatureConfig,
    aug: AugmentConfig | None = None,
    res: AugmentResources | None = None,
    seed: int = 0,
    index: int = 0,
    view: int | None = None,
) -> np.ndarray:
    """Features of one example, float32 ``[1, n_mfcc, n_frames]``.

    ``view=None`` (or ``aug=None``) gives the unaugmented features; otherwise the clip is
    augmented with :func:`view_rng` ``(seed, index, view)`` first. ``wave`` is int16
    ``[cfg.clip_samples]`` as :func:`load_clip` returns it.
    """
    if aug is None or view is None:
        return clip_features(wave, cfg)[None]
    rng = view_rng(seed, index, view)
    x = augment_waveform(wave.astype(np.float32) / np.float32(32768.0), rng, aug, res)
    return augment_features(clip_features(x, cfg), rng, aug)[None]


def reason(path, err: Exception) -> str:
    return str(err) if isinstance(err, WavError) else f"{path}: {type(err).__name__}: {err}"
