import copy
import json

import pytest
import torch

from kwspi.train.nets.counting import count
from kwspi.train.nets.model import KwsNet
from kwspi.train.nets.quant import WeightQuant, set_weight_quant
from kwspi.train.search import weight_step
from kwspi.train.nets.space import MBCONV_OPS, ZERO, candidate_ops, load_arch
from kwspi.train.nets.supernet import SuperNet, expected_macs, gate_alpha_grad, inherit_weights

N_MFCC, N_FRAMES, N_CLASSES = 10, 21, 3
INPUT = (1, 1, N_MFCC, N_FRAMES)


@pytest.fixture(scope="module")
def base_net():
    torch.manual_seed(0)
    return SuperNet(N_MFCC, N_FRAMES, N_CLASSES, width_mult=0.125)


@pytest.fixture
def net(base_net):
    return copy.deepcopy(base_net)


def set_one_hot(net: SuperNet, path) -> None:
    """Logits whose softmax is exactly one-hot at ``path`` (exp(-1e4) underflows to 0)."""
    with torch.no_grad():
        for cell, index in zip(net.cells, path):
            cell.alpha.fill_(0.0)
            cell.alpha[index] = 1e4


def random_path(net: SuperNet, g: torch.Generator):
    return [int(torch.randint(len(c.ops), (1,), generator=g)) for c in net.cells]


def test_cells_have_the_papers_candidates(net):
    assert net.cells[0].names == MBCONV_OPS and len(MBCONV_OPS) == 18
    for i, cell in enumerate(net.cells[1:], start=1):
        assert cell.names == candidate_ops(i) and cell.names[-1] == ZERO and cell.residual
    assert not net.cells[0].residual
    alphas = torch.cat(net.arch_parameters())
    assert alphas.abs().max() < 1e-2  # N(0, 1e-3): effectively uniform
    assert not {id(p) for p in net.arch_parameters()} & {id(p) for p in net.weight_parameters()}


def test_expected_macs_is_the_exact_count_for_one_hot_alphas(net):
    g = torch.Generator().manual_seed(1)
    paths = [random_path(net, g) for _ in range(4)]
    paths.append([0] + [18] * 11)  # every skippable cell skipped
    paths.append([17] + [5, 18, 11, 18, 17, 18, 0, 18, 18, 3, 18])
    for path in paths:
        set_one_hot(net, path)
        arch = net.derive()
        assert [c.names.index(op) for c, op in zip(net.cells, arch.cells)] == path
        exact = count(KwsNet(arch, N_MFCC, N_CLASSES), INPUT).macs
        assert expected_macs(net).item() == exact == net.path_macs(tuple(path)), arch.name


def test_zero_cells_cost_nothing(net):
    for cell in net.cells[1:]:
        assert cell.op_macs[cell.names.index(ZERO)].item() == 0
        assert (cell.op_macs[:-1] > 0).all()
    set_one_hot(net, [0] + [18] * 11)
    only_first = net.fixed_macs + net.cells[0].op_macs[0].item()
    assert expected_macs(net).item() == only_first


def test_expected_macs_gradient_matches_finite_differences(net):
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for cell in net.cells:
            cell.alpha.data = torch.randn(len(cell.ops), generator=g, dtype=torch.float64)
    (analytic,) = torch.autograd.grad(expected_macs(net), [net.cells[3].alpha])
    h = 1e-4
    for i in range(len(net.cells[3].ops)):
        alpha = net.cells[3].alpha
        with torch.no_grad():
            alpha[i] += h
            up = expected_macs(net).item()
            alpha[i] -= 2 * h
            down = expected_macs(net).item()
            alpha[i] += h
        assert analytic[i].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-3)


def test_gate_alpha_grad_by_hand():
    # dL/dalpha_i = sum_j g_j p_j (delta_ij - p_i): with p.g = 0.5 + 0.5 = 1,
    # i=0: 0.5*1 - 0.5*1 = 0; i=1: 0 - 0.25; i=2: 0.25*2 - 0.25 = 0.25.
    p, g = torch.tensor([0.5, 0.25, 0.25]), torch.tensor([1.0, 0.0, 2.0])
    torch.testing.assert_close(gate_alpha_grad(g, p), torch.tensor([0.0, -0.25, 0.25]))
    # It is the chain rule through the softmax: d/dalpha sum_j g_j softmax(alpha)_j.
    alpha = torch.log(p).requires_grad_()
    (torch.softmax(alpha, 0) * g).sum().backward()
    torch.testing.assert_close(gate_alpha_grad(g, p), alpha.grad)


