import dataclasses

import pytest
import torch

from kwspi.errors import KwspiError
from kwspi.train.nets.model import build_model
from kwspi.train.nets.space import Arch, dscnn
from kwspi.train.config import TrainConfig
from kwspi.train.fit import class_loss, cosine_lr, fit, load_checkpoint, load_weights, predict

TINY = Arch(cells=("k3e1",) + ("zero",) * 11, width_mult=0.25)


def _toy_data(n=120, seed=0):
    # Two separable classes: a bump in the top or the bottom half of the cepstra.
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    X = torch.randn(n, 1, 10, 49, generator=g) * 0.3
    X[y == 0, :, :5] += 1.0
    X[y == 1, :, 5:] += 1.0
    return X, y


def test_cosine_schedule():
    assert cosine_lr(0, 100, 0.2) == pytest.approx(0.2)
    assert cosine_lr(50, 100, 0.2) == pytest.approx(0.1)
    assert cosine_lr(100, 100, 0.2) == pytest.approx(0.0)


def test_learns_a_separable_toy_task(tmp_path):
    torch.manual_seed(0)
    X, y = _toy_data()
    model = build_model(TINY, 10, 49, 2)
    cfg = TrainConfig(epochs=6, batch_size=20, lr=0.05)
    history = fit(model, lambda e: (X, y), (X, y), cfg, tmp_path / "ck.pt", meta={})
    assert history[-1]["val_accuracy"] > 0.9
    assert history[-1]["loss"] < history[0]["loss"]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    X, y = _toy_data()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=7)

    torch.manual_seed(1)
    straight = build_model(TINY, 10, 49, 2)
    fit(straight, lambda e: (X, y), None, cfg, tmp_path / "a.pt", meta={})

    def crash_after_first_epoch(epoch, stats):
        if epoch == 0:
            raise KeyboardInterrupt

    torch.manual_seed(1)
    interrupted = build_model(TINY, 10, 49, 2)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, lambda e: (X, y), None, cfg, tmp_path / "b.pt", meta={},
            on_epoch=crash_after_first_epoch)
    assert load_checkpoint(tmp_path / "b.pt")["epoch"] == 1

    torch.manual_seed(99)  # a fresh process would start from other random weights
    resumed = build_model(TINY, 10, 49, 2)
    history = fit(resumed, lambda e: (X, y), None, cfg, tmp_path / "b.pt", meta={}, resume=True)
    assert len(history) == 3
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(KwspiError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(KwspiError, match="not a kwspi checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    X, y = _toy_data(40)
    model = build_model(TINY, 10, 49, 2)
    fit(model, lambda e: (X, y), None, TrainConfig(epochs=1, batch_size=20), tmp_path / "c.pt", meta={})
    other = build_model(dscnn("s"), 10, 49, 2)
    with pytest.raises(KwspiError, match="do not match the architecture"):
        load_weights(other, load_checkpoint(tmp_path / "c.pt"))


def test_predict_returns_classes():
    model = build_model(TINY, 10, 49, 3)
    assert predict(model, torch.randn(7, 1, 10, 49)).shape == (7,)


LABELS = ("yes", "no", "_silence_", "_unknown_")


def test_unknown_weight_of_one_is_the_papers_label_smoothed_loss():
    torch.manual_seed(0)
    logits, y = torch.randn(50, 4), torch.randint(0, 4, (50,))
    plain = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(logits, y)
    assert torch.equal(class_loss(TrainConfig(), LABELS)(logits, y), plain)
    assert torch.equal(class_loss(TrainConfig(), None)(logits, y), plain)  # labels only matter off 1


def test_unknown_weight_scales_the_unknown_examples_share():
    torch.manual_seed(0)
    logits, y = torch.randn(50, 4), torch.randint(0, 4, (50,))
    nll = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    w = torch.where(y == 3, 0.25, 1.0)
    loss = class_loss(TrainConfig(unknown_weight=0.25, label_smoothing=0.0), LABELS)(logits, y)
    torch.testing.assert_close(loss, (w * nll).sum() / w.sum())
    with pytest.raises(KwspiError, match="_unknown_"):
        class_loss(TrainConfig(unknown_weight=0.5), ("yes", "no"))


def test_resume_accepts_a_checkpoint_written_before_the_recipe_settings(tmp_path):
    from kwspi.features import FeatureConfig
    from kwspi.train.run import check_same_run

    cfg = TrainConfig(epochs=3)
    older = {k: v for k, v in dataclasses.asdict(cfg).items()
             if k not in ("unknown_weight", "domain_adversarial", "domain_label")}
    state = {"arch": TINY.to_dict(), "features": FeatureConfig().to_json(), "train_config": older}
    check_same_run(state, TINY, FeatureConfig(), cfg, tmp_path / "ck.pt")
    with pytest.raises(KwspiError, match="unknown_weight"):
        check_same_run(state, TINY, FeatureConfig(), TrainConfig(epochs=3, unknown_weight=0.5), tmp_path / "ck.pt")
