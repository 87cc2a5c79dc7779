"""One kwspi model file loaded into onnxruntime, checked against its own metadata.

:class:`LoadedModel` holds the session and the decoded ``kwspi.*`` metadata
(:class:`~kwspi.modelinfo.ModelInfo`) and maps one feature window to label posteriors:
input ``features`` float32 ``[1, 1, n_mfcc, n_frames]``, output ``logits`` ``[1, n_labels]``,
softmax applied here. A model adapted by ``kwspi enroll`` carries its own final layer in its
metadata (``head``, :mod:`kwspi.deploy.enroll`): then the ``embedding`` output is read instead
and the logits are ``W e + b`` here, in numpy. A graph whose shapes contradict its metadata is refused at load, with
the same one-line :class:`~kwspi.modelinfo.ModelFormatError` as any other bad file; so is one
that fails, or gives the wrong shape or non-finite logits, on a window of zeros.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kwspi.features import FeatureConfig
from kwspi.metrics import softmax
from kwspi.modelinfo import INPUT_NAME, OUTPUT_NAME, ModelFormatError, ModelInfo, enrolled_head, open_session

from kwspi.deploy.sources import SAMPLE_RATE


class LoadedModel:
    """An onnxruntime session over one kwspi model file, with its metadata.

    Use :meth:`load`. :meth:`posteriors` maps one feature window ``[n_mfcc, n_frames]`` to
    the label posteriors.
    """

    def __init__(self, path: Path, session, info: ModelInfo):
        self.path, self.session, self.info = Path(path), session, info
        cfg = info.features
        if cfg.sample_rate != SAMPLE_RATE:  # the sources deliver 16 kHz only
            raise ModelFormatError(path, f"front end at {cfg.sample_rate} Hz; the runtime listens at {SAMPLE_RATE} Hz")
        given = _pick(session.get_inputs(), INPUT_NAME)
        _check_shape(path, "input", given.shape, [None, 1, cfg.n_mfcc, cfg.n_frames])
        self.head = enrolled_head(info, path)
        if self.head is None:
            taken = _pick(session.get_outputs(), OUTPUT_NAME)
            _check_shape(path, "output", taken.shape, [None, len(info.labels)])
        else:
            taken = next((o for o in session.get_outputs() if o.name == info.embedding.get("output")), None)
            if taken is None:
                raise ModelFormatError(path, "has an enrolled head but no embedding output")
            _check_shape(path, "embedding output", taken.shape, [None, self.head[0].shape[1]])
        self.input_name, self.output_name = given.name, taken.name
        self._feed = np.zeros((1, 1, cfg.n_mfcc, cfg.n_frames), dtype=np.float32)
        self._try_once()

    def _try_once(self) -> None:
        # Symbolic dimensions pass the shape check above and can still fail in session.run;
        # found here, a bad file is one error at start or a refused reload, not a service
        # that crashes at its first window and is restarted into the same crash forever.
        try:
            logits = self._logits()
        except Exception as e:  # onnxruntime raises its own classes
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelFormatError(self.path, f"fails on a window of zeros ({first[:200]})") from None
        want = [1, len(self.info.labels)]
        if list(np.shape(logits)) != want:
            raise ModelFormatError(self.path, f"output shape {list(np.shape(logits))} on one window "
                                              f"does not match its metadata (expected {want})")
        if not np.all(np.isfinite(logits)):
            raise ModelFormatError(self.path, "gives logits that are not finite on a window of zeros")

    @classmethod
    def load(cls, path, threads: int = 1) -> "LoadedModel":
        """Open ``path`` with ``threads`` intra-op threads; raises ModelFormatError (one line)."""
        session, info = open_session(path, threads=threads)
        return cls(Path(path), session, info)

    @property
    def features(self) -> FeatureConfig:
        return self.info.features

    @property
    def window_buffer(self) -> np.ndarray:
        """The model's input window ``[n_mfcc, n_frames]`` (float32), a view into the feed:
        write a window here and call :meth:`run`, with no copy in between."""
        return self._feed[0, 0]

    def run(self) -> np.ndarray:
        """Label posteriors (float64, ``[n_labels]``) of the window in :attr:`window_buffer`."""
        return softmax(np.asarray(self._logits()[0], dtype=np.float64))

    def _logits(self) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: self._feed})[0]
        if self.head is None:
            return out
        weight, bias = self.head
        return out @ weight.T + bias

    def posteriors(self, window: np.ndarray) -> np.ndarray:
        """Label posteriors (float64, ``[n_labels]``) of one window ``[n_mfcc, n_frames]``."""
        self._feed[0, 0] = window
        return self.run()


def _pick(args, name):
    return next((a for a in args if a.name == name), args[0])


def _check_shape(path, what, shape, want) -> None:
    ok = len(shape) == len(want) and all(
        w is None or not isinstance(s, int) or s == w for s, w in zip(shape, want)
    )
    if not ok:
        raise ModelFormatError(path, f"{what} shape {list(shape)} does not match its metadata (expected {want})")
