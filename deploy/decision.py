"""Turning a stream of posteriors into detections: smoothing, thresholds, refractory.

Pure logic, no audio and no model: :class:`DecisionLogic` is fed one posterior vector per
model window (every stride) and answers with at most one :class:`Detection`. The rules follow
the runtimes surveyed in ``research/anchors.md`` (section 8):

- **smoothing**: the score of a label is the mean of its posteriors over the last
  ``smoothing_s`` seconds of windows (time-based, so a stride of 20 ms averages 15 windows
  where a stride of 100 ms averages 3);
- **threshold**: a keyword fires when its smoothed score reaches its own threshold;
- **patience** (openWakeWord's): ... and has stayed at or above it for ``patience``
  consecutive windows (1: the first such window fires);
- **refractory**: after firing, a keyword re-arms only once its smoothed score has fallen
  below its threshold *and* at least ``refractory_s`` seconds have passed, so one spoken word
  fires exactly once however long it stays in the window;
- ``_silence_`` and ``_unknown_`` (any ``_name_``) never fire.

Warm-up (no decision before the first full window) is the engine's job: it only calls
:meth:`DecisionLogic.update` once a full window exists.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from kwspi.errors import KwspiError

#: Tolerance for comparing stream times built from sample counts (seconds).
_TIME_EPS = 1e-9


class ThresholdError(KwspiError):
    """A threshold that names no keyword of the model, or lies outside (0, 1]."""


@dataclass(frozen=True)
class Detection:
    """One keyword heard.

    Attributes
    ----------
    label:
        The keyword, as the model's metadata names it.
    score:
        Smoothed posterior that crossed the threshold, in [0, 1].
    time:
        Seconds from the start of the stream to the end of the window that fired.
    wall_time:
        Unix time (seconds) at which the detection was made; nan for one read back
        from a ``--json`` line.
    """

    label: str
    score: float
    time: float
    wall_time: float = math.nan

    def as_json(self) -> dict:
        """The ``--json`` line: label, score (4 decimals) and stream time (ms precision)."""
        return {"label": self.label, "score": round(float(self.score), 4), "time": round(float(self.time), 3)}

    @classmethod
    def from_json(cls, d: dict) -> "Detection":
        """A detection read back from its ``--json`` line (no wall time)."""
        return cls(str(d["label"]), float(d.get("score", math.nan)), float(d["time"]))


@dataclass(frozen=True)
class DecisionConfig:
    """How posteriors become detections.

    Attributes
    ----------
    smoothing_s:
        Length of the moving average over window posteriors, in seconds; at least one
        window is always used.
    refractory_s:
        Minimum time between two detections of the same keyword, in seconds (the score
        must also have fallen below the threshold in between).
    patience:
        Consecutive windows a keyword's smoothed score must be at or above its threshold
        before it fires; 1 fires on the first.
    """

    smoothing_s: float = 0.3
    refractory_s: float = 1.0
    patience: int = 1

    def __post_init__(self):
        if not (math.isfinite(self.smoothing_s) and self.smoothing_s >= 0):
            raise ValueError(f"smoothing_s must be >= 0 seconds, got {self.smoothing_s}")
        if not (math.isfinite(self.refractory_s) and self.refractory_s >= 0):
            raise ValueError(f"refractory_s must be >= 0 seconds, got {self.refractory_s}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience must be a whole number of windows >= 1, got {self.patience!r}")

    def smoothing_windows(self, stride_s: float) -> int:
        """Number of windows averaged at a stride of ``stride_s`` seconds."""
        return max(1, round(self.smoothing_s / stride_s))


def is_keyword(label: str) -> bool:
    """Whether a label may fire: ``_silence_``, ``_unknown_`` and any ``_name_`` never do."""
    return not (label.startswith("_") and label.endswith("_"))


def resolve_thresholds(labels, defaults: Mapping[str, float], overrides=None) -> dict[str, float]:
    """The threshold of every keyword.

    Parameters
    ----------
    labels:
        The model's labels in index order.
    defaults:
        Threshold per keyword from the model's metadata.
    overrides:
        ``None``; a float for all keywords; or a mapping from keyword to threshold, where
        the key ``"default"`` (the metadata's convention) sets all keywords not named.

    Raises
    ------
    ThresholdError
        For a label the model lacks (the message lists the model's keywords), a label that
        never fires, or a value outside (0, 1].
    """
    keywords = [label for label in labels if is_keyword(label)]
    out = {k: float(defaults[k]) for k in keywords}
    if overrides is None:
        return out
    if not isinstance(overrides, Mapping):
        overrides = {"default": overrides}
    named = {k: v for k, v in overrides.items() if k != "default"}
    listed = ", ".join(keywords)
    for label in named:
        if label not in labels:
            raise ThresholdError(f"threshold for unknown label {label!r}; the model's keywords are: {listed}")
        if label not in keywords:
            raise ThresholdError(f"threshold for {label!r}, which never fires; the model's keywords are: {listed}")
    if "default" in overrides:
        out = dict.fromkeys(keywords, overrides["default"])
    out.update(named)
    for label, value in out.items():
        value = float(value)
        if not 0.0 < value <= 1.0:
            raise ThresholdError(f"threshold for {label!r} must be in (0, 1], got {value}")
        out[label] = value
    return out


class DecisionLogic:
    """Smoothing, per-keyword thresholds, patience and a re-arming refractory over window posteriors.

    Parameters
    ----------
    labels:
        The model's labels in index order (the posterior vector's order).
    thresholds:
        Threshold per keyword (see :func:`resolve_thresholds`); labels missing here never fire.
    stride_s:
        Time between two windows in seconds.
    config:
        Smoothing length, refractory time and patience.
    """

    def __init__(self, labels, thresholds: Mapping[str, float], stride_s: float,
                 config: DecisionConfig = DecisionConfig()):
        self.labels = tuple(labels)
        self.config = config
        self._index = np.array(
            [i for i, label in enumerate(self.labels) if label in thresholds and is_keyword(label)], dtype=np.intp
        )
        self._threshold = np.array([thresholds[self.labels[i]] for i in self._index], dtype=np.float64)
        self._history: deque[np.ndarray] = deque(maxlen=config.smoothing_windows(stride_s))
        self.reset()

    @property
    def thresholds(self) -> dict[str, float]:
        """Threshold per keyword that can fire."""
        return {self.labels[i]: float(t) for i, t in zip(self._index, self._threshold)}

    def reset(self, armed: bool = True) -> None:
        """Forget past windows; every keyword armed, or (``armed=False``) arming only once
        its score has been below its threshold, so a word already under way cannot fire."""
        self._history.clear()
        self._armed = np.full(len(self._index), armed, dtype=bool)
        self._streak = np.zeros(len(self._index), dtype=np.int64)  # windows in a row at or over threshold
        self._last_fire = np.full(len(self._index), -np.inf)

    def update(self, posteriors, time: float, wall_time: float = 0.0) -> Detection | None:
        """Take the posteriors of the window ending at ``time`` (stream seconds).

        Returns the detection this window causes, if any: at most one, the keyword with the
        highest smoothed score among those armed and at or above their threshold for
        ``patience`` windows in a row.
        """
        p = np.asarray(posteriors, dtype=np.float64)
        if p.shape != (len(self.labels),):
            raise ValueError(f"expected {len(self.labels)} posteriors, got shape {p.shape}")
        self._history.append(p[self._index])
        smoothed = np.mean(self._history, axis=0)
        over = smoothed >= self._threshold
        self._streak = np.where(over, self._streak + 1, 0)
        rested = time - self._last_fire >= self.config.refractory_s - _TIME_EPS
        self._armed |= ~over & rested
        ready = np.flatnonzero((self._streak >= self.config.patience) & self._armed)
        if len(ready) == 0:
            return None
        k = ready[np.argmax(smoothed[ready])]
        self._armed[k] = False
        self._last_fire[k] = time
        return Detection(self.labels[self._index[k]], float(smoothed[k]), float(time), float(wall_time))
