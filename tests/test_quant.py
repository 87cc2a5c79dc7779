import pytest
import torch

from kwspi.train.nets.model import build_model
from kwspi.train.nets.quant import (
    QConv2d,
    WeightQuant,
    fake_quantize,
    quantize_channel,
    quantize_paper,
    round_weights_,
    set_weight_quant,
    snap_weights_,
)
from kwspi.train.nets.space import dscnn


@pytest.mark.parametrize("bits", range(1, 9))
def test_paper_scheme_lies_on_its_grid(bits):
    w = torch.randn(64, 3, 3) * 0.7
    q = quantize_paper(w, bits)
    levels = (q + 1) * (2**bits - 1) / 2
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
    assert q.min() >= -1 and q.max() <= 1
    assert len(q.unique()) <= 2**bits


def test_paper_one_and_two_bit_levels():
    w = torch.linspace(-2, 2, 101)
    assert set(quantize_paper(w, 1).tolist()) == {-1.0, 1.0}
    assert torch.allclose(quantize_paper(w, 2).unique(), torch.tensor([-1, -1 / 3, 1 / 3, 1]))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_channel_scheme_lies_on_a_symmetric_per_channel_grid(bits):
    w = torch.randn(16, 8, 3, 3)
    q = quantize_channel(w, bits)
    qmax = 2 ** (bits - 1) - 1
    scale = w.abs().flatten(1).amax(1) / qmax
    codes = q / scale.view(-1, 1, 1, 1)
    torch.testing.assert_close(codes, codes.round(), atol=1e-3, rtol=0)
    assert codes.abs().max() <= qmax + 1e-3
    # each channel's largest weight is representable exactly
    torch.testing.assert_close(q.abs().flatten(1).amax(1), w.abs().flatten(1).amax(1))


@pytest.mark.parametrize("scheme", ["paper", "channel"])
def test_ste_gradient_is_identity_inside_the_range(scheme):
    w = (torch.rand(8, 4, 3, 3) * 1.6 - 0.8).requires_grad_()
    upstream = torch.randn_like(w)
    (fake_quantize(w, WeightQuant(8, scheme)) * upstream).sum().backward()
    torch.testing.assert_close(w.grad, upstream)


def test_fake_quant_changes_the_forward_pass_only_when_on():
    conv = QConv2d(2, 4, 3)
    x = torch.randn(1, 2, 5, 5)
    float_out = conv(x)
    conv.weight_quant = WeightQuant(2, "paper")
    assert not torch.allclose(conv(x), float_out)
    conv.weight_quant = None
    torch.testing.assert_close(conv(x), float_out)


def test_snap_then_requantize_is_a_fixed_point():
    model = set_weight_quant(build_model(dscnn("s"), 10, 49, 12), WeightQuant(8, "channel"))
    snap_weights_(model)
    for m in model.modules():
        if isinstance(m, QConv2d):
            torch.testing.assert_close(quantize_channel(m.weight, 8), m.weight, atol=1e-7, rtol=0)


def test_post_training_rounding_uses_2_pow_b_levels_on_convs_only():
    model = build_model(dscnn("s"), 10, 49, 12)
    fc_before = model.classifier.weight.clone()
    round_weights_(model, 3)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            assert len(m.weight.unique()) <= 8
    torch.testing.assert_close(model.classifier.weight, fc_before)


def test_invalid_settings():
    with pytest.raises(ValueError):
        WeightQuant(0)
    with pytest.raises(ValueError):
        WeightQuant(8, "tensor")
    with pytest.raises(ValueError):
        WeightQuant(1, "channel")
