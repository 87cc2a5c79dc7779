"""Calibration (:mod:`kwspi.deploy.evaluation.calibrate`) and the torch-free metadata writer
(:mod:`kwspi.modelfile`): thresholds that hold the target on the negatives, a valid new model
file with the network untouched."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from deploy_fixtures import BURST_S, NOISE_RMS, RATE, burst, make_stream, shared_centroid_model, write_wav
from kwspi.deploy.evaluation.calibrate import GRID, calibrate, write_calibrated
from kwspi.deploy.evaluation.stream import replay, run_stream
from kwspi.deploy.evaluation.truth import TruthRow
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.sources import WavSource
from kwspi.modelfile import with_metadata, write_model
from kwspi.modelinfo import ModelFormatError, read_info


def test_metadata_is_replaced_and_everything_else_kept(tmp_path_factory, tmp_path):
    source = shared_centroid_model(tmp_path_factory)
    original = onnx.load(str(source))
    original.metadata_props.add(key="author", value="someone")
    data = original.SerializeToString()
    info = read_info(source)
    changed = {**info.to_metadata(), "kwspi.thresholds": json.dumps({"low": 0.7, "high": 0.9})}
    rewritten = onnx.load_from_string(with_metadata(data, changed))
    props = {p.key: p.value for p in rewritten.metadata_props}
    assert props["author"] == "someone" and json.loads(props["kwspi.thresholds"]) == {"low": 0.7, "high": 0.9}
    assert sum(p.key == "kwspi.thresholds" for p in rewritten.metadata_props) == 1
    del rewritten.metadata_props[:], original.metadata_props[:]
    assert rewritten.SerializeToString() == original.SerializeToString()  # graph and weights untouched


def test_a_file_that_is_not_onnx_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff" * 20)
    with pytest.raises(ModelFormatError, match="bad.onnx"):
        write_model(bad, read_info_of_any(), tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def read_info_of_any():
    from deploy_fixtures import centroid_info

    return centroid_info()


def negative_stream(path, seconds=60.0):
    """Keyword-free, but with tones near the keywords' (500 Hz by "low"'s 400, 1700 Hz by
    "high"'s 2000) that a low threshold mistakes for them."""
    rng = np.random.default_rng(3)
    x = NOISE_RMS * rng.standard_normal(int(seconds * RATE))
    for n, t in enumerate(np.arange(1.0, seconds - 1.0, 2.5)):
        b = burst(500.0 if n % 2 else 1700.0)
        x[int(t * RATE):int(t * RATE) + len(b)] += b
    return write_wav(path, x.astype(np.float32))


def test_calibrated_thresholds_hold_the_target_on_the_negatives(tmp_path_factory, tmp_path):
    model = LoadedModel.load(shared_centroid_model(tmp_path_factory))
    negatives = [negative_stream(tmp_path / "neg.wav")]
    low = run_stream(model, WavSource(negatives[0]), {"default": min(GRID)})
    assert low.detections, "the fixture must fire on the negatives at a low threshold, or nothing is tested"

    positives = tmp_path / "pos.wav"
    said = [("high", 2.0), ("low", 5.0), ("high", 8.0)]
    write_wav(positives, make_stream(said, 11.0))
    truth = [TruthRow(label, t, t + BURST_S) for label, t in said]
    cal = calibrate(model, negatives, 0.0, positives=[(positives, truth)])
    assert cal.fa_per_hour == 0.0 and not cal.unmet and cal.positive_keywords == 3
    assert cal.recall == 1.0
    for keyword, chosen in cal.thresholds.items():  # the lowest of the grid that holds: one step down fires
        below = max(t for t in GRID if t < chosen)
        assert any(d.label == keyword for d in replay(low.trace, model, below))
        assert not any(d.label == keyword for d in replay(low.trace, model, chosen))
    loose = calibrate(model, negatives, 3600.0)  # a false alarm a second allowed: the grid's lowest
    assert loose.thresholds == {"low": min(GRID), "high": min(GRID)} and loose.fa_per_hour > 0

    out = write_calibrated(model, cal, tmp_path / "calibrated.onnx", negatives, [positives])
    again = LoadedModel.load(out)
    assert again.info.thresholds == cal.thresholds
    assert again.info.metrics["calibration"]["fa_per_hour"] == 0.0
    run = run_stream(again, WavSource(negatives[0]))  # the thresholds in the file, as listen uses them
    assert run.detections == ()
    assert replay(low.trace, again, cal.thresholds) == []
    assert out.read_bytes() != model.path.read_bytes() and model.info.thresholds != cal.thresholds


def test_calibrate_command_writes_the_model_that_info_describes(tmp_path_factory, tmp_path):
    from click.testing import CliRunner

    from kwspi.cli import main

    model = shared_centroid_model(tmp_path_factory)
    neg = negative_stream(tmp_path / "neg.wav", seconds=30.0)
    out = tmp_path / "mine.onnx"
    result = CliRunner().invoke(main, ["calibrate", "--model", str(model), "--negatives", str(neg),
                                       "--target-fa-per-hour", "0", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    reported = json.loads(result.stdout)
    info = json.loads(CliRunner().invoke(main, ["info", str(out), "--json"]).stdout)
    assert info["thresholds"] == reported["thresholds"] and info["metrics"]["calibration"]["fa_per_hour"] == 0.0
    missing = CliRunner().invoke(main, ["calibrate", "--negatives", str(tmp_path / "nope.wav"), "--out", str(out)])
    assert missing.exit_code == 2 and "nope.wav" in missing.output


def test_thresholds_travel_with_the_patience_they_were_chosen_at(tmp_path_factory, tmp_path):
    model = LoadedModel.load(shared_centroid_model(tmp_path_factory))
    negatives = [negative_stream(tmp_path / "neg.wav")]
    plain = calibrate(model, negatives, 0.0)
    patient = calibrate(model, negatives, 0.0, patience=5)  # a near tone holds a score for a few windows
    assert plain.patience == 1 and patient.patience == 5
    assert all(patient.thresholds[k] <= plain.thresholds[k] for k in plain.thresholds)
    assert patient.thresholds != plain.thresholds, "patience must let some keyword take a lower threshold"

    out = write_calibrated(model, patient, tmp_path / "patient.onnx", negatives)
    again = LoadedModel.load(out)
    assert again.info.patience == 5 and again.info.metrics["calibration"]["patience"] == 5
    assert run_stream(again, WavSource(negatives[0])).detections == ()  # listen takes the file's patience
    at_one = run_stream(again, WavSource(negatives[0]), patience=1)
    assert at_one.detections, "the same thresholds without their patience let false alarms through"
    assert calibrate(again, negatives, 0.0).patience == 5  # recalibrating keeps the model's patience


def test_patience_in_the_metadata_must_be_a_whole_number_of_windows():
    from deploy_fixtures import centroid_info
    from kwspi.modelinfo import ModelInfo

    meta = centroid_info().to_metadata()
    assert ModelInfo.from_metadata(meta).patience == 1
    assert ModelInfo.from_metadata({**meta, "kwspi.patience": "4"}).patience == 4
    del meta["kwspi.patience"]
    assert ModelInfo.from_metadata(meta).patience == 1  # models written before patience
    for bad in ("0", "two", "1.5"):
        with pytest.raises(ModelFormatError, match="patience"):
            ModelInfo.from_metadata({**meta, "kwspi.patience": bad})
