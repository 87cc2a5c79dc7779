"""Streaming evaluation: the listening engine run over a long WAV, scored against its truth.

One pass of the real runtime (:class:`~kwspi.deploy.sources.WavSource` into a
:class:`~kwspi.deploy.engine.Detector`, as ``kwspi listen --input`` does) gives the
detections at the thresholds asked for, and keeps the engine's per-stride verdicts
(:class:`ScoreTrace`: window end times and posteriors). The decisions only depend on those
verdicts, so a threshold sweep replays the trace through :meth:`Detector.decide` with each
threshold instead of listening again: the same smoothing, thresholds and refractory code,
one network pass. Scoring is :mod:`kwspi.deploy.evaluation.score`'s.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from kwspi.deploy.evaluation.score import by_speaker, false_alarm_sources, score_detections, summarize
from kwspi.deploy.evaluation.truth import TruthRow

from kwspi.deploy.decision import Detection, is_keyword
from kwspi.deploy.engine import DEFAULT_STRIDE_MS, Detector, Window
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.sources import SAMPLE_RATE, WavSource

#: Thresholds a sweep tries, for every keyword at once; dense from 0.9 up, where the false
#: alarms of the bundled model thin out.
SWEEP_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97,
                    0.98, 0.99, 0.995, 0.999)
#: Issue 6's operating point: at most half a false alarm per hour (openWakeWord's target).
TARGET_FA_PER_HOUR = 0.5


@dataclass(frozen=True)
class ScoreTrace:
    """The engine's verdict on every window of a stream.

    Attributes
    ----------
    times:
        Window end times in seconds, ``[n]`` (float64).
    posteriors:
        Label posteriors per window, ``[n, n_labels]`` (float64, as the engine made them).
    """

    times: np.ndarray
    posteriors: np.ndarray

    def windows(self) -> Iterator[Window]:
        """The windows again, bit-identical to those the engine produced."""
        for t, p in zip(self.times, self.posteriors):
            yield Window(float(t), p)


@dataclass(frozen=True)
class StreamRun:
    """One pass over a WAV: its detections at the thresholds given, and the trace."""

    detections: tuple[Detection, ...]
    trace: ScoreTrace
    seconds: float  # length of the file's audio
    thresholds: dict[str, float]  # in force, per keyword
    patience: int  # in force


def run_stream(model: LoadedModel, source: WavSource, thresholds=None, stride_ms: int = DEFAULT_STRIDE_MS,
               progress: Callable[[float], None] | None = None, patience: int | None = None) -> StreamRun:
    """Listen to ``source`` as ``kwspi listen --input`` does, keeping every window's posteriors.

    ``thresholds``, ``stride_ms`` and ``patience`` are :class:`Detector`'s; ``progress``
    gets the seconds of audio each block added.
    """
    detector = Detector(model, thresholds=thresholds, stride_ms=stride_ms, patience=patience)
    times, posteriors, found = [], [], []
    for block in source.blocks(threading.Event()):
        windows = detector.scorer.push(block)
        times.extend(w.time for w in windows)
        posteriors.extend(w.posteriors for w in windows)
        found.extend(detector.decide(windows))
        if progress:
            progress(len(block) / SAMPLE_RATE)
    n_labels = len(model.info.labels)
    trace = ScoreTrace(np.asarray(times, np.float64),
                       np.asarray(posteriors, np.float64).reshape(len(times), n_labels))
    return StreamRun(tuple(found), trace, source.seconds, detector.thresholds, detector.patience)


def replay(trace: ScoreTrace, model: LoadedModel, thresholds=None, stride_ms: int = DEFAULT_STRIDE_MS,
           patience: int | None = None) -> list[Detection]:
    """The detections a fresh :class:`Detector` with ``thresholds`` and ``patience`` makes on ``trace``."""
    return Detector(model, thresholds=thresholds, stride_ms=stride_ms, patience=patience).decide(trace.windows())


def keywords_of(model: LoadedModel) -> list[str]:
    """The labels that can fire, in the model's order."""
    return [label for label in model.info.labels if is_keyword(label)]


def sweep(run: StreamRun, model: LoadedModel, truth: Sequence[TruthRow], stride_ms: int = DEFAULT_STRIDE_MS,
          grid: Sequence[float] = SWEEP_THRESHOLDS, target_fa_per_hour: float = TARGET_FA_PER_HOUR) -> dict:
    """Recall and false alarms per hour at each threshold of ``grid`` (all keywords alike, at
    the run's patience).

    Returns ``{"target_fa_per_hour", "best", "rows"}``: one row per threshold (``threshold``,
    ``recall``, ``hits``, ``false_alarms``, ``fa_per_hour``, ``latency_median_s``,
    ``latency_p95_s``) and ``best``, the row of the lowest threshold at or under the target
    (the most recall the target allows), or ``None`` when no threshold meets it.
    """
    keywords = keywords_of(model)
    rows = []
    for t in sorted(grid):
        score = score_detections(replay(run.trace, model, t, stride_ms, run.patience), truth, keywords)
        figures = summarize(score, run.seconds, keywords)
        rows.append({"threshold": t, **{k: figures[k] for k in (
            "recall", "hits", "false_alarms", "fa_per_hour", "latency_median_s", "latency_p95_s")}})
    best = next((r for r in rows if r["fa_per_hour"] <= target_fa_per_hour), None)
    return {"target_fa_per_hour": target_fa_per_hour, "best": best, "rows": rows}


def report(run: StreamRun, model: LoadedModel, truth: Sequence[TruthRow]) -> dict:
    """The figures of one run (:func:`~kwspi.deploy.evaluation.score.summarize`), the thresholds in
    force, which spoken words the false alarms fired on, the figures per engine and voice
    when the truth says who spoke (:func:`~kwspi.deploy.evaluation.score.by_speaker`), and the detections themselves
    (``kwspi listen --json``'s objects, so the two can be compared line for line)."""
    keywords = keywords_of(model)
    score = score_detections(run.detections, truth, keywords)
    window_s = model.features.clip_ms / 1000
    return {"thresholds": run.thresholds, "patience": run.patience, **summarize(score, run.seconds, keywords),
            "false_alarm_sources": false_alarm_sources(score, truth, window_s),
            **by_speaker(score, truth, window_s),
            "detections": [d.as_json() for d in run.detections]}


def shown(path) -> Path:
    """``path`` relative to the working directory when it lies below it: results that are
    kept and shared should not carry one machine's absolute paths."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def evaluate_stream(model: LoadedModel, source: WavSource, truth: Sequence[TruthRow], thresholds=None,
                    stride_ms: int = DEFAULT_STRIDE_MS, grid: Sequence[float] | None = None,
                    target_fa_per_hour: float = TARGET_FA_PER_HOUR,
                    progress: Callable[[float], None] | None = None, patience: int | None = None) -> dict:
    """``kwspi eval-stream``'s JSON object: :func:`report`, plus ``sweep`` when ``grid`` is given."""
    run = run_stream(model, source, thresholds, stride_ms, progress, patience)
    out = {"model": str(shown(model.path)), "input": str(shown(source.path)), "stride_ms": stride_ms,
           **report(run, model, truth)}
    if grid is not None:
        out["sweep"] = sweep(run, model, truth, stride_ms, grid, target_fa_per_hour)
    return out
