"""Weight quantization: fake-quantization with the straight-through estimator, and
post-training rounding for comparison (paper section 1.7 of research/paper.md).

Two schemes for quantization-aware training, both weights only:

- ``"paper"`` -- DoReFa style as in the authors' code: per tensor, fixed range [-1, 1],
  ``2**b - 1`` steps. Reproduces the paper's bit-width study (b = 1..8).
- ``"channel"`` -- what the int8 export runs: per output channel, symmetric,
  ``[-(2**(b-1) - 1), 2**(b-1) - 1]`` with ``scale = absmax / (2**(b-1) - 1)``. At b = 8 this is
  onnxruntime's own per-channel int8 weight grid, so QAT weights pass through export exactly.

In both, the forward pass sees the quantized weight and the backward pass treats the
quantizer as the identity (the straight-through estimator), so the float "latent" weights
keep learning.
"""

from __future__ import annotations

import torch
from torch import nn

from kwspi.train.config import WeightQuant

def ste(w: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q`` in the forward pass, gradient of the identity in the backward pass."""
    return w + (q - w).detach()


def quantize_paper(w: torch.Tensor, bits: int) -> torch.Tensor:
    """DoReFa: clamp to [-1, 1] and round onto ``2**bits`` evenly spaced levels."""
    n = 2**bits - 1
    return torch.round((w.clamp(-1, 1) + 1) * n / 2) * 2 / n - 1


def quantize_channel(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-output-channel rounding with ``scale = absmax / (2**(bits-1) - 1)``."""
    qmax = 2 ** (bits - 1) - 1
    absmax = w.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-12)
    scale = (absmax / qmax).view(-1, *([1] * (w.dim() - 1)))
    return torch.round(w / scale).clamp(-qmax, qmax) * scale


def fake_quantize(w: torch.Tensor, wq: WeightQuant | None) -> torch.Tensor:
    if wq is None:
        return w
    q = quantize_paper(w, wq.bits) if wq.scheme == "paper" else quantize_channel(w, wq.bits)
    return ste(w, q)


class QConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight is fake-quantized when ``weight_quant`` is set."""

    weight_quant: WeightQuant | None = None

    def forward(self, x):
        return self._conv_forward(x, fake_quantize(self.weight, self.weight_quant), self.bias)


class QLinear(nn.Linear):
    """``nn.Linear`` whose weight is fake-quantized when ``weight_quant`` is set."""

    weight_quant: WeightQuant | None = None

    def forward(self, x):
        return nn.functional.linear(x, fake_quantize(self.weight, self.weight_quant), self.bias)


def set_weight_quant(model: nn.Module, wq: WeightQuant | None) -> nn.Module:
    """Switch fake-quantization on (or off with ``None``) for every conv and linear layer."""
    for m in model.modules():
        if isinstance(m, (QConv2d, QLinear)):
            m.weight_quant = wq
    return model


@torch.no_grad()
def snap_weights_(model: nn.Module) -> nn.Module:
    """Replace each latent weight by its quantized value, in place (before export)."""
    for m in model.modules():
        if isinstance(m, (QConv2d, QLinear)) and m.weight_quant is not None:
            m.weight.copy_(fake_quantize(m.weight, m.weight_quant))
    return model


@torch.no_grad()
def round_weights_(model: nn.Module, bits: int) -> nn.Module:
    """Post-training rounding as in the paper's comparison, in place.

    Conv weights only (the classifier stays float), per tensor, min/max range, ``2**bits``
    levels: ``w = min + clip(round((w - min) * 2**b / (max - min)), 0, 2**b - 1) * (max - min) / 2**b``.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            w = m.weight
            lo, hi = w.min(), w.max()
            step = (hi - lo) / 2**bits
            if step == 0:
                continue
            w.copy_(lo + torch.clamp(torch.round((w - lo) / step), 0, 2**bits - 1) * step)
    return model
