"""The paper's supernet: every cell a mixed op over its candidates (research/paper.md 1.3, 2).

A :class:`SuperNet` has the same stem, head and classifier as :class:`~kwspi.train.nets.model.KwsNet`
and twelve :class:`MixedOp` cells. Cell 1 (stride 2 in both axes, no shortcut) chooses among
the 18 MBConv candidates ``k{3,5,7}e{1..6}``; cells 2..12 (stride 1, identity shortcut) also
among ``zero``, which skips the cell. Each cell holds architecture logits ``alpha`` and the
index of its sampled path, which is always an ``int``.

Phases are arguments, never a mode: :meth:`SuperNet.sample` picks one path per cell (uniform
or from ``softmax(alpha)``), and ``forward(x, gates=None)`` runs only those paths. With
``gates`` (one tensor per cell) the forward pass is the same, but the backward pass also
fills ``gates[c].grad`` with ProxylessNAS's binary-gate gradients (:class:`_GatedPath`).
"""

from __future__ import annotations

import torch
from torch import nn

from kwspi.train.nets.counting import count
from kwspi.train.nets.model import MBConv, InputNorm, KwsNet, bn, init_weights
from kwspi.train.nets.quant import QConv2d, QLinear
from kwspi.train.nets.space import N_CELLS, ZERO, Arch, candidate_ops, parse_op, round_channels

ALPHA_INIT_STD = 1e-3


class Zero(nn.Module):
    """The ``zero`` candidate: outputs zeros, so a cell with a shortcut returns its input."""

    def forward(self, x):
        return torch.zeros_like(x)


class _GatedPath(torch.autograd.Function):
    """ProxylessNAS's ``full_v2`` estimator, the one the authors ran (paper.md section 2).

    The cell's output is ``y = sum_k g_k o_k(x)`` with binary gates ``g`` one-hot at the
    sampled path, so the forward pass runs only that op. The backward pass returns
    ``dL/dx`` through it and, for every candidate k, ``dL/dg_k = <o_k(x), dL/dy>``,
    recomputing each ``o_k(x)`` under ``no_grad`` so that no activations of unsampled paths
    are kept; :func:`gate_alpha_grad` then maps ``dL/dg`` to ``dL/dalpha``. The op weights get
    no gradient (they are frozen in this phase). Candidates run in training mode, so their BN
    statistics move on the validation batch, as in the authors' code.
    """

    @staticmethod
    def forward(ctx, x, gates, mixed):
        x_in = x.detach().requires_grad_()
        with torch.enable_grad():
            y = mixed.ops[mixed.sampled](x_in)
        ctx.mixed, ctx.x_in, ctx.y = mixed, x_in, y
        return y.detach()

    @staticmethod
    def backward(ctx, grad_y):
        mixed, x_in, y = ctx.mixed, ctx.x_in, ctx.y
        (grad_x,) = torch.autograd.grad(y, x_in, grad_y)
        gate_grad = torch.zeros(len(mixed.ops), dtype=grad_y.dtype, device=grad_y.device)
        with torch.no_grad():
            for k, op in enumerate(mixed.ops):
                if mixed.names[k] == ZERO:
                    continue  # <0, dL/dy> = 0
                out = y if k == mixed.sampled else op(x_in)
                gate_grad[k] = (out * grad_y).sum()
        return grad_x, gate_grad, None


