"""Operations and memory, counted the honest way and the papers' ways side by side.

- ``macs``: multiply-accumulates of conv and linear layers, ``Cout*Hout*Wout*(Cin/groups)*kh*kw``
  and ``in*out`` (the paper's "operations"; BN, activations, pooling and adds not counted).
- ``hello_edge_ops = 2 * macs`` (Hello Edge counts a MAC as two operations).
- ``params``: every trainable parameter once. ``weights``: conv and linear weights only.
- ``weight_bytes(bits)``: the weights stored at ``bits`` bits.
- ``peak_activation_bytes``: the largest input + output of one conv/linear layer at 8 bit,
  Hello Edge's convention (residual inputs that must stay alive are not added).
- ``paper_bytes``: the paper's "memory" (research/paper.md 1.5): its quantized layers kept a
  shadow copy of every weight, so each weight counts twice: ``2*W + BN (gamma, beta) + biases``
  at one byte each. Reported only so rows compare with the paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Counts:
    macs: int
    params: int
    weights: int
    bn_params: int
    bias_params: int
    peak_activation_elems: int

    @property
    def hello_edge_ops(self) -> int:
        return 2 * self.macs

    @property
    def paper_bytes(self) -> int:
        return 2 * self.weights + self.bn_params + self.bias_params

    @property
    def peak_activation_bytes(self) -> int:
        return self.peak_activation_elems

    def weight_bytes(self, bits: int = 8) -> int:
        return (self.weights * bits + 7) // 8

    def as_dict(self, bits: int = 8) -> dict:
        d = asdict(self)
        d.update(
            hello_edge_ops=self.hello_edge_ops,
            paper_bytes=self.paper_bytes,
            weight_bits=bits,
            weight_bytes=self.weight_bytes(bits),
            peak_activation_bytes=self.peak_activation_bytes,
        )
        return d


def layer_macs(module: nn.Module, out: torch.Tensor) -> int:
    """MACs of one conv or linear layer for one example, given its output."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        return out[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


@torch.no_grad()
def count(model: nn.Module, input_shape: tuple[int, ...]) -> Counts:
    """Count ``model`` on one input of ``input_shape`` (``[1, 1, n_mfcc, n_frames]``)."""
    macs, peak = 0, 0

    def hook(module, inputs, output):
        nonlocal macs, peak
        macs += layer_macs(module, output)
        peak = max(peak, inputs[0][0].numel() + output[0].numel())

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(input_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    weights = sum(m.weight.numel() for m in layers)
    bias = sum(m.bias.numel() for m in layers if m.bias is not None)
    bn_params = sum(
        p.numel() for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()
    )
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Counts(macs, params, weights, bn_params, bias, peak)
