"""The streaming engine: 16 kHz samples in, posteriors every stride, detections out.

Every stride (``stride_ms``, default 100 ms) the new samples go through the streaming front end
(:class:`~kwspi.features.StreamingMfcc`: only the new frames are computed), the frames
enter a ring holding the model's window (the last ``n_frames`` frames, one second), and the
int8 ONNX model scores that window once. :class:`StreamScorer` does this much and yields
:class:`Window` (time, posteriors); :class:`Detector` adds the decision logic
(:mod:`kwspi.deploy.decision`) and is the API for using kwspi from Python::

    from kwspi.deploy import Detector
    detector = Detector("model.onnx", thresholds={"yes": 0.9})
    for block in blocks_of_16khz_mono_audio:
        for d in detector.process(block):
            print(d.label, d.score, d.time)

Because audio is regrouped into whole strides before anything else sees it, the results do not
depend on how the input is chunked.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass

import numpy as np

from kwspi.errors import KwspiError
from kwspi.features import FeatureConfig, StreamingMfcc, as_float, cmvn_

from kwspi.deploy.decision import DecisionConfig, DecisionLogic, Detection, is_keyword, resolve_thresholds
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.ringbuffer import FrameRing, StrideBuffer

#: Milliseconds between two model windows unless told otherwise: ten decisions a second.
DEFAULT_STRIDE_MS = 100


class StrideError(KwspiError):
    """A stride length the model's front end cannot step by."""


@dataclass(frozen=True)
class Window:
    """The model's verdict on one window.

    Attributes
    ----------
    time:
        Seconds from the stream's start to the end of the window.
    posteriors:
        Softmax of the logits, one per label, shape ``[n_labels]``.
    """

    time: float
    posteriors: np.ndarray


def stride_samples(stride_ms: int, cfg: FeatureConfig) -> int:
    """``stride_ms`` in samples; at least one front-end frame step and at most one window."""
    if not cfg.hop_ms <= stride_ms <= cfg.clip_ms or (stride_ms * cfg.sample_rate) % 1000:
        raise StrideError(
            f"stride of {stride_ms} ms: must lie between the model's frame step ({cfg.hop_ms} ms) "
            f"and its window ({cfg.clip_ms} ms)"
        )
    return stride_ms * cfg.sample_rate // 1000


class StreamScorer:
    """Samples in, one :class:`Window` per stride out (once the first window is full).

    Parameters
    ----------
    model:
        The loaded model.
    stride_ms:
        Milliseconds between two windows, from the front end's frame step (20 ms) to its
        window (1 s). A window ends at the last whole frame, so with a stride that is not a
        multiple of the frame step the windows are spaced unevenly (40, 60, 40 ms ... at
        50 ms) and their times stay exact.
    """

    def __init__(self, model: LoadedModel, stride_ms: int = DEFAULT_STRIDE_MS):
        self.stride_ms = stride_ms
        self.samples_seen = 0  # samples consumed in whole strides since the stream started
        self._strides = None
        self._use(model, stride_samples(stride_ms, model.features))

    def _use(self, model: LoadedModel, stride: int) -> None:
        cfg = model.features
        self.model = model
        if self._strides is None or self._strides.stride != stride:
            self._strides = StrideBuffer(stride)  # a partial stride held by an old buffer is dropped
        self._mfcc = StreamingMfcc(cfg)
        self._ring = FrameRing(cfg.n_mfcc, cfg.n_frames)
        self._scored = 0  # ring count at the last inference
        self._origin = self.samples_seen  # stream sample where the front end's frame 0 starts

    @property
    def time(self) -> float:
        """Seconds of audio consumed, in whole strides."""
        return self.samples_seen / self.model.features.sample_rate

    def reset(self) -> None:
        """Start a new stream: time 0, empty window (the next window comes after warm-up)."""
        self.samples_seen = 0
        self._strides.reset()
        self._use(self.model, self._strides.stride)

    def replace_model(self, model: LoadedModel) -> None:
        """Score with ``model`` from the next stride on, keeping the stream clock.

        With the same front end the feature window carries over, so there is no gap; with
        another front end the window is refilled first (one window of warm-up).
        """
        stride = stride_samples(self.stride_ms, model.features)
        if model.features == self.model.features:
            self.model = model
        else:
            self._use(model, stride)

    def push(self, samples) -> list[Window]:
        """Add 16 kHz mono samples (int16, or float in [-1, 1)), shape ``[n]`` or ``[n, 1]``;
        return the windows completed."""
        x = np.asarray(samples)
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]  # sounddevice's layout for one channel
        out = []
        for block in self._strides.split(as_float(x)):
            window = self.step(block)
            if window is not None:
                out.append(window)
        return out

    def step(self, block: np.ndarray) -> Window | None:
        """Advance by exactly one stride of samples; a window if the ring is full and has new frames."""
        self._ring.extend(self.features(block))
        self.samples_seen += len(block)
        if not self._ring.full or self._ring.count == self._scored:
            return None
        self._scored = self._ring.count
        self._ring.window(self.model.window_buffer)  # straight into the model's input: one copy per stride
        cmvn_(self.model.window_buffer, self.model.features.cmvn)  # as training's clip_features does
        return Window(self._window_end(), self.infer())

    def features(self, block: np.ndarray) -> np.ndarray:
        """Front end: the frames completed by ``block``, ``[n_mfcc, k]``."""
        return self._mfcc.push(block)

    def infer(self) -> np.ndarray:
        """Model: posteriors of the window just written into ``model.window_buffer``."""
        return self.model.run()

    def _window_end(self) -> float:
        cfg = self.model.features
        end = self._origin + (self._mfcc.frames_emitted - 1) * cfg.hop_samples + cfg.win_samples
        return end / cfg.sample_rate


