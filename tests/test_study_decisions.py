"""The decisions study's numpy replay (studies/decisions.py) makes exactly the detections of
the runtime's DecisionLogic, at every threshold and setting, or its table measures another rule."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from kwspi.deploy.decision import DecisionConfig, DecisionLogic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "studies"))
import decisions  # noqa: E402

LABELS = ("_silence_", "_unknown_", "yes", "no", "up")


def posteriors(n=900, seed=0):
    """Quiet stretches with bursts of one keyword or two at once, of random length and height."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([4, 2, 0.2, 0.2, 0.2], size=n)
    for start in rng.integers(0, n - 12, size=60):
        length, k = rng.integers(1, 16), rng.integers(2, 5, size=rng.integers(1, 3))
        p[start:start + length, k] += rng.uniform(0.3, 3.0, size=(length, len(k)))
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("config", [DecisionConfig(), DecisionConfig(0.1, 0.0, 1), DecisionConfig(0.4, 1.0, 3),
                                    DecisionConfig(0.6, 2.0, 2), DecisionConfig(0.2, 0.5, 4)])
def test_replay_grid_is_decision_logic(config):
    p = posteriors()
    times = 1.0 + 0.1 * np.arange(len(p))
    thresholds = (0.3, 0.5, 0.7, 0.9, 0.97)
    found = decisions.replay_grid(times, p[:, 2:], thresholds, 0.1, config)
    assert sum(map(len, found)) > 30, "the sequence must fire often, or nothing is compared"
    for th, got in zip(thresholds, found):
        logic = DecisionLogic(LABELS, dict.fromkeys(LABELS[2:], th), 0.1, config)
        expected = []
        for t, row in zip(times, p):
            d = logic.update(row, t)
            if d is not None:
                expected.append((round(float(t), 6), d.label, d.score))
        assert [(round(float(times[t]), 6), LABELS[2 + k]) for t, k, _ in got] == [e[:2] for e in expected], th
        assert [s for _, _, s in got] == pytest.approx([e[2] for e in expected], abs=1e-12)


def test_at_recall_takes_the_highest_threshold_that_reaches_it():
    rows = [{"threshold": t, "recall": r, "fa_per_hour": fa, "fa_per_hour_thirds": [fa, fa / 2, 0]}
            for t, r, fa in ((0.5, 0.8, 90), (0.9, 0.6, 20), (0.99, 0.3, 2))]
    assert decisions.at_recall(rows, 0.6) == rows[1]
    halfway = decisions.at_recall(rows, 0.7)  # between 0.5 and 0.9, so the false alarms too
    assert halfway["threshold"] == 0.5 and halfway["fa_per_hour"] == pytest.approx(55)
    assert halfway["fa_per_hour_thirds"] == pytest.approx([55, 27.5, 0])
    assert decisions.at_recall(rows, 0.9) is None
