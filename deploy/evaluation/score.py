"""Scoring keyword detections on a long stream against its truth file.

:func:`score_detections` matches detections to spoken keywords (hits, misses, false
alarms); :func:`summarize` turns a match into the figures users judge a spotter by: recall
per keyword, false alarms per hour, and latency (detection time minus the end of the word).
:func:`false_alarm_sources` says which spoken word each false alarm fired on, which is how
one finds the confusable words a model has not learnt to reject.

Pure functions over plain data; torch-free and model-free.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from kwspi import gsc
from kwspi.deploy.decision import Detection
from kwspi.deploy.evaluation.truth import TruthRow

#: What :func:`false_alarm_sources` names when no word sounds in the window that fired.
NO_SPEECH = "(no speech)"


@dataclass(frozen=True)
class StreamScore:
    """Detections matched to a truth file."""

    hits: tuple[tuple[Detection, TruthRow], ...]
    false_alarms: tuple[Detection, ...]
    misses: tuple[TruthRow, ...]

    @property
    def n_keywords(self) -> int:
        return len(self.hits) + len(self.misses)

    @property
    def recall(self) -> float:
        """Share of spoken keywords that were detected (nan when none was spoken)."""
        return len(self.hits) / self.n_keywords if self.n_keywords else math.nan

    @property
    def latencies(self) -> tuple[float, ...]:
        """Seconds from the end of each detected word to its detection, in hit order."""
        return tuple(d.time - row.end_s for d, row in self.hits)


def hit_window(row: TruthRow, before_s: float = 0.1, after_s: float = 1.1) -> tuple[float, float]:
    """The detection times, in seconds, that count for a spoken word: a detection's time is
    the end of the 1-second window that fired, so it lags the word by up to a window."""
    return row.start_s - before_s, row.end_s + after_s


def score_detections(
    detections: Iterable[Detection],
    truth: Iterable[TruthRow],
    keywords: Iterable[str] = gsc.KEYWORDS,
    before_s: float = 0.1,
    after_s: float = 1.1,
) -> StreamScore:
    """Match detections to spoken keywords.

    A detection of label L at time t is a hit if a not yet matched truth row with label L,
    L a keyword, has ``start_s - before_s <= t <= end_s + after_s``; otherwise it is a false
    alarm (so is a second detection of the same word). Keyword rows left unmatched are
    misses. Detections are taken in time order and each takes, among the rows it could
    match, the one whose window closes first, which matches as many as any assignment can.
    """
    kws = set(keywords)
    open_rows = [r for r in truth if r.label in kws]
    hits, false_alarms = [], []
    for d in sorted(detections, key=lambda d: d.time):
        fits = [r for r in open_rows if r.label == d.label and _within(d.time, hit_window(r, before_s, after_s))]
        if fits:
            row = min(fits, key=lambda r: r.end_s)
            open_rows.remove(row)
            hits.append((d, row))
        else:
            false_alarms.append(d)
    return StreamScore(tuple(hits), tuple(false_alarms), tuple(open_rows))


def _within(t: float, window: tuple[float, float]) -> bool:
    eps = 1e-9  # times come from millisecond-rounded text
    return window[0] - eps <= t <= window[1] + eps


# --- figures ----------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None  # None, not nan: these dicts become JSON


def _quantile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def summarize(score: StreamScore, seconds: float, keywords: Sequence[str]) -> dict:
    """The stream's figures as a JSON-ready dict.

    Keys: ``recall``, ``keywords_spoken``, ``hits``, ``false_alarms``, ``fa_per_hour``,
    ``hours``, ``latency_median_s``, ``latency_p95_s``, and ``per_keyword`` (per model
    keyword: ``spoken``, ``hits``, ``recall``, ``false_alarms`` fired with that label,
    ``latency_median_s``). Rates without a denominator are ``None``.
    """
    hours = seconds / 3600.0
    latency = score.latencies
    per_keyword = {}
    fired = Counter(d.label for d in score.false_alarms)
    for kw in keywords:
        lat = [d.time - row.end_s for d, row in score.hits if row.label == kw]
        spoken = len(lat) + sum(row.label == kw for row in score.misses)
        per_keyword[kw] = {"spoken": spoken, "hits": len(lat), "recall": _ratio(len(lat), spoken),
                           "false_alarms": fired[kw], "latency_median_s": _quantile(lat, 50)}
    return {
        "recall": _ratio(len(score.hits), score.n_keywords),
        "keywords_spoken": score.n_keywords,
        "hits": len(score.hits),
        "false_alarms": len(score.false_alarms),
        "fa_per_hour": len(score.false_alarms) / hours if hours > 0 else None,
        "hours": hours,
        "latency_median_s": _quantile(latency, 50),
        "latency_p95_s": _quantile(latency, 95),
        "per_keyword": per_keyword,
    }


def window_words(truth: Sequence[TruthRow], t: float, window_s: float = 1.0) -> list[TruthRow]:
    """Words that sound, at least in part, inside the window ``[t - window_s, t]``."""
    return [r for r in truth if r.end_s > t - window_s and r.start_s < t]


def filling_row(truth: Sequence[TruthRow], t: float, window_s: float = 1.0) -> TruthRow | None:
    """The spoken word with the most audio in the window ``[t - window_s, t]``, or ``None``
    when no word sounds there."""
    words = window_words(truth, t, window_s)
    if not words:
        return None
    return max(words, key=lambda r: min(r.end_s, t) - max(r.start_s, t - window_s))


def fired_on(truth: Sequence[TruthRow], t: float, window_s: float = 1.0) -> str:
    """The word that fills most of the window ``[t - window_s, t]`` that fired at ``t``,
    or :data:`NO_SPEECH`: the model saw the whole window, so the word with the most audio in
    it is the best single guess at what set it off."""
    row = filling_row(truth, t, window_s)
    return NO_SPEECH if row is None else row.label


def by_speaker(score: StreamScore, truth: Sequence[TruthRow], window_s: float = 1.0) -> dict:
    """Recall and false alarms per engine and per voice, for truth files that say who spoke
    (``{}`` for those that do not).

    ``{"per_engine": {engine: figures}, "per_voice": {"engine:voice": figures}}``, each
    ``figures`` holding ``spoken`` (keywords), ``hits``, ``recall`` and ``false_alarms``: those
    whose window was filled mostly by that speaker's words (:func:`filling_row`; a false alarm
    on no speech counts for none).
    """
    if not any(r.engine for r in truth):
        return {}
    groups = {"per_engine": lambda r: r.engine, "per_voice": lambda r: f"{r.engine}:{r.voice}"}
    filled = [filling_row(truth, d.time, window_s) for d in score.false_alarms]
    out = {}
    for key, name in groups.items():
        spoken = Counter(name(r) for r in score.misses) + Counter(name(r) for _, r in score.hits)
        hits = Counter(name(r) for _, r in score.hits)
        fired = Counter(name(r) for r in filled if r is not None)
        out[key] = {g: {"spoken": spoken[g], "hits": hits[g], "recall": _ratio(hits[g], spoken[g]),
                        "false_alarms": fired[g]}
                    for g in sorted(set(spoken) | set(fired) | {name(r) for r in truth})}
    return out


def false_alarm_sources(score: StreamScore, truth: Sequence[TruthRow], window_s: float = 1.0) -> list[dict]:
    """False alarms grouped by (label heard, word said), most frequent first, with how
    often that word was said in the whole stream (``None`` for :data:`NO_SPEECH`), so a
    word that fires on nearly every utterance stands out from one merely said often:
    ``[{"heard": "no", "said": "nobody", "count": 7, "spoken": 9}, ...]``."""
    counts = Counter((d.label, fired_on(truth, d.time, window_s)) for d in score.false_alarms)
    spoken = Counter(r.label for r in truth)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"heard": heard, "said": said, "count": n, "spoken": spoken[said] if said != NO_SPEECH else None}
            for (heard, said), n in ranked]