def gate_alpha_grad(gate_grad: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """ProxylessNAS's gradient of the loss w.r.t. the logits through the binary gates.

    ``dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i)`` (paper.md section 2), i.e.
    ``p * g - p * (p . g)`` for gate gradients ``g`` ``[N]`` and ``p = softmax(alpha)`` ``[N]``.
    """
    return probs * gate_grad - probs * (probs * gate_grad).sum()


def _candidate(name: str, channels: int, stride: int) -> nn.Module:
    """One candidate op; the shortcut is the cell's (:class:`MixedOp`), not the op's."""
    spec = parse_op(name)
    if spec is None:
        return Zero()
    return MBConv(channels, spec.kernel, spec.expansion, stride, residual=False)


class MixedOp(nn.Module):
    """One cell: candidate ops, their logits ``alpha`` ``[N]`` and the sampled index.

    ``op_macs`` ``[N]`` (float64) holds each candidate's MACs at this cell's input
    resolution, counted once by :class:`SuperNet`; ``zero`` costs 0.
    """

    def __init__(self, names: tuple[str, ...], channels: int, stride: int, residual: bool):
        super().__init__()
        self.names = names
        self.residual = residual
        self.ops = nn.ModuleList(_candidate(name, channels, stride) for name in names)
        self.alpha = nn.Parameter(torch.randn(len(names)) * ALPHA_INIT_STD)
        self.register_buffer("op_macs", torch.zeros(len(names), dtype=torch.float64), persistent=False)
        self.sampled: int = 0

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.alpha, dim=0)

    def sample(self, generator: torch.Generator, probs: torch.Tensor | None = None) -> int:
        """Draw this cell's path from ``probs`` (CPU ``[N]``; ``None``: uniform, the warm-up)."""
        p = torch.ones(len(self.ops), dtype=torch.float64) if probs is None else probs
        self.sampled = int(torch.multinomial(p, 1, generator=generator))
        return self.sampled

    @property
    def sampled_name(self) -> str:
        return self.names[self.sampled]

    def forward(self, x, gate: torch.Tensor | None = None):  # x: [B, C, H, W]
        if self.sampled_name == ZERO:
            return x  # the cell is skipped; ProxylessNAS gives it no gate gradient
        y = self.ops[self.sampled](x) if gate is None else _GatedPath.apply(x, gate, self)
        return x + y if self.residual else y


