import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from kwspi.features import FeatureConfig
from kwspi.modelinfo import ModelInfo, ModelFormatError, decode_array, open_session, read_info
from kwspi.train.nets.counting import count
from kwspi.train.export import bank_rows, export_model, with_classifier
from kwspi.train.nets.model import build_model
from kwspi.train.nets.quant import WeightQuant, quantize_channel, set_weight_quant
from kwspi.train.nets.space import PAPER_20MFCC_BETA8, Arch
from kwspi.train.config import TrainConfig
from kwspi.train.fit import fit

LABELS = ("a", "b", "c", "_silence_", "_unknown_")


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, len(LABELS), (n,), generator=g)
    X = torch.randn(n, 1, 10, 49, generator=g)
    for k in range(len(LABELS)):
        X[y == k, :, 2 * k: 2 * k + 2] += 3.0
    return X, y


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    arch = Arch(cells=("k5e2",) * 6 + ("zero",) * 6, width_mult=0.5)
    model = build_model(arch, 10, 49, len(LABELS))
    X, y = _data(400, 0)
    fit(model, lambda e: (X, y), None, TrainConfig(epochs=5, batch_size=50, lr=0.05), tmp / "ck.pt", {})
    c = count(model, (1, 1, 10, 49))
    info = ModelInfo(labels=LABELS, features=FeatureConfig(), arch=arch.to_dict(), macs=c.macs,
                     params=c.params, weight_bits=8, weight_bytes=c.weight_bytes(8), dataset="toy",
                     metrics={"testing": 0.5}, thresholds={"default": 0.7})
    sizes = export_model(model.cpu(), info, X[:200].numpy(), tmp / "m.onnx", float_out=tmp / "f.onnx")
    return model.eval(), info, sizes, tmp


def test_int8_model_agrees_with_torch(exported):
    model, info, sizes, tmp = exported
    X, _ = _data(400, 1)  # held-out inputs, not the calibration set
    session, _ = open_session(tmp / "m.onnx")
    logits = session.run(None, {"features": X.numpy()})[0]
    with torch.no_grad():
        want = model(X).argmax(1).numpy()
    agreement = (logits.argmax(1) == want).mean()
    assert agreement >= 0.99, agreement


def test_int8_file_is_small_and_carries_its_metadata(exported):
    model, info, sizes, tmp = exported
    assert sizes["bytes"] <= sizes["float_bytes"] / 2.5  # about 1/3 here; see BENCHMARKS.md
    assert read_info(tmp / "m.onnx") == with_classifier(model, info)
    assert read_info(tmp / "f.onnx").weight_bits == 32


def test_second_output_is_the_embedding_the_float_classifier_maps_to_the_logits(exported):
    model, _, _, tmp = exported
    X, _ = _data(200, 2)
    session, info = open_session(tmp / "m.onnx")
    assert [o.name for o in session.get_outputs()] == ["logits", "embedding"]
    logits, embedding = session.run(None, {"features": X.numpy()})
    assert embedding.shape == (200, info.embedding["size"]) and info.embedding["output"] == "embedding"
    with torch.no_grad():
        want = model.embed(X).numpy()
    assert np.corrcoef(embedding.ravel(), want.ravel())[0, 1] > 0.99  # int8 rounding, nothing else
    w, b = (decode_array(info.classifier[k]) for k in ("weight", "bias"))
    assert ((embedding @ w.T + b).argmax(1) == logits.argmax(1)).mean() >= 0.98


def test_bank_rows_are_even_over_the_labels_and_never_repeat():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 100)
    rows = bank_rows(labels, 30, seed=1)
    assert len(set(rows.tolist())) == 30
    assert sorted(np.bincount(labels[rows]).tolist()) == [5, 12, 13]
    assert len(bank_rows(labels, 1000)) == len(labels) and len(bank_rows(labels, 0)) == 0


def test_a_speech_share_fills_the_bank_with_unknown_first_and_the_rest_evenly():
    labels = np.array([0] * 50 + [1] * 40 + [2] * 100)  # 2: _unknown_
    rows = bank_rows(labels, 30, seed=1, speech=2, speech_share=0.5)
    assert len(set(rows.tolist())) == 30 and np.bincount(labels[rows]).tolist() == [8, 7, 15]
    few = np.array([0] * 50 + [1] * 40 + [2] * 3)  # fewer _unknown_ than the share: the others fill up
    assert np.bincount(few[bank_rows(few, 30, speech=2, speech_share=0.5)]).tolist() == [14, 13, 3]


def test_qat_weights_pass_through_quantization_unchanged(exported):
    model, _, _, tmp = exported
    # The first conv's int8 weights, dequantized, must equal the BN-folded QAT weights.
    g = onnx.load(str(tmp / "m.onnx")).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    int8 = [a for a in inits.values() if a.dtype == np.int8 and a.ndim == 4]
    assert int8 and all(np.abs(a).max() <= 127 for a in int8)
    stem = model.stem[0]
    w = quantize_channel(stem.weight.detach(), 8)
    bn = model.stem[1]
    folded = w * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().view(-1, 1, 1, 1)
    codes = next(a for a in int8 if a.shape == tuple(folded.shape))
    scale = folded.abs().flatten(1).amax(1) / 127
    np.testing.assert_array_equal(codes, torch.round(folded / scale.view(-1, 1, 1, 1)).numpy().astype(np.int8))


def test_headline_sized_model_is_at_most_a_third_of_float(tmp_path):
    model = set_weight_quant(build_model(PAPER_20MFCC_BETA8, 10, 49, 12), WeightQuant(8)).eval()
    info = ModelInfo(labels=tuple(f"l{i}" for i in range(12)), features=FeatureConfig())
    sizes = export_model(model, info, np.random.default_rng(0).normal(size=(50, 1, 10, 49)), tmp_path / "m.onnx")
    assert sizes["bytes"] <= sizes["float_bytes"] / 3


def test_bad_model_files(tmp_path):
    with pytest.raises(ModelFormatError, match="no such file"):
        read_info(tmp_path / "nope.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"hello")
    with pytest.raises(ModelFormatError, match="not a valid ONNX model"):
        read_info(tmp_path / "junk.onnx")
    model = build_model(Arch(cells=("k3e1",) + ("zero",) * 11, width_mult=0.25), 10, 49, 3).eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 10, 49),), str(tmp_path / "plain.onnx"), dynamo=False)
    with pytest.raises(ModelFormatError, match="lacks kwspi metadata"):
        read_info(tmp_path / "plain.onnx")
