import copy
import json

import pytest
import torch

from kwspi.train.nets.counting import count
from kwspi.train.nets.model import MBConv, build_model, set_input_stats
from kwspi.train.nets.space import (
    PAPER_20MFCC_BETA8,
    Arch,
    ArchError,
    candidate_ops,
    dscnn,
    load_arch,
    parse_op,
    round_channels,
)


def test_arch_grammar():
    assert parse_op("k5e3").kernel == 5 and parse_op("k5e3").expansion == 3
    assert parse_op("zero") is None
    for bad in ["k4e3", "k5e7", "5_3", "K5E3"]:
        with pytest.raises(ArchError, match="unknown cell op"):
            parse_op(bad)
    assert len(candidate_ops(0)) == 18 and "zero" not in candidate_ops(0)
    assert len(candidate_ops(5)) == 19 and candidate_ops(5)[-1] == "zero"


def test_first_cell_cannot_be_zero_and_there_are_twelve_cells():
    with pytest.raises(ArchError, match="cell 1"):
        Arch(cells=("zero",) + ("k3e1",) * 11)
    with pytest.raises(ArchError, match="12 cells"):
        Arch(cells=("k3e1",) * 11)


def test_arch_json_round_trip(tmp_path):
    arch = Arch(cells=("k7e6",) + ("zero",) * 10 + ("k3e1",), width_mult=1.25)
    path = tmp_path / "arch.json"
    path.write_text(arch.to_json())
    assert load_arch(str(path)) == arch
    assert load_arch(arch.to_json()) == arch
    assert load_arch("dscnn-m") == dscnn("m")
    with pytest.raises(ArchError, match="unknown architecture keys"):
        Arch.from_dict({**json.loads(arch.to_json()), "depth": 3})
    with pytest.raises(ArchError, match="no such architecture file"):
        load_arch(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("w, c0, c_last", [(0.75, 56, 112), (1.0, 72, 144), (1.25, 88, 184)])
def test_width_multiplier_channels_match_the_paper(w, c0, c_last):
    assert round_channels(72 * w) == c0 and round_channels(144 * w) == c_last


def test_small_mbconv_counts_by_hand():
    # 8 channels, e=2, k=3 on a 4x5 map, stride 1: expand 8*16*20, depthwise 16*9*20,
    # project 16*8*20 MACs; weights 128 + 144 + 128; BN 2*(16 + 16 + 8).
    block = MBConv(8, kernel=3, expansion=2, stride=1, residual=True)
    c = count(block, (1, 8, 4, 5))
    assert c.macs == 8 * 16 * 20 + 16 * 9 * 20 + 16 * 8 * 20
    assert c.weights == 128 + 144 + 128
    assert c.bn_params == 2 * (16 + 16 + 8)
    assert c.params == c.weights + c.bn_params
    assert c.peak_activation_elems == 16 * 20 + 16 * 20  # the depthwise layer's in + out


def test_paper_headline_architecture_counts():
    # 20 MFCC x 51 frames as in the paper (torchaudio, centre padding).
    c = count(build_model(PAPER_20MFCC_BETA8, 20, 51, 12), (1, 1, 20, 51))
    assert c.params == 172_668
    assert c.weights == 167_472 and c.bn_params == 5_184 and c.bias_params == 12
    assert c.paper_bytes == 340_140  # the paper's "340.1 kB"
    assert c.macs == 27_136_368  # the paper's "27.1 M"
    assert c.peak_activation_bytes == 112_320
    # This front end gives 49 frames: the stem output is 20 x 25 instead of 20 x 26.
    assert count(build_model(PAPER_20MFCC_BETA8, 20, 49, 12), (1, 1, 20, 49)).macs == 26_849_808


@pytest.mark.parametrize("size, macs", [("s", 2.66e6), ("m", 9.82e6), ("l", 28.33e6)])
def test_dscnn_macs_match_hello_edge(size, macs):
    c = count(build_model(dscnn(size), 10, 49, 12), (1, 1, 10, 49))
    assert c.macs == pytest.approx(macs, rel=0.005)
    assert c.hello_edge_ops == 2 * c.macs


def test_zero_cells_cost_nothing():
    full = Arch(cells=("k3e1",) * 12)
    skipped = Arch(cells=("k3e1",) + ("zero",) * 11)
    a = count(build_model(full, 10, 49, 12), (1, 1, 10, 49))
    b = count(build_model(skipped, 10, 49, 12), (1, 1, 10, 49))
    one_cell = 72 * 9 * 5 * 13 + 72 * 72 * 5 * 13  # depthwise + project on the 5 x 13 map
    assert a.macs - b.macs == 11 * one_cell


@pytest.mark.parametrize("arch", [PAPER_20MFCC_BETA8, dscnn("s")])
def test_forward_shapes_and_input_norm(arch):
    model = build_model(arch, 20, 49, 12).eval()
    x = torch.randn(3, 1, 20, 49)
    assert model(x).shape == (3, 12)
    identity = copy.deepcopy(model)  # the norm is the identity until stats are set
    mean, std = torch.randn(20), torch.rand(20) + 0.5
    train = torch.randn(500, 1, 20, 49) * std.view(1, 1, 20, 1) + mean.view(1, 1, 20, 1)
    set_input_stats(model, train)
    m, s = train.mean(dim=(0, 1, 3)).view(1, 1, 20, 1), train.std(dim=(0, 1, 3)).view(1, 1, 20, 1)
    y = model(x * s + m)
    model = identity
    torch.testing.assert_close(y, model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", [dscnn("s"), PAPER_20MFCC_BETA8])
def test_embed_is_what_the_classifier_sees(arch):
    """Enrollment and the engine head both read ``embed``: forward must be classifier(embed)."""
    model = build_model(arch, 10, 49, 12).eval()
    x = torch.randn(3, 1, 10, 49)
    e = model.embed(x)
    assert e.shape[0] == 3 and e.shape[1] == model.classifier.in_features
    assert torch.allclose(model(x), model.classifier(e))
