"""The networks: the paper's MBConv CNN and Hello Edge's DS-CNN baselines.

Both take features ``[batch, 1, n_mfcc, n_frames]`` (cepstra on the height axis, time on
the width axis) and return logits ``[batch, n_classes]``. Every conv and linear layer is a
:class:`~kwspi.train.nets.quant.QConv2d` / :class:`~kwspi.train.nets.quant.QLinear`, so weight
quantization can be switched on for any of them.

Both start with :class:`InputNorm`, a fixed per-coefficient standardisation whose
statistics come from the training set and travel inside the model file; the paper has none,
so it is the identity until :func:`set_input_stats` is called.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kwspi.train.nets.quant import QConv2d, QLinear
from kwspi.train.nets.space import Arch, parse_op, round_channels

BN_EPS = 1e-3


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.1)


class InputNorm(nn.Module):
    """``(x - mean) / std`` per cepstral coefficient (the height axis)."""

    def __init__(self, n_mfcc: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, 1, n_mfcc, 1))
        self.register_buffer("std", torch.ones(1, 1, n_mfcc, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (skipped at e = 1), k x k depthwise, 1x1 project.

    BN after each conv, ReLU6 after the first two; identity shortcut when ``residual``.
    """

    def __init__(self, channels: int, kernel: int, expansion: int, stride: int, residual: bool):
        super().__init__()
        hidden = channels * expansion
        layers = []
        if expansion != 1:
            layers += [QConv2d(channels, hidden, 1, bias=False), bn(hidden), nn.ReLU6()]
        layers += [
            QConv2d(hidden, hidden, kernel, stride, padding=kernel // 2, groups=hidden, bias=False),
            bn(hidden),
            nn.ReLU6(),
            QConv2d(hidden, channels, 1, bias=False),
            bn(channels),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = residual

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class KwsNet(nn.Module):
    """The paper's network: stem 5x11 stride (1, 2), twelve cells, 1x1 head, pool, linear.

    ``zero`` cells are left out: with the identity shortcut a skipped cell is the identity.
    """

    def __init__(self, arch: Arch, n_mfcc: int, n_classes: int):
        super().__init__()
        c0 = round_channels(72 * arch.width_mult)
        c_last = round_channels(144 * arch.width_mult)
        self.norm = InputNorm(n_mfcc)
        self.stem = nn.Sequential(
            QConv2d(1, c0, (5, 11), stride=(1, 2), padding=(2, 5), bias=False), bn(c0), nn.ReLU6()
        )
        cells = []
        for i, op in enumerate(arch.cells):
            spec = parse_op(op)
            if spec is not None:
                cells.append(MBConv(c0, spec.kernel, spec.expansion, stride=2 if i == 0 else 1, residual=i > 0))
        self.cells = nn.Sequential(*cells)
        self.head = nn.Sequential(QConv2d(c0, c_last, 1, bias=False), bn(c_last), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = QLinear(c_last, n_classes)
        init_weights(self)

    def embed(self, x):  # x: [B, 1, n_mfcc, T] -> [B, c_last], what the classifier sees
        x = self.head(self.cells(self.stem(self.norm(x))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x):
        return self.classifier(self.embed(x))  # [B, n_classes]


# Hello Edge DS-CNN (research/paper.md section 3): first conv (channels, kernel, stride) in
# (cepstra, time) order, then one (stride) per depthwise-separable block.
DSCNN_CONFIGS = {
    "s": (64, (4, 10), (2, 2), [(1, 1)] * 4),
    "m": (172, (4, 10), (1, 2), [(2, 2)] + [(1, 1)] * 3),
    "l": (276, (4, 10), (1, 2), [(2, 2)] + [(1, 1)] * 4),
}


def same_padding(size, kernel, stride):
    """TensorFlow's SAME padding for one axis: (before, after), so out = ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class SameConv(nn.Module):
    """A conv with TensorFlow SAME padding for a known input size (Hello Edge's layers)."""

    def __init__(self, c_in, c_out, kernel, stride, in_size, groups=1):
        super().__init__()
        top, bottom, h = same_padding(in_size[0], kernel[0], stride[0])
        left, right, w = same_padding(in_size[1], kernel[1], stride[1])
        self.pad = nn.ZeroPad2d((left, right, top, bottom))
        self.conv = QConv2d(c_in, c_out, kernel, stride, groups=groups, bias=False)
        self.out_size = (h, w)

    def forward(self, x):
        return self.conv(self.pad(x))


class DSCNN(nn.Module):
    """Hello Edge's DS-CNN S/M/L, adapted to this front end's input size.

    Convs have no bias because a BN follows each (Hello Edge's biases fold into it).
    """

    def __init__(self, size: str, n_mfcc: int, n_frames: int, n_classes: int):
        super().__init__()
        channels, kernel, stride, blocks = DSCNN_CONFIGS[size]
        self.norm = InputNorm(n_mfcc)
        first = SameConv(1, channels, kernel, stride, (n_mfcc, n_frames))
        layers = [first, bn(channels), nn.ReLU()]
        hw = first.out_size
        for s in blocks:
            dw = SameConv(channels, channels, (3, 3), s, hw, groups=channels)
            hw = dw.out_size
            layers += [dw, bn(channels), nn.ReLU(), QConv2d(channels, channels, 1, bias=False), bn(channels), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = QLinear(channels, n_classes)
        init_weights(self)

    def embed(self, x):  # x: [B, 1, n_mfcc, T] -> [B, channels], what the classifier sees
        return torch.flatten(self.pool(self.features(self.norm(x))), 1)

    def forward(self, x):
        return self.classifier(self.embed(x))  # [B, n_classes]


def build_model(arch: Arch, n_mfcc: int, n_frames: int, n_classes: int) -> nn.Module:
    """The network for ``arch`` on inputs ``[B, 1, n_mfcc, n_frames]``."""
    if arch.kind == "dscnn":
        return DSCNN(arch.size, n_mfcc, n_frames, n_classes)
    return KwsNet(arch, n_mfcc, n_classes)


def set_input_stats(model: nn.Module, X: torch.Tensor) -> None:
    """Store the per-coefficient mean and standard deviation of the training features
    ``X`` ``[n, 1, n_mfcc, T]`` in the model's InputNorm."""
    mean, std = X.mean(dim=(0, 1, 3)), X.std(dim=(0, 1, 3))
    norm = model.norm
    norm.mean.copy_(mean.reshape(norm.mean.shape))
    norm.std.copy_(std.clamp_min(1e-6).reshape(norm.std.shape))


def init_weights(model: nn.Module) -> None:
    """The authors' init: He fan-out for convs, BN (1, 0), linear U(+-1/sqrt(fan_in)), bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1 / math.sqrt(m.in_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)
