"""Per-keyword thresholds from recordings of the place a model will listen in.

``kwspi calibrate`` listens once to keyword-free speech and noise (the *negatives*: every
detection there is a false alarm), keeps the engine's verdict on every window, and replays
the decisions at each threshold of a grid (:mod:`kwspi.deploy.evaluation.stream`: the same
smoothing, thresholds and refractory as ``kwspi listen``). Each keyword gets the lowest
threshold of the grid whose false alarms stay within its share of the target rate,
``target_fa_per_hour / n_keywords``, so the keywords together stay within the target. A
keyword no threshold of the grid holds to its share gets the grid's highest and is named in
the result. Positives (streams with a truth CSV), when given, report the recall the chosen
thresholds keep. The model is written anew with those thresholds and the figures in its
metadata (:func:`kwspi.modelfile.write_model`); the network is untouched.

The patience the thresholds were chosen at is written with them (``kwspi.patience``), and
``kwspi listen`` uses it unless told otherwise: a threshold that holds the target when a
keyword must stay over it for three windows lets far more through when one window is enough,
so a model must not carry the one without the other.

Replaying all keywords at one threshold counts each keyword's false alarms as they happen
when the others are armed too (the engine fires at most one keyword per window), and the
chosen mix is replayed once more for the figures that are stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from kwspi.deploy.evaluation.score import score_detections
from kwspi.deploy.evaluation.stream import SWEEP_THRESHOLDS, StreamRun, keywords_of, replay, run_stream, shown
from kwspi.deploy.engine import DEFAULT_STRIDE_MS
from kwspi.deploy.evaluation.truth import TruthRow
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.sources import WavSource
from kwspi.modelfile import write_model

#: Thresholds calibration chooses from: the sweep's, with finer steps where a quiet model
#: needs them.
GRID = tuple(sorted(set(SWEEP_THRESHOLDS) | {0.75, 0.975, 0.985, 0.9975}))


@dataclass(frozen=True)
class Calibration:
    """What calibration chose and what it measured at the chosen thresholds."""

    thresholds: dict[str, float]
    patience: int  # the thresholds hold the target at this patience
    target_fa_per_hour: float
    negative_hours: float
    fa_per_hour: float  # on the negatives, all keywords, at ``thresholds``
    unmet: tuple[str, ...]  # keywords whose share no threshold of the grid meets
    recall: float | None = None  # on the positives, when given
    positive_keywords: int = 0

    def as_metric(self, negatives: Sequence[Path], positives: Sequence[Path]) -> dict:
        """The ``calibration`` entry of the model's metrics."""
        return {**dataclasses.asdict(self), "negatives": [str(shown(p)) for p in negatives],
                "positives": [str(shown(p)) for p in positives],
                "unmet": list(self.unmet)}


def _runs(model: LoadedModel, paths: Sequence[Path], stride_ms: int, progress, patience: int) -> list[StreamRun]:
    return [run_stream(model, WavSource(p), None, stride_ms, progress, patience) for p in paths]


def choose_thresholds(model: LoadedModel, negatives: Sequence[StreamRun], target_fa_per_hour: float,
                      stride_ms: int = DEFAULT_STRIDE_MS, grid: Sequence[float] = GRID,
                      patience: int | None = None) -> tuple[dict[str, float], tuple[str, ...]]:
    """The lowest threshold per keyword within its share of ``target_fa_per_hour`` on the
    ``negatives`` at ``patience`` (``None``: the model's), and the keywords that the grid's
    highest threshold still leaves above it."""
    keywords = keywords_of(model)
    hours = sum(run.seconds for run in negatives) / 3600
    share = target_fa_per_hour / len(keywords)
    alarms = {t: [d.label for run in negatives for d in replay(run.trace, model, t, stride_ms, patience)]
              for t in grid}
    chosen, unmet = {}, []
    for k in keywords:
        fits = [t for t in sorted(grid) if alarms[t].count(k) / hours <= share]
        chosen[k] = fits[0] if fits else max(grid)
        if not fits:
            unmet.append(k)
    return chosen, tuple(unmet)


def calibrate(model: LoadedModel, negatives: Sequence[Path], target_fa_per_hour: float,
              positives: Sequence[tuple[Path, Sequence[TruthRow]]] = (), stride_ms: int = DEFAULT_STRIDE_MS,
              grid: Sequence[float] = GRID, progress: Callable[[float], None] | None = None,
              patience: int | None = None) -> Calibration:
    """Thresholds for ``model`` from keyword-free recordings (see the module docstring), at
    ``patience`` (``None``: the model's own)."""
    patience = model.info.patience if patience is None else patience
    neg_runs = _runs(model, negatives, stride_ms, progress, patience)
    hours = sum(run.seconds for run in neg_runs) / 3600
    thresholds, unmet = choose_thresholds(model, neg_runs, target_fa_per_hour, stride_ms, grid, patience)
    false_alarms = sum(len(replay(run.trace, model, thresholds, stride_ms, patience)) for run in neg_runs)
    recall, n_keywords = None, 0
    if positives:
        keywords = keywords_of(model)
        hits = 0
        for path, truth in positives:
            run = run_stream(model, WavSource(path), None, stride_ms, progress, patience)
            score = score_detections(replay(run.trace, model, thresholds, stride_ms, patience), truth, keywords)
            hits, n_keywords = hits + len(score.hits), n_keywords + score.n_keywords
        recall = hits / n_keywords if n_keywords else None
    return Calibration(thresholds, patience, target_fa_per_hour, round(hours, 4), round(false_alarms / hours, 3), unmet,
                       recall, n_keywords)


def write_calibrated(model: LoadedModel, calibration: Calibration, out: Path, negatives: Sequence[Path],
                     positives: Sequence[Path] = ()) -> Path:
    """``model``'s network with the calibrated thresholds, their patience and the figures in its
    metadata, at ``out``."""
    info = dataclasses.replace(
        model.info, thresholds=dict(calibration.thresholds), patience=calibration.patience,
        metrics={**model.info.metrics, "calibration": calibration.as_metric(negatives, positives)})
    write_model(model.path, info, out)
    LoadedModel.load(out)  # refuse to leave a file the runtime cannot open
    return out