class Detector:
    """Keyword detection over a 16 kHz mono stream.

    Parameters
    ----------
    model:
        Path of a kwspi ONNX model, or a :class:`LoadedModel`.
    thresholds:
        ``None`` (the model's recommended thresholds), one float for every keyword, or a
        mapping ``{label: threshold}`` (key ``"default"`` for keywords not named).
    stride_ms:
        Milliseconds between two model windows, from the frame step (20 ms) to 1000.
    smoothing_s, refractory_s:
        Moving-average length and minimum re-fire interval in seconds
        (:class:`~kwspi.deploy.decision.DecisionConfig`).
    patience:
        Windows in a row over threshold before a keyword fires; ``None``: the model's
        (the patience its thresholds were calibrated with, 1 if it names none).
    threads:
        onnxruntime intra-op threads when ``model`` is a path.

    Raises
    ------
    ModelFormatError, ThresholdError, StrideError
        One-line errors for a bad model file, threshold or stride.
    """

    def __init__(self, model, thresholds=None, stride_ms: int = DEFAULT_STRIDE_MS, smoothing_s: float = 0.3,
                 refractory_s: float = 1.0, threads: int = 1, patience: int | None = None):
        loaded = model if isinstance(model, LoadedModel) else LoadedModel.load(model, threads)
        self._threads = threads
        self._overrides = thresholds
        self._smoothing_s, self._refractory_s, self._patience = smoothing_s, refractory_s, patience
        self.scorer = StreamScorer(loaded, stride_ms)
        self._logic = self._make_logic(loaded)

    def _make_logic(self, model: LoadedModel) -> DecisionLogic:
        info = model.info
        defaults = {label: info.threshold(label) for label in info.labels if is_keyword(label)}
        thresholds = resolve_thresholds(info.labels, defaults, self._overrides)
        decision = DecisionConfig(self._smoothing_s, self._refractory_s,
                                  info.patience if self._patience is None else self._patience)
        return DecisionLogic(info.labels, thresholds, self.scorer.stride_ms / 1000, decision)

    @property
    def model(self) -> LoadedModel:
        return self.scorer.model

    @property
    def thresholds(self) -> dict[str, float]:
        """Threshold per keyword in force."""
        return self._logic.thresholds

    @property
    def patience(self) -> int:
        """Patience in force."""
        return self._logic.config.patience

    @property
    def time(self) -> float:
        """Seconds of audio processed (in whole strides) since the stream started."""
        return self.scorer.time

    def process(self, samples) -> list[Detection]:
        """Feed 16 kHz mono samples (int16, or float in [-1, 1)), ``[n]`` or ``[n, 1]``, any n.

        Returns the detections of the windows this audio completed, oldest first.
        """
        return self.decide(self.scorer.push(samples))

    def decide(self, windows) -> list[Detection]:
        """The decision half of :meth:`process`: detections caused by these windows, in order.

        ``process(x)`` is ``decide(scorer.push(x))``. Streaming evaluation keeps the windows
        of one pass over a file and replays them here at many thresholds, so every
        threshold is judged by this same code, not by a copy of it.
        """
        found = []
        for window in windows:
            d = self._logic.update(window.posteriors, window.time, _time.time())
            if d is not None:
                found.append(d)
        return found

    def reset(self) -> None:
        """Start over as on a new stream (time 0, warm-up, all keywords armed)."""
        self.scorer.reset()
        self._logic.reset()

    def replace_model(self, model) -> None:
        """Swap in another model (a path or :class:`LoadedModel`) without restarting the stream.

        Thresholds are re-resolved against the new model's labels first, so a model that
        lacks a keyword given in ``thresholds`` raises and leaves the old model in place.
        Keywords start disarmed: one whose score is already above its threshold at the
        swap (a word the old model may have reported) fires only after it has dropped.
        """
        loaded = model if isinstance(model, LoadedModel) else LoadedModel.load(model, self._threads)
        stride_samples(self.scorer.stride_ms, loaded.features)
        logic = self._make_logic(loaded)
        logic.reset(armed=False)  # a word the old model already reported must not fire again
        self.scorer.replace_model(loaded)
        self._logic = logic
