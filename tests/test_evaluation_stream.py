"""``kwspi eval-stream`` (:mod:`kwspi.deploy.evaluation.stream`): the same detections as
``kwspi listen``, a sweep that equals direct runs, the report's figures, clear errors, and
no torch on the way.

Fast tests use the tone-burst centroid model of ``deploy_fixtures``; the end-to-end ones
the bundled model on an espeak-ng stream.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from deploy_fixtures import BURST_S, kwspi_command, make_stream, shared_centroid_model, write_wav
from test_deploy_cli import assert_one_line_error
from kwspi import cli
from kwspi.deploy import Detector
from kwspi.deploy.evaluation.stream import replay, run_stream, sweep
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.sources import WavSource
from kwspi.modelinfo import bundled_model_path
from kwspi.deploy.evaluation.truth import TruthRow, read_truth, write_truth
from kwspi.wavio import read_wav

# Two "high" bursts and a "low" one are said; the "_unknown_" burst is another word. The
# low burst at 4.0 s is said as "high" in the truth, so its detection is a wrong label.
EVENTS = [("high", 1.5), ("low", 4.0), ("_unknown_", 6.5), ("high", 9.0)]
TRUTH = [TruthRow("high", 1.5, 1.5 + BURST_S), TruthRow("high", 4.0, 4.0 + BURST_S),
         TruthRow("beep", 6.5, 6.5 + BURST_S), TruthRow("high", 9.0, 9.0 + BURST_S)]
SECONDS = 11.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evalstream")
    wav = write_wav(folder / "s.wav", make_stream(EVENTS, SECONDS))
    write_truth(folder / "s.csv", TRUTH)
    return str(shared_centroid_model(tmp_path_factory)), str(wav), str(folder / "s.csv")


def eval_stream(*args):
    return CliRunner().invoke(cli.main, ["eval-stream", *args])


def listen_json(*args):
    result = CliRunner().invoke(cli.main, ["listen", *args, "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_report_has_the_figures_and_listens_exactly_as_listen(files):
    model, wav, truth = files
    result = eval_stream("--model", model, "--input", wav, "--truth", truth, "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["detections"] == listen_json("--model", model, "--input", wav)
    assert [d["label"] for d in r["detections"]] == ["high", "low", "high"]
    # "high" at 1.5 and 9.0 hit; "low" fired on a "high" (wrong label); the 4.0 "high" missed.
    assert (r["keywords_spoken"], r["hits"], r["false_alarms"]) == (3, 2, 1)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["hours"] == pytest.approx(SECONDS / 3600)
    assert r["fa_per_hour"] == pytest.approx(3600 / SECONDS)
    lat = [d["time"] - (t + BURST_S) for d, t in zip(r["detections"][::2], (1.5, 9.0))]
    assert r["latency_median_s"] == pytest.approx(np.median(lat))
    assert r["latency_p95_s"] == pytest.approx(np.percentile(lat, 95))
    assert r["per_keyword"]["low"] == {"spoken": 0, "hits": 0, "recall": None, "false_alarms": 1,
                                       "latency_median_s": None}
    assert r["false_alarm_sources"] == [{"heard": "low", "said": "high", "count": 1, "spoken": 3}]
    assert r["thresholds"] == {"low": 0.6, "high": 0.6}


def test_thresholds_and_stride_are_listens(files):
    model, wav, truth = files
    args = ("--model", model, "--input", wav, "--threshold", "high=0.99", "--stride-ms", "50")
    result = eval_stream(*args, "--truth", truth, "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["thresholds"] == {"low": 0.6, "high": 0.99} and r["stride_ms"] == 50
    assert r["detections"] == listen_json(*args)


def test_patience_is_listens(files):
    model, wav, truth = files
    args = ("--model", model, "--input", wav, "--patience", "8")
    result = eval_stream(*args, "--truth", truth, "--json", "--sweep-thresholds")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["patience"] == 8 and r["detections"] == listen_json(*args)
    plain = listen_json("--model", model, "--input", wav)
    # each burst holds its score for more than 8 windows: the same words, 7 strides later
    assert [d["time"] for d in r["detections"]] == pytest.approx([d["time"] + 0.7 for d in plain])
    at_default = next(row for row in r["sweep"]["rows"] if row["threshold"] == 0.6)
    assert at_default["hits"] + at_default["false_alarms"] == len(r["detections"])  # the sweep replays at patience 8


def test_the_old_hop_option_still_works_with_a_warning(files, caplog):
    model, wav, truth = files
    new = listen_json("--model", model, "--input", wav, "--stride-ms", "50")
    with caplog.at_level("WARNING"):
        old = listen_json("--model", model, "--input", wav, "--hop-ms", "50")
    assert old == new and "--hop-ms (KWSPI_HOP_MS) is deprecated" in caplog.text
    assert new != listen_json("--model", model, "--input", wav)  # 50 ms is not the default


def test_text_report(files):
    model, wav, truth = files
    result = eval_stream("--model", model, "--input", wav, "--truth", truth, "--sweep-thresholds")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "recall      0.667 (2/3 keywords)" in out
    assert "low      <- high" in out
    assert "lowest threshold with at most 0.5 false alarms per hour:" in out


def _key(detections):
    return [(d.label, d.time, d.score) for d in detections]


def test_a_swept_threshold_gives_exactly_the_detections_of_a_direct_run(files):
    model_path, wav, truth = files
    model = LoadedModel.load(model_path)
    run = run_stream(model, WavSource(wav))
    audio = read_wav(wav)[0]
    grid = (0.3, 0.6, 0.9, 0.99, 0.999)
    counts = set()
    for t in grid:
        direct = Detector(model, thresholds=t).process(audio)
        assert _key(replay(run.trace, model, t)) == _key(direct), t
        counts.add(len(direct))
    assert len(counts) > 1, "the grid should change the detections, or this test proves little"
    rows = sweep(run, model, read_truth(truth), grid=grid, target_fa_per_hour=0)["rows"]
    assert [r["threshold"] for r in rows] == sorted(grid)
    assert all(r["false_alarms"] + r["hits"] == len(Detector(model, thresholds=r["threshold"]).process(audio))
               for r in rows)


def test_sweep_picks_the_lowest_threshold_under_the_target(files):
    model_path, wav, truth = files
    model = LoadedModel.load(model_path)
    run = run_stream(model, WavSource(wav))
    rows = {r["threshold"]: r for r in sweep(run, model, read_truth(truth), grid=(0.3, 0.6, 0.999))["rows"]}
    meeting = [t for t, r in sorted(rows.items()) if r["fa_per_hour"] <= 1000.0]
    result = sweep(run, model, read_truth(truth), grid=(0.3, 0.6, 0.999), target_fa_per_hour=1000.0)
    assert result["best"] == (rows[meeting[0]] if meeting else None)
    assert sweep(run, model, read_truth(truth), grid=(0.3,), target_fa_per_hour=-1)["best"] is None


def test_plot_draws_a_png(files, tmp_path):
    pytest.importorskip("matplotlib")
    model, wav, truth = files
    png = tmp_path / "curve.png"
    result = eval_stream("--model", model, "--input", wav, "--truth", truth, "--plot", str(png), "--json")
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sweep" in json.loads(result.stdout)  # --plot implies the sweep


def test_plot_without_matplotlib_is_one_line(files, tmp_path, monkeypatch):
    model, wav, truth = files
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = eval_stream("--model", model, "--input", wav, "--truth", truth, "--plot", str(tmp_path / "c.png"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == \
        "Error: --plot needs matplotlib: pip install matplotlib (or pip install 'kwspi[train]')"


def test_bad_files_are_one_line_errors(files, tmp_path):
    model, wav, truth = files
    (tmp_path / "bad.csv").write_text("word,start,end\nyes,1,2\n")
    (tmp_path / "model.onnx").write_text("not a model")
    (tmp_path / "notwav.wav").write_text("not a wav")
    assert_one_line_error(eval_stream("--model", model, "--input", wav, "--truth", str(tmp_path / "bad.csv")),
                    "bad.csv", "header must be label,start_s,end_s")
    assert_one_line_error(eval_stream("--model", model, "--input", wav, "--truth", str(tmp_path / "none.csv")),
                    "none.csv", "cannot read")
    assert_one_line_error(eval_stream("--model", str(tmp_path / "model.onnx"), "--input", wav, "--truth", truth),
                    "model.onnx")
    assert_one_line_error(eval_stream("--model", model, "--input", str(tmp_path / "missing.wav"), "--truth", truth),
                    "missing.wav")
    assert_one_line_error(eval_stream("--model", model, "--input", str(tmp_path / "notwav.wav"), "--truth", truth),
                    "notwav.wav")
    assert_one_line_error(eval_stream("--model", model, "--input", wav, "--truth", truth, "--threshold", "loud=0.5"),
                    "unknown label 'loud'")


def test_eval_stream_loads_neither_torch_nor_matplotlib(files):
    model, wav, truth = files
    probe = ("import json, sys; from kwspi.cli import main\n"
             "try:\n    main(['eval-stream', '--model', sys.argv[1], '--input', sys.argv[2], '--truth', sys.argv[3],"
             " '--json', '--sweep-thresholds'])\nexcept SystemExit:\n    pass\n"
             "print(json.dumps(sorted(m for m in ('torch', 'matplotlib', 'kwspi.train') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe, model, wav, truth], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []
    assert json.loads(out.stdout.splitlines()[0])["hits"] == 2


# --- the bundled model on synthesized speech (espeak-ng) ------------------------------


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_bundled_model_eval_stream_equals_listen_on_a_speech_stream(tmp_path):
    from kwspi.train.speech import stream

    config = stream.StreamConfig(seconds=40, snr_db=10, seed=4, voices=("en-029", "en-gb-scotland"))
    stream.write_stream(tmp_path / "s.wav", tmp_path / "s.csv", config)
    model = str(bundled_model_path())
    listened = subprocess.run(kwspi_command("listen", "--model", model, "--input", str(tmp_path / "s.wav"), "--json"),
                              capture_output=True, text=True, check=True)
    result = eval_stream("--model", model, "--input", str(tmp_path / "s.wav"), "--truth", str(tmp_path / "s.csv"),
                         "--json", "--sweep-thresholds")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["detections"] == [json.loads(line) for line in listened.stdout.splitlines()]
    assert r["keywords_spoken"] >= 8 and r["hits"] + r["false_alarms"] == len(r["detections"])
    row = next(row for row in r["sweep"]["rows"] if row["threshold"] == r["thresholds"]["yes"])
    assert (row["hits"], row["false_alarms"]) == (r["hits"], r["false_alarms"])


def test_reported_paths_are_relative_below_the_working_directory(tmp_path, monkeypatch):
    from kwspi.deploy.evaluation.stream import shown

    monkeypatch.chdir(tmp_path)
    assert shown(tmp_path / "streams" / "a.wav") == Path("streams/a.wav")
    assert shown(Path("streams/a.wav")) == Path("streams/a.wav")
    assert shown(tmp_path.parent / "b.onnx") == tmp_path.parent / "b.onnx"  # outside: as given
