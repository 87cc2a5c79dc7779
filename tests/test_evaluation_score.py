"""Scoring detections against a truth file (:mod:`kwspi.deploy.evaluation.score`), on hand-made lists:
hits, misses, double fires, wrong-label fires, window edges, latency and the summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kwspi.deploy.decision import Detection
from kwspi.deploy.evaluation.score import (NO_SPEECH, false_alarm_sources, fired_on, score_detections, summarize,
                               window_words)
from kwspi.deploy.evaluation.truth import TruthRow

TRUTH = [
    TruthRow("yes", 2.0, 2.4),
    TruthRow("please", 3.0, 3.3),
    TruthRow("turn", 5.0, 5.2),
    TruthRow("on", 5.3, 5.5),
    TruthRow("yesterday", 8.0, 8.6),
    TruthRow("no", 10.0, 10.3),
]


def test_hits_and_misses():
    s = score_detections([Detection("yes", 1.0, 2.9), Detection("on", 1.0, 6.1)], TRUTH)
    assert [(d.label, r.start_s) for d, r in s.hits] == [("yes", 2.0), ("on", 5.3)]
    assert s.misses == (TruthRow("no", 10.0, 10.3),)
    assert s.false_alarms == ()
    assert s.n_keywords == 3 and s.recall == pytest.approx(2 / 3)


def test_second_detection_of_one_word_is_a_false_alarm():
    s = score_detections([Detection("yes", 1.0, 2.5), Detection("yes", 1.0, 3.3)], TRUTH)
    assert len(s.hits) == 1 and s.hits[0][0].time == 2.5
    assert [d.time for d in s.false_alarms] == [3.3]


def test_wrong_label_and_confusable_words_are_false_alarms_not_hits():
    s = score_detections([Detection("no", 1.0, 2.5), Detection("yes", 1.0, 8.9)], TRUTH)
    assert s.hits == ()
    assert [d.label for d in s.false_alarms] == ["no", "yes"]
    assert {r.label for r in s.misses} == {"yes", "on", "no"}  # "yesterday" is no keyword to miss


@pytest.mark.parametrize("t, hit", [(1.9, True), (1.899, False), (3.5, True), (3.501, False)])
def test_window_edges_are_inclusive(t, hit):
    s = score_detections([Detection("yes", 1.0, t)], [TruthRow("yes", 2.0, 2.4)])
    assert (len(s.hits) == 1) is hit and (len(s.false_alarms) == 1) is not hit


def test_overlapping_windows_match_as_many_words_as_possible():
    # The 2.0 s detection fits both words; taking the earlier-closing one leaves the
    # second word for the 3.2 s detection.
    truth = [TruthRow("go", 1.0, 1.2), TruthRow("go", 1.9, 2.1)]
    s = score_detections([Detection("go", 1.0, 2.0), Detection("go", 1.0, 3.2)], truth)
    assert len(s.hits) == 2 and not s.false_alarms and not s.misses


def test_detections_in_any_order_and_read_back_from_json_lines():
    heard = Detection("no", 0.9, 10.5, wall_time=1.7e9)
    back = Detection.from_json(json.loads(json.dumps(Detection("on", 0.8, 5.9, 1.7e9).as_json())))
    s = score_detections([heard, back], TRUTH)
    assert [(d.label, d.score) for d, _ in s.hits] == [("on", 0.8), ("no", 0.9)]
    assert np.isnan(back.wall_time) and np.isnan(score_detections([], []).recall)


def test_keywords_limit_what_counts():
    s = score_detections([Detection("please", 1.0, 3.2)], TRUTH, keywords=("please",))
    assert len(s.hits) == 1 and s.n_keywords == 1




def test_a_detection_before_its_word_ends_has_negative_latency():
    s = score_detections([Detection("yes", 1.0, 2.2), Detection("on", 1.0, 6.6), Detection("no", 1.0, 11.4)], TRUTH)
    assert s.latencies == pytest.approx((-0.2, 1.1, 1.1))


def test_summary_counts_rates_and_latency_per_keyword():
    # yes hit after 0.5 s, on hit after 0.3 s, a second "yes" (double fire), "go" fired on
    # "yesterday" (wrong label), "no" missed; half an hour of audio.
    found = [Detection("yes", 1.0, 2.9), Detection("yes", 1.0, 3.6), Detection("on", 1.0, 5.8), Detection("go", 1.0, 8.7)]
    r = summarize(score_detections(found, TRUTH), 1800.0, ["yes", "no", "on", "go"])
    assert r["recall"] == pytest.approx(2 / 3)
    assert (r["keywords_spoken"], r["hits"], r["false_alarms"]) == (3, 2, 2)
    assert r["hours"] == 0.5 and r["fa_per_hour"] == 4.0
    assert r["latency_median_s"] == pytest.approx(0.4)
    assert r["latency_p95_s"] == pytest.approx(float(np.percentile([0.5, 0.3], 95)))
    assert r["per_keyword"]["yes"] == {"spoken": 1, "hits": 1, "recall": 1.0, "false_alarms": 1,
                                       "latency_median_s": pytest.approx(0.5)}
    assert r["per_keyword"]["no"]["recall"] == 0.0 and r["per_keyword"]["no"]["latency_median_s"] is None
    assert r["per_keyword"]["go"] == {"spoken": 0, "hits": 0, "recall": None, "false_alarms": 1,
                                      "latency_median_s": None}


def test_summary_of_a_stream_without_keywords_has_no_recall():
    r = summarize(score_detections([Detection("no", 1.0, 9.0)], [TruthRow("nobody", 8.2, 8.8)]), 3600.0, ["no"])
    assert r["recall"] is None and r["latency_median_s"] is None and r["latency_p95_s"] is None
    assert r["false_alarms"] == 1 and r["fa_per_hour"] == 1.0


def test_false_alarms_are_traced_to_the_word_that_filled_the_window():
    truth = [TruthRow("nobody", 1.0, 1.5), TruthRow("is", 1.55, 1.7), TruthRow("home", 1.75, 2.1),
             TruthRow("yesterday", 5.0, 5.6)]
    assert [r.label for r in window_words(truth, 2.0)] == ["nobody", "is", "home"]
    assert fired_on(truth, 1.9) == "nobody"  # 0.5 s of "nobody" in [0.9, 1.9], 0.15 of "home"
    assert fired_on(truth, 2.6) == "home"
    assert fired_on(truth, 4.0) == NO_SPEECH
    found = [Detection("no", 1.0, 1.9), Detection("yes", 1.0, 5.9), Detection("no", 1.0, 1.95), Detection("go", 1.0, 4.0)]
    s = score_detections(found, truth)
    assert false_alarm_sources(s, truth) == [
        {"heard": "no", "said": "nobody", "count": 2, "spoken": 1},
        {"heard": "go", "said": NO_SPEECH, "count": 1, "spoken": None},
        {"heard": "yes", "said": "yesterday", "count": 1, "spoken": 1},
    ]


def test_figures_per_engine_and_voice_when_the_truth_says_who_spoke():
    from kwspi.deploy.evaluation.report import text_report
    from kwspi.deploy.evaluation.score import by_speaker

    truth = [TruthRow("yes", 2.0, 2.4, "mbrola", "mb-us1"), TruthRow("no", 5.0, 5.3, "piper", "joe"),
             TruthRow("nobody", 8.0, 8.6, "piper", "joe"), TruthRow("go", 11.0, 11.3, "mbrola", "mb-en1")]
    found = [Detection("yes", 1.0, 2.9), Detection("no", 1.0, 9.0), Detection("up", 1.0, 20.0)]
    score = score_detections(found, truth)
    r = by_speaker(score, truth)
    assert r["per_engine"] == {
        "mbrola": {"spoken": 2, "hits": 1, "recall": 0.5, "false_alarms": 0},
        # "no" at 5 s missed (the detection came too late), and the late one fired on "nobody".
        "piper": {"spoken": 1, "hits": 0, "recall": 0.0, "false_alarms": 1},
    }
    assert r["per_voice"]["mbrola:mb-en1"] == {"spoken": 1, "hits": 0, "recall": 0.0, "false_alarms": 0}
    assert r["per_voice"]["mbrola:mb-us1"]["hits"] == 1
    # A truth file without speakers gives no breakdown, and the report then prints none.
    assert by_speaker(score, [TruthRow(t.label, t.start_s, t.end_s) for t in truth]) == {}
    report = {"input": "s.wav", "hours": 0.01, "model": "m", "stride_ms": 100, "thresholds": {"yes": 0.5},
              "patience": 1,
              **summarize(score, 36.0, ["yes", "no", "go", "up"]), "false_alarm_sources": [], **r}
    lines = text_report(report)
    assert any(line.split()[:4] == ["piper", "1", "0", "0.000"] for line in lines)
    assert any(line.split()[:1] == ["mbrola:mb-us1"] for line in lines)
