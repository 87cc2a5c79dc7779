"""The training side end to end on a small synthesized set: train, export, eval, info."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from kwspi import gsc
from kwspi.cli import main
from kwspi.evaluate import split_features, task_for
from kwspi.modelinfo import open_session
from kwspi.train.speech.synth import SynthConfig, synthesize_dataset
from kwspi.train.fit import load_checkpoint
from kwspi.train.run import restore


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline") / "synth"
    synthesize_dataset(root, SynthConfig(words=gsc.KEYWORDS + ("bed", "cat", "happy"), speakers=40, seed=5,
                                         noise_seconds=5))
    return root


@pytest.fixture(scope="module")
def trained(synth_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(main, ["train", "dscnn-s", "--data", str(synth_data), "--out", str(run),
                                       "--epochs", "3", "--batch-size", "32", "--lr", "0.05", "--views", "2"])
    assert result.exit_code == 0, result.output
    model = run / "model.onnx"
    result = CliRunner().invoke(main, ["export", str(run / "checkpoint.pt"), "--out", str(model),
                                       "--calibration-size", "100", "--eval-data", str(synth_data)])
    assert result.exit_code == 0, result.output
    return synth_data, run, model


def test_train_writes_a_checkpoint_and_figures(trained):
    _, run, _ = trained
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"validation", "testing"}
    assert metrics["testing"]["n"] > 0
    assert json.loads((run / "arch.json").read_text()) == {"kind": "dscnn", "size": "s"}


def test_refuses_to_overwrite_or_resume_with_other_options(trained):
    data, run, _ = trained
    args = ["train", "dscnn-s", "--data", str(data), "--out", str(run), "--batch-size", "32", "--lr", "0.05"]
    result = CliRunner().invoke(main, args + ["--epochs", "3"])
    assert result.exit_code == 2 and "--resume" in result.output
    result = CliRunner().invoke(main, args + ["--epochs", "5", "--resume"])
    assert result.exit_code == 2 and "epochs" in result.output
    epochs = ["--epochs", str(load_checkpoint(run / "checkpoint.pt")["train_config"]["epochs"])]
    result = CliRunner().invoke(main, args + epochs + ["--resume", "--augment", "reverb"])
    assert result.exit_code == 2 and "augmentation" in result.output
    result = CliRunner().invoke(main, args + epochs + ["--resume", "--unknown-fraction", "0.5"])
    assert result.exit_code == 2 and "--unknown-fraction" in result.output
    result = CliRunner().invoke(main, args + epochs + ["--resume", "--label-smoothing", "0"])
    assert result.exit_code == 2 and "label_smoothing" in result.output
    result = CliRunner().invoke(main, args + epochs + ["--augment", "loud"])
    assert result.exit_code == 2 and "unknown augmentation loud" in result.output
    result = CliRunner().invoke(main, args + epochs + ["--augment", "eq", "--no-augment"])
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_int8_model_agrees_with_the_checkpoint_on_test_clips(trained):
    data, run, model = trained
    session, info = open_session(model)
    X, _ = split_features(data, "testing", info.features, task_for(info.labels))
    net, _, _, _ = restore(run / "checkpoint.pt")
    with torch.no_grad():
        want = net(torch.from_numpy(X)).argmax(1).numpy()
    got = session.run(None, {"features": X})[0].argmax(1)
    assert (got == want).mean() >= 0.99


def test_info_and_eval_report_the_same_figures(trained):
    data, _, model = trained
    info = json.loads(CliRunner().invoke(main, ["info", str(model), "--json"]).output)
    for key in ["path", "labels", "features", "macs", "params", "weight_bits", "weight_bytes", "metrics"]:
        assert key in info
    assert info["weight_bits"] == 8 and info["macs"] == 2_656_768
    report = json.loads(CliRunner().invoke(main, ["eval", "--model", str(model), "--data", str(data), "--json"]).output)
    assert set(report) >= {"accuracy", "n", "per_class", "confusion"}
    assert report["accuracy"] == pytest.approx(info["metrics"]["testing"]["accuracy"], abs=1e-5)
    assert np.array(report["confusion"]).sum() == report["n"]
    assert info["metrics"][f"{data.name}/all"]["n"] > report["n"]


def test_eval_of_a_checkpoint(trained):
    data, run, _ = trained
    result = CliRunner().invoke(main, ["eval", "--model", str(run / "checkpoint.pt"), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.output)["accuracy"] <= 1


def test_export_refuses_a_checkpoint_of_another_architecture(trained):
    _, run, _ = trained
    result = CliRunner().invoke(main, ["export", str(run / "checkpoint.pt"), "--out", str(run / "x.onnx"),
                                       "--arch", "dscnn-m"])
    assert result.exit_code == 2
    assert "was trained as dscnn-s" in result.output
    assert not (run / "x.onnx").exists()


def test_user_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["info", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    (tmp_path / "bad.onnx").write_text("not onnx")
    result = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "bad.onnx"), "--data", str(tmp_path)])
    assert result.exit_code == 2 and "not a valid ONNX model" in result.output
    result = CliRunner().invoke(main, ["train", "nonsense.json", "--data", str(tmp_path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no such architecture file" in result.output


def test_export_carries_figures_it_cannot_measure_itself(trained, tmp_path):
    _, run, _ = trained
    figures = {"held-out engines (leave-one-engine-out, same recipe)": {"mean": 0.7, "worst": 0.55,
                                                                        "worst_engine": "kokoro"}}
    (tmp_path / "figures.json").write_text(json.dumps(figures))
    args = ["export", str(run / "checkpoint.pt"), "--calibration-size", "50", "--bank-size", "0"]
    result = CliRunner().invoke(main, args + ["--out", str(tmp_path / "m.onnx"), "--figures", str(tmp_path / "figures.json")])
    assert result.exit_code == 0, result.output
    info = json.loads(CliRunner().invoke(main, ["info", str(tmp_path / "m.onnx"), "--json"]).output)
    assert info["metrics"]["held-out engines (leave-one-engine-out, same recipe)"]["worst_engine"] == "kokoro"
    assert "testing" in info["metrics"]

    (tmp_path / "bad.json").write_text('{"mean": 0.7}')
    result = CliRunner().invoke(main, args + ["--out", str(tmp_path / "b.onnx"), "--figures", str(tmp_path / "bad.json")])
    assert result.exit_code == 2 and "figures must be a JSON object of named objects" in result.output
    assert not (tmp_path / "b.onnx").exists()