def test_gates_receive_the_inner_products_of_every_candidate(net):
    cell = net.cells[1]
    torch.manual_seed(3)
    c0 = net.stem[0].out_channels
    x = torch.randn(4, c0, 5, 6, requires_grad=True)
    w = torch.randn(4, c0, 5, 6)
    cell.sampled = 2
    gate = torch.zeros(len(cell.ops))
    gate[2] = 1.0
    gate.requires_grad_()
    (cell(x, gate) * w).sum().backward()
    assert all(p.grad is None for p in cell.parameters())  # weights are frozen in this phase
    with torch.no_grad():  # dL/dg_k = <o_k(x), dL/dy> with dL/dy = w
        expected = torch.stack([(op(x) * w).sum() for op in cell.ops])
    torch.testing.assert_close(gate.grad, expected, rtol=1e-4, atol=1e-4)
    assert gate.grad[-1] == 0  # zero
    x2 = x.detach().clone().requires_grad_()
    (cell(x2) * w).sum().backward()  # the plain path gives the same input gradient
    torch.testing.assert_close(x.grad, x2.grad)


def test_the_sampled_path_is_an_int_and_only_it_gets_weight_gradients(net):
    set_weight_quant(net, WeightQuant(8, "paper"))
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-5)
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, *INPUT[1:]), torch.randint(0, N_CLASSES, (6,))
    for uniform in (True, False):
        path = net.sample(gen, uniform=uniform)
        assert all(type(i) is int for i in path) and all(type(c.sampled) is int for c in net.cells)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        weight_step(net, opt, torch.nn.CrossEntropyLoss(), x, y, lr=0.1)
        for cell, index in zip(net.cells, path):
            for k, op in enumerate(cell.ops):
                for p in op.parameters():
                    assert (p.grad is not None) == (k == index)
        assert all(p.grad is None for p in net.arch_parameters())
        after = net.state_dict()
        for c, (cell, index) in enumerate(zip(net.cells, path)):
            for k in range(len(cell.ops)):
                if k != index:  # untouched: no weight decay, no momentum, no BN statistics
                    for name in (n for n in after if n.startswith(f"cells.{c}.ops.{k}.")):
                        assert torch.equal(after[name], before[name]), name


def test_derived_architecture_round_trips_through_json(net, tmp_path):
    g = torch.Generator().manual_seed(5)
    path = random_path(net, g)
    path[4] = 18
    set_one_hot(net, path)
    arch = net.derive()
    (tmp_path / "arch.json").write_text(arch.to_json())
    for spec in (str(tmp_path / "arch.json"), arch.to_json()):
        loaded = load_arch(spec)
        assert loaded == arch and json.loads(loaded.to_json()) == arch.to_dict()
        assert count(KwsNet(loaded, N_MFCC, N_CLASSES), INPUT).macs == expected_macs(net).item()


def test_inherited_weights_compute_the_same_function(net):
    g = torch.Generator().manual_seed(6)
    path = random_path(net, g)
    path[2] = 18
    set_one_hot(net, path)
    with torch.no_grad():  # non-trivial BN statistics and input normalisation
        for name, buf in net.named_buffers():
            if name.endswith("running_mean") or name.endswith("norm.mean"):
                buf.normal_()
    model = inherit_weights(net, KwsNet(net.derive(), N_MFCC, N_CLASSES))
    net.set_path(net.argmax_path())
    for m in (net, model):
        set_weight_quant(m, WeightQuant(8, "paper")).eval()
    x = torch.randn(5, *INPUT[1:])
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=0, atol=0)


def test_sampling_follows_the_logits_or_is_uniform(net):
    set_one_hot(net, [3] * 12)
    gen = torch.Generator().manual_seed(7)
    assert all(net.sample(gen) == (3,) * 12 for _ in range(5))
    draws = {net.sample(gen, uniform=True)[1] for _ in range(60)}
    assert len(draws) > 10
