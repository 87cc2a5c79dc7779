"""Domain-adversarial training: the gradient-reversal layer, the domain labels, and a run
with the head that exports the same graph as a run without it."""

import csv
import math

import numpy as np
import onnx
import pytest
import torch

from conftest import make_gsc
from kwspi import gsc
from kwspi.errors import DatasetError, KwspiError
from kwspi.train.config import DataConfig, ExportRun, TrainConfig, TrainRun
from kwspi.train.fit import fit, load_checkpoint
from kwspi.train.nets.domain import IGNORE, DomainHead, domain_labels, domain_loss, grl_lambda, reverse_grad
from kwspi.train.nets.model import build_model
from kwspi.train.nets.space import dscnn
from kwspi.train.run import export_run, train_run


def test_gradient_reversal_is_the_identity_forward_and_flips_and_scales_the_gradient():
    x = torch.randn(4, 8, requires_grad=True)
    w = torch.randn(4, 8)
    y = reverse_grad(x, 0.3)
    torch.testing.assert_close(y, x, rtol=0, atol=0)
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w)


def test_lambda_ramps_from_zero_to_almost_one():
    assert grl_lambda(0.0) == 0.0
    assert grl_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert grl_lambda(1.0) == pytest.approx(1.0, abs=1e-4)
    ramp = [grl_lambda(p / 10) for p in range(11)]
    assert ramp == sorted(ramp)


def test_domain_loss_leaves_out_clips_without_a_domain():
    torch.manual_seed(0)
    head = DomainHead(6, 3)
    features = torch.randn(5, 6)
    domains = torch.tensor([0, IGNORE, 2, IGNORE, 1])
    known = torch.tensor([0, 2, 4])
    expected = torch.nn.functional.cross_entropy(head(features[known], 1.0), domains[known])
    torch.testing.assert_close(domain_loss(head, features, domains, 1.0), expected)
    assert domain_loss(head, features, torch.full((5,), IGNORE), 1.0) is None


def _write_catalogue(root, rows):
    with open(root / gsc.CATALOGUE, "w", newline="") as f:
        writer = csv.DictWriter(f, ["speaker", "engine", "voice", "transform"])
        writer.writeheader()
        writer.writerows(rows)


def test_domain_labels_come_from_the_catalogue(tmp_path):
    _write_catalogue(tmp_path, [{"speaker": "s1", "engine": "piper", "voice": "joe", "transform": ""},
                                {"speaker": "s2", "engine": "espeak", "voice": "en", "transform": ""},
                                {"speaker": "s3", "engine": "piper", "voice": "amy", "transform": ""}])
    paths = ["yes/s1_nohash_0.wav", None, "no/s2_nohash_1.wav", "no/gsc_nohash_0.wav", "up/s3_nohash_0.wav"]
    index, names = domain_labels(tmp_path, paths, "engine")
    assert names == ("espeak", "piper")
    assert index.tolist() == [1, IGNORE, 0, IGNORE, 1]
    index, names = domain_labels(tmp_path, paths, "voice")
    assert names == ("amy", "en", "joe") and index.tolist() == [2, IGNORE, 1, IGNORE, 0]
    with pytest.raises(DatasetError, match="at least two engines"):
        domain_labels(tmp_path, paths[:2], "engine")


def test_fit_trains_the_head_and_keeps_it_out_of_the_model_state(tmp_path):
    torch.manual_seed(0)
    X, y = torch.randn(64, 1, 10, 49), torch.randint(0, 3, (64,))
    domains = torch.tensor([0, 1, IGNORE, 1] * 16)
    model = build_model(dscnn("s"), 10, 49, 3)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, domain_adversarial=0.5, device="cpu")
    history = fit(model, lambda e: (X, y), None, cfg, tmp_path / "ck.pt", meta={}, domains=domains)
    assert all(np.isfinite(h["domain_loss"]) and h["domain_loss"] > 0 for h in history)
    state = load_checkpoint(tmp_path / "ck.pt")
    assert state["model"].keys() == build_model(dscnn("s"), 10, 49, 3).state_dict().keys()
    assert set(state["domain_head"]) == {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"}
    with pytest.raises(KwspiError, match="domain"):
        fit(model, lambda e: (X, y), None, cfg, tmp_path / "other.pt", meta={})


def test_resume_with_the_head_gives_the_same_weights(tmp_path):
    X, y = torch.randn(48, 1, 10, 49), torch.randint(0, 3, (48,))
    domains = torch.tensor([0, 1, IGNORE] * 16)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, domain_adversarial=1.0, device="cpu")
    torch.manual_seed(1)
    straight = build_model(dscnn("s"), 10, 49, 3)
    fit(straight, lambda e: (X, y), None, cfg, tmp_path / "a.pt", meta={}, domains=domains)

    def stop(epoch, stats):
        raise KeyboardInterrupt

    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):
        fit(build_model(dscnn("s"), 10, 49, 3), lambda e: (X, y), None, cfg, tmp_path / "b.pt", meta={},
            domains=domains, on_epoch=stop)
    resumed = build_model(dscnn("s"), 10, 49, 3)
    fit(resumed, lambda e: (X, y), None, cfg, tmp_path / "b.pt", meta={}, domains=domains, resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


@pytest.fixture(scope="module")
def two_engines(tmp_path_factory):
    root = make_gsc(tmp_path_factory.mktemp("domain") / "data", words=gsc.KEYWORDS + ("bed", "cat"), n_speakers=8)
    speakers = sorted({gsc.speaker_of(p.name) for p in root.glob("yes/*.wav")})
    _write_catalogue(root, [{"speaker": s, "engine": ("espeak", "piper")[i % 2], "voice": f"v{i}", "transform": ""}
                            for i, s in enumerate(speakers)])
    return root


def _graph(model_path):
    g = onnx.load(str(model_path)).graph
    shapes = lambda values: [(v.name, [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim])
                             for v in values]
    return shapes(g.input), shapes(g.output), [n.op_type for n in g.node]


def test_a_run_with_the_head_trains_and_exports_the_same_graph(two_engines, tmp_path):
    models = {}
    for weight in (0.0, 0.5):
        out = tmp_path / f"w{weight}"
        run = TrainRun(arch="dscnn-s", out=out, data=DataConfig(data=two_engines, views=1),
                       train=TrainConfig(epochs=1, batch_size=32, lr=0.05, domain_adversarial=weight, device="cpu"))
        train_run(run)
        history = load_checkpoint(out / "checkpoint.pt")["history"]
        assert ("domain_loss" in history[0]) == (weight > 0)
        export_run(ExportRun(checkpoint=out / "checkpoint.pt", out=out / "model.onnx", calibration_size=20))
        models[weight] = _graph(out / "model.onnx")
    assert models[0.5] == models[0.0]
    assert np.isfinite(history[0]["domain_loss"])
