"""End to end on synthesized streams: ``kwspi listen --input --json`` with the bundled model
finds the spoken keywords at the right times, and ``kwspi demo`` runs.

The model is the bundled one (``kwspi/models/default.onnx``); ``KWSPI_TEST_MODEL=PATH``
points these tests at another model file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from kwspi import cli
from kwspi.modelinfo import bundled_model_path
from kwspi.train import demo
from kwspi.train.speech import stream
from kwspi.deploy.decision import Detection
from kwspi.deploy.evaluation.score import score_detections
from kwspi.deploy.evaluation.truth import TruthRow, read_truth
from kwspi.train.speech.stream import StreamConfig

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

MODEL = Path(os.environ.get("KWSPI_TEST_MODEL") or bundled_model_path())


@pytest.fixture(scope="module")
def model() -> Path:
    assert MODEL.is_file(), f"the model {MODEL} is missing (the bundled model must ship with kwspi)"
    return MODEL


def _listen_and_score(tmp_path, model, config):
    """Write the stream, run the real `kwspi listen --input --json` on it, score its lines."""
    stream.write_stream(tmp_path / "s.wav", tmp_path / "s.csv", config)
    lines, _ = demo.run_listen(demo.listen_command(tmp_path / "s.wav", model, demo.DEMO_HOOK))
    found = [json.loads(line) for line in lines]
    assert all(set(d) == {"label", "score", "time"} for d in found)
    truth = read_truth(tmp_path / "s.csv")
    score = score_detections([Detection.from_json(d) for d in found], truth)
    return score, "\n".join(demo.report_lines(score, truth, config.seconds))


def test_listen_finds_isolated_keywords_at_the_right_times(tmp_path, model):
    # Voice families the model was trained on (speakers it was not), 20 dB SNR.
    config = StreamConfig(seconds=36, snr_db=20, seed=0, exclude_voices=demo.DEMO_VOICES,
                          mix=(("keyword", 1.0),))
    score, report = _listen_and_score(tmp_path, model, config)
    assert score.n_keywords >= 15
    assert not score.false_alarms, report
    # The sixth edition finds 17 of these 18 at 0.7 (the fifth 18), but 106 of 123 over the four
    # streams of bench/bench_stream_thresholds.py at its threshold (BENCHMARKS.md): this one
    # stream is a gate, not a measurement.
    assert len(score.misses) <= 1, report
    assert all(abs(d.time - (t.end_s + 0.5)) < 0.7 for d, t in score.hits), report


@pytest.mark.xfail(strict=True, reason=(
    "the bundled model still misses keywords inside phrases and fires on connected speech: its sixth "
    "edition finds 0.50 of the keywords in phrase streams of three engines at 20 dB with 214 false alarms "
    "an hour on their keyword-free talk at its threshold (README, 'The bundled model'). A model that "
    "passes turns this red: then drop the mark."))
def test_listen_finds_keywords_in_connected_speech_without_false_alarms(tmp_path, model):
    config = StreamConfig(seconds=36, snr_db=20, seed=0, exclude_voices=demo.DEMO_VOICES,
                          mix=stream.EVERYDAY_MIX)
    score, report = _listen_and_score(tmp_path, model, config)
    assert score.n_keywords >= 8
    assert not score.false_alarms, report
    assert not score.misses, report


def test_demo_command_runs_end_to_end(tmp_path, model):
    # Through the real group, as `make demo` runs it (with a shorter stream).
    result = CliRunner().invoke(cli.main, ["demo", "--out", str(tmp_path / "demo"), "--seconds", "15",
                                           "--model", str(model)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "$ kwspi listen --input" in out and "--hook kwspi.train.demo_hook:on_detect" in out
    assert "hook: heard" in out
    assert "time s  heard" in out and "missed:" in out
    assert out.strip().splitlines()[-1].startswith("recall ")
    assert {p.name for p in (tmp_path / "demo").iterdir()} == {"stream.wav", "stream.csv", "detections.jsonl"}


def test_demo_without_a_model_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli.main, ["demo", "--out", str(tmp_path), "--model", str(tmp_path / "no.onnx")])
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: the model {tmp_path / 'no.onnx'} is missing; pass --model PATH"


def test_report_shows_hits_false_alarms_and_misses():
    truth = [TruthRow("turn", 1.0, 1.2), TruthRow("on", 1.3, 1.5), TruthRow("know", 4.0, 4.3),
             TruthRow("go", 7.0, 7.3)]
    score = score_detections([Detection("on", 0.91, 2.0), Detection("no", 0.85, 4.6)], truth)
    lines = demo.report_lines(score, truth, 10.0)
    assert "hit" in lines[1] and "on 1.30-1.50" in lines[1] and '"turn on"' in lines[1]
    assert "FALSE ALARM" in lines[2] and '"know"' in lines[2]
    assert any(line.startswith("  go") and '"go"' in line for line in lines)
    assert lines[-1] == "recall 1/2 keywords (50%), 1 false alarm in 10 s of audio"
