import dataclasses
import json

import pytest

from kwspi import modelinfo
from kwspi.features import FeatureConfig
from kwspi.modelinfo import ModelFormatError, ModelInfo

INFO = ModelInfo(labels=("yes", "no", "_silence_", "_unknown_"), features=FeatureConfig(n_mfcc=20),
                 arch={"kind": "dscnn", "size": "s"}, macs=123, params=45, weight_bits=8, weight_bytes=40,
                 dataset="toy", metrics={"testing": {"accuracy": 0.5, "n": 2}}, thresholds={"default": 0.7, "yes": 0.9})


def test_metadata_round_trip():
    meta = INFO.to_metadata()
    assert all(k.startswith("kwspi.") and isinstance(v, str) for k, v in meta.items())
    assert ModelInfo.from_metadata(meta) == INFO
    assert INFO.threshold("yes") == 0.9 and INFO.threshold("no") == 0.7


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("kwspi.labels", json.dumps(["_silence_", 1, 2]), "list of label strings"),
        ("kwspi.labels", json.dumps("abcd"), "list of label strings"),
        ("kwspi.thresholds", json.dumps([0.5]), "thresholds must be a JSON object"),
        ("kwspi.thresholds", json.dumps({"yes": "high"}), "map labels to numbers"),
        ("kwspi.metrics", "[]", "metrics must be a JSON object"),
        ("kwspi.macs", "many", "malformed"),
        ("kwspi.features_hash", "0" * 16, "hash does not match"),
        ("kwspi.format_version", "99", "newer than this kwspi"),
        ("kwspi.labels", json.dumps(["yes", "no", "yes", "_unknown_"]), "repeats 'yes'"),
        ("kwspi.thresholds", json.dumps({"yes": 0}), r"thresholds must lie in \(0, 1\]"),
        ("kwspi.thresholds", json.dumps({"default": 1.5}), r"thresholds must lie in \(0, 1\]"),
        ("kwspi.thresholds", '{"yes": NaN}', r"thresholds must lie in \(0, 1\]"),
    ],
)
def test_malformed_metadata_is_a_one_line_model_error(key, value, match):
    meta = {**INFO.to_metadata(), key: value}
    with pytest.raises(ModelFormatError, match=match) as e:
        ModelInfo.from_metadata(meta, "m.onnx")
    assert str(e.value).startswith("m.onnx: ") and "\n" not in str(e.value)


def test_missing_keys_say_it_is_not_a_kwspi_model():
    with pytest.raises(ModelFormatError, match="not a kwspi model"):
        ModelInfo.from_metadata({"producer": "someone"}, "m.onnx")


def test_resolve_model(tmp_path, monkeypatch):
    assert modelinfo.resolve_model(tmp_path / "x.onnx") == tmp_path / "x.onnx"
    assert modelinfo.resolve_model() == modelinfo.bundled_model_path()
    monkeypatch.setattr(modelinfo, "bundled_model_path", lambda: tmp_path / "gone.onnx")
    with pytest.raises(ModelFormatError, match="bundled model is missing.*--model"):
        modelinfo.resolve_model()


def test_info_names_the_window_normalisation_when_the_front_end_has_one(tmp_path):
    from click.testing import CliRunner

    from kwspi.cli import main
    from kwspi.modelfile import write_model

    base = modelinfo.bundled_model_path()
    info = modelinfo.read_info(base)
    out = write_model(base, dataclasses.replace(info, features=dataclasses.replace(info.features, cmvn="meanvar")),
                      tmp_path / "cmvn.onnx")
    lines = {m: CliRunner().invoke(main, ["info", str(m)]).output for m in (base, out)}
    assert "cmvn" not in lines[base]
    assert "10 MFCC x 49 frames (40 ms window, 20 ms hop, 16000 Hz, cmvn meanvar)" in lines[out]