class SuperNet(nn.Module):
    """Stem 5x11 stride (1, 2), twelve mixed cells of width ``round_channels(72 w)``, head 1x1
    to ``round_channels(144 w)``, average pool, linear. Input ``[B, 1, n_mfcc, n_frames]``,
    output logits ``[B, n_classes]``.

    One change from the authors' init: the last BN of every candidate in a cell with a
    shortcut starts at gamma = 0 (Goyal et al. 2017), so every such cell starts as the
    identity. With uniform paths each op trains on one batch in 18, and eleven random
    residual branches drown the signal: after 200 warm-up steps on data/bundle (w = 0.25,
    lr 0.05) training accuracy was 10.4% with gamma = 1 and 18.5% with gamma = 0 (17.9%
    after 100 steps at lr 0.2). The paper's 40 warm-up epochs hide this; a CPU budget does not.
    """

    def __init__(self, n_mfcc: int, n_frames: int, n_classes: int, width_mult: float = 1.0):
        super().__init__()
        self.width_mult = width_mult
        self.input_shape = (1, 1, n_mfcc, n_frames)
        c0, c_last = round_channels(72 * width_mult), round_channels(144 * width_mult)
        # Named and built as in KwsNet, so that inherit_weights maps keys one to one.
        self.norm = InputNorm(n_mfcc)
        self.stem = nn.Sequential(
            QConv2d(1, c0, (5, 11), stride=(1, 2), padding=(2, 5), bias=False), bn(c0), nn.ReLU6()
        )
        self.cells = nn.ModuleList(
            MixedOp(candidate_ops(i), c0, stride=2 if i == 0 else 1, residual=i > 0) for i in range(N_CELLS)
        )
        self.head = nn.Sequential(QConv2d(c0, c_last, 1, bias=False), bn(c_last), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = QLinear(c_last, n_classes)
        init_weights(self)
        for cell in self.cells:
            for op in cell.ops if cell.residual else ():
                if isinstance(op, MBConv):
                    nn.init.zeros_(op.body[-1].weight)
        self.fixed_macs = self._count_macs()

    @torch.no_grad()
    def _count_macs(self) -> int:
        """Fill every cell's ``op_macs`` at its real resolution; return the fixed layers' MACs."""
        shape = self.input_shape
        fixed = count(self.stem, shape).macs
        shape = _output_shape(self.stem, shape)
        counted: dict[tuple, int] = {}  # cells 2..12 repeat the same ops at the same resolution
        for cell in self.cells:
            keys = [(name, cell.residual, shape) for name in cell.names]
            for key, op in zip(keys, cell.ops):
                if key not in counted:
                    counted[key] = count(op, shape).macs
            cell.op_macs.copy_(torch.tensor([counted[key] for key in keys], dtype=torch.float64))
            shape = _output_shape(cell.ops[0], shape)  # every MBConv candidate gives the same shape
        fixed += count(self.head, shape).macs
        return fixed + self.classifier.in_features * self.classifier.out_features

    def arch_parameters(self) -> list[nn.Parameter]:
        return [cell.alpha for cell in self.cells]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def sample(self, generator: torch.Generator, uniform: bool = False) -> tuple[int, ...]:
        """One path per cell, uniform or from ``softmax(alpha)``; ``generator`` is a CPU one.

        All cells' probabilities leave the device in one copy (one sync per step on CUDA).
        """
        if uniform:
            return tuple(cell.sample(generator) for cell in self.cells)
        probs = torch.cat([cell.probs.detach() for cell in self.cells]).double().cpu()
        parts = probs.split([len(cell.ops) for cell in self.cells])
        return tuple(cell.sample(generator, p) for cell, p in zip(self.cells, parts))

    def set_path(self, path: tuple[int, ...]) -> None:
        for cell, index in zip(self.cells, path, strict=True):
            cell.sampled = int(index)

    def argmax_path(self) -> tuple[int, ...]:
        return tuple(int(cell.alpha.argmax()) for cell in self.cells)

    def derive(self) -> Arch:
        """The final architecture: argmax alpha per cell (paper.md 1.4)."""
        cells = tuple(cell.names[i] for cell, i in zip(self.cells, self.argmax_path()))
        return Arch(cells=cells, width_mult=self.width_mult)

    def path_macs(self, path: tuple[int, ...]) -> int:
        """Exact MACs of the subnet that takes ``path``."""
        return self.fixed_macs + int(sum(cell.op_macs[i].item() for cell, i in zip(self.cells, path)))

    def forward(self, x, gates: list[torch.Tensor] | None = None):  # x: [B, 1, n_mfcc, T]
        x = self.stem(self.norm(x))
        for c, cell in enumerate(self.cells):
            x = cell(x, None if gates is None else gates[c])
        x = self.head(x)
        return self.classifier(torch.flatten(self.pool(x), 1))  # [B, n_classes]


@torch.no_grad()
def _output_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape for an input of ``shape``, in eval mode so no BN statistics move."""
    was_training = module.training
    try:
        return tuple(module.eval()(torch.zeros(shape)).shape)
    finally:
        module.train(was_training)


def expected_macs(net: SuperNet) -> torch.Tensor:
    """E[MACs] = fixed + sum_cells sum_i softmax(alpha_c)_i * MACs(op_{c,i}) (paper.md 1.4).

    A float64 scalar, differentiable in every cell's ``alpha`` (exact through the softmax);
    "fixed" is the stem, head and classifier. With one-hot probabilities it is the exact
    MAC count of the chosen subnet.
    """
    total = torch.tensor(float(net.fixed_macs), dtype=torch.float64, device=net.cells[0].op_macs.device)
    for cell in net.cells:
        total = total + (torch.softmax(cell.alpha.double(), dim=0) * cell.op_macs).sum()
    return total


def inherit_weights(net: SuperNet, model: KwsNet) -> KwsNet:
    """Copy the supernet's weights into ``model`` built from ``net.derive()``, in place.

    The fixed layers map by name; derived cell j (zero cells are left out of KwsNet) takes
    the weights and BN statistics of the argmax candidate of its supernet cell.
    """
    source = net.state_dict()
    state = {k: v for k, v in source.items() if not k.startswith("cells.")}
    j = 0
    for c, index in enumerate(net.argmax_path()):
        if net.cells[c].names[index] == ZERO:
            continue
        prefix = f"cells.{c}.ops.{index}."
        state.update({f"cells.{j}.{k[len(prefix):]}": v for k, v in source.items() if k.startswith(prefix)})
        j += 1
    model.load_state_dict(state)  # strict: any mismatch with KwsNet's layout is an error
    return model
