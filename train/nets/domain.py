"""Domain-adversarial training (Ganin & Lempitsky, ICML 2015): a head that predicts each
clip's engine (or voice) from the network's pooled features through a gradient-reversal
layer, so the network learns features the head cannot tell engines apart by (Park et al.,
Interspeech 2024, do this for keyword spotting on TTS data).

Training-only: the head lives beside the network, never inside it, so the network's weights,
its checkpoint ``model`` state and the exported ONNX are what they would be without it.
A clip's domain comes from the data folder's ``speakers.csv`` (:func:`kwspi.gsc.read_catalogue`);
clips without a row (silence, GSC) get :data:`IGNORE` and add no domain loss.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kwspi import gsc
from kwspi.errors import DatasetError

#: The label of a clip without a domain: ``nn.CrossEntropyLoss``'s default ``ignore_index``.
IGNORE = -100


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam: float):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lam * grad, None


def reverse_grad(x: torch.Tensor, lam: float) -> torch.Tensor:
    """The identity forward; backward multiplies the gradient by ``-lam``."""
    return _ReverseGrad.apply(x, lam)


def grl_lambda(progress: float) -> float:
    """Ganin & Lempitsky's ramp ``2 / (1 + exp(-10 p)) - 1`` over training progress ``p`` in
    [0, 1]: from 0, so the head learns something before the network is pushed away from it."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


class DomainHead(nn.Module):
    """Linear-ReLU-Linear from the pooled features ``[B, d]`` to domain logits ``[B, n_domains]``."""

    def __init__(self, n_features: int, n_domains: int, hidden: int = 64):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_domains))

    def forward(self, features: torch.Tensor, lam: float) -> torch.Tensor:
        return self.layers(reverse_grad(features, lam))


def domain_loss(head: DomainHead, features: torch.Tensor, domains: torch.Tensor, lam: float) -> torch.Tensor | None:
    """Cross-entropy of the head on the clips with a domain; ``None`` when a batch has none
    (a mean over no clips is NaN)."""
    known = domains != IGNORE
    if not known.any():
        return None
    return nn.functional.cross_entropy(head(features[known], lam), domains[known])


def domain_labels(root, paths, key: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each example's domain index (int64 ``[n]``, :data:`IGNORE` without one) and the domain
    names, sorted. ``paths`` are the examples' clips relative to ``root`` (``None``: silence);
    ``key`` is a ``speakers.csv`` column (``engine`` or ``voice``)."""
    catalogue = gsc.read_catalogue(root)
    names = [None if p is None else catalogue.get(gsc.speaker_of(p), {}).get(key) or None for p in paths]
    domains = tuple(sorted({n for n in names if n is not None}))
    if len(domains) < 2:
        raise DatasetError(f"{Path(root) / gsc.CATALOGUE}: domain-adversarial training needs training clips of at "
                           f"least two {key}s, found {len(domains)}")
    index = {d: i for i, d in enumerate(domains)}
    return np.array([IGNORE if n is None else index[n] for n in names], np.int64), domains
