"""The training loop: SGD Nesterov, per-iteration cosine learning rate, label smoothing,
8-bit STE weights, a checkpoint after every epoch, and exact resume.

:class:`~kwspi.train.config.TrainConfig`'s defaults are the paper's retraining recipe; two
ingredients for voices never heard are off by default: a weight on the ``_unknown_`` class
(:func:`class_loss`) and domain-adversarial training (:mod:`kwspi.train.nets.domain`), whose
head trains beside the model and is kept apart from it in the checkpoint. The data arrive as
in-memory feature tensors (the feature cache makes that cheap), one ``(X, y)`` per epoch so
augmented views can change per epoch.

Resume is exact: the shuffling of epoch ``e`` depends only on ``(seed, e)``, and the
checkpoint holds the model, the optimizer's momentum and the epoch count, so an
interrupted run continued with ``resume=True`` ends with the same weights as one that
never stopped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from kwspi import gsc
from kwspi.atomic import atomic_write
from kwspi.errors import KwspiError
from kwspi.progress import Progress, silent
from kwspi.train.config import TrainConfig
from kwspi.train.nets.domain import DomainHead, domain_loss, grl_lambda
from kwspi.train.nets.quant import set_weight_quant

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "kwspi-checkpoint-1"


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` is CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise KwspiError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def cosine_lr(step: int, total_steps: int, base_lr: float) -> float:
    """Cosine decay from ``base_lr`` at step 0 to 0 at ``total_steps``."""
    return 0.5 * base_lr * (1 + math.cos(math.pi * step / max(total_steps, 1)))


def save_checkpoint(path, state: dict) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename: never half a checkpoint."""
    with atomic_write(path) as f:
        torch.save(state, f)


def load_checkpoint(path, fmt: str = CHECKPOINT_FORMAT, what: str = "checkpoint") -> dict:
    """A checkpoint of format ``fmt`` written by :func:`save_checkpoint`, or a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise KwspiError(f"{path}: no such {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises several unrelated classes for a bad file
        raise KwspiError(f"{path}: not a kwspi {what} ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        found = state.get("format") if isinstance(state, dict) else None
        raise KwspiError(f"{path}: not a kwspi {what} (format {found!r})")
    return state


def load_weights(model: nn.Module, state: dict, path="checkpoint") -> None:
    """Load a checkpoint's weights, with a clear error if they belong to another network."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        detail = str(e).splitlines()[0]
        raise KwspiError(f"{path}: weights do not match the architecture ({detail})") from None


def class_loss(cfg: TrainConfig, labels) -> nn.CrossEntropyLoss:
    """The classifier's loss: cross-entropy with ``cfg.label_smoothing``, ``_unknown_``
    weighted by ``cfg.unknown_weight`` (at 1 the paper's loss, bit for bit)."""
    weight = None
    if cfg.unknown_weight != 1:
        if gsc.UNKNOWN not in (labels or ()):
            raise KwspiError(f"--unknown-weight: the labels have no {gsc.UNKNOWN}")
        weight = torch.tensor([cfg.unknown_weight if label == gsc.UNKNOWN else 1.0 for label in labels])
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)


@torch.no_grad()
def predict(model: nn.Module, X: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Argmax class of every row of ``X`` ``[n, 1, n_mfcc, T]``."""
    device = next(model.parameters()).device
    model.eval()
    out = [model(X[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(X), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def fit(
    model: nn.Module,
    epoch_data: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    cfg: TrainConfig,
    checkpoint: Path,
    meta: dict,
    resume: bool = False,
    progress: Progress = silent,
    on_epoch: Callable[[int, dict], None] | None = None,
    domains: torch.Tensor | None = None,
) -> list[dict]:
    """Train ``model`` and return one dict per epoch (loss, accuracy, validation accuracy).

    ``epoch_data(e)`` gives the training tensors of epoch ``e``. ``meta`` (architecture,
    front end, labels, data set) is stored in every checkpoint so it can be exported alone.
    ``domains``: each training row's domain (int64 ``[n]``, in every epoch's row order;
    :func:`kwspi.train.nets.domain.domain_labels`), for ``cfg.domain_adversarial``; the
    domain head is kept in the checkpoint apart from the model.
    """
    device = pick_device(cfg.device)
    set_weight_quant(model, cfg.weight_quant).to(device)
    head = None
    if cfg.domain_adversarial > 0:
        if domains is None:
            raise KwspiError("--domain-adversarial needs each training clip's domain")
        head = DomainHead(model.classifier.in_features, int(domains.max()) + 1).to(device)
    params = list(model.parameters()) + (list(head.parameters()) if head else [])
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    history, start = [], 0
    if resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        load_weights(model, state, checkpoint)
        if head is not None:
            head.load_state_dict(state["domain_head"])
        opt.load_state_dict(state["optimizer"])
        history, start = state["history"], state["epoch"]
        log.info("resuming %s at epoch %d of %d", checkpoint, start + 1, cfg.epochs)
    loss_fn = class_loss(cfg, meta.get("labels")).to(device)
    adversary = None if head is None else (head, domains)
    steps_per_epoch = None
    for epoch in range(start, cfg.epochs):
        X, y = epoch_data(epoch)
        steps_per_epoch = math.ceil(len(X) / cfg.batch_size)
        stats = _train_epoch(model, opt, loss_fn, X, y, epoch, steps_per_epoch, cfg, device, progress, adversary)
        if val is not None and len(val[0]):
            stats["val_accuracy"] = float((predict(model, val[0]) == val[1].numpy()).mean())
        history.append(stats)
        log.info("epoch %d/%d %s", epoch + 1, cfg.epochs, " ".join(f"{k} {v:.4f}" for k, v in stats.items()))
        save_checkpoint(
            checkpoint,
            {
                "format": CHECKPOINT_FORMAT,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "history": history,
                "train_config": asdict(cfg),
                **({"domain_head": head.state_dict()} if head else {}),
                **meta,
            },
        )
        if on_epoch:
            on_epoch(epoch, stats)
    return history


def _train_epoch(model, opt, loss_fn, X, y, epoch, steps, cfg, device, progress: Progress, adversary=None) -> dict:
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    order = torch.randperm(len(X), generator=g)
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    domain_total, domain_batches = 0.0, 0
    with progress(f"epoch {epoch + 1}/{cfg.epochs}", steps) as advance:
        for i in range(steps):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            xb, yb = X[idx].to(device), y[idx].to(device)
            step = epoch * steps + i
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, cfg.epochs * steps, cfg.lr)
            features = model.embed(xb)
            logits = model.classifier(features)
            ce = loss_fn(logits, yb)
            loss = ce
            if adversary is not None:
                head, domains = adversary
                d_loss = domain_loss(head, features, domains[idx].to(device), grl_lambda(step / (cfg.epochs * steps)))
                if d_loss is not None:
                    loss = ce + cfg.domain_adversarial * d_loss
                    domain_total += d_loss.item()
                    domain_batches += 1
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total_loss += ce.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(idx)
            advance(1, f"loss {total_loss / seen:.3f} acc {correct / seen:.3f}")
    stats = {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}
    if adversary is not None:
        stats["domain_loss"] = domain_total / max(domain_batches, 1)
    return stats
