"""The architecture search: warm-up, then alternating weight and architecture steps
(ProxylessNAS as the authors ran it; research/paper.md 1.4 and 2).

- Warm-up (``warmup_epochs``): one uniformly sampled path per cell per batch, weights only,
  SGD lr cosine from 0.05 to 0 over the warm-up.
- Joint phase (``search_epochs``): on every training batch a weight step on one path drawn
  from ``softmax(alpha)`` (SGD Nesterov 0.9, wd 4e-5, lr 0.2 cosine per iteration, label
  smoothing 0.1); after every ``arch_every``-th batch, from the second joint epoch on, an
  architecture step on one validation batch: Adam(betas (0, 0.999)) on
  :func:`arch_loss` (plain CE) with the lr ramp :func:`arch_lr`, BN in training mode.
- Architecture gradient: ProxylessNAS ``full_v2`` (see :mod:`kwspi.train.nets.supernet`): the
  sampled path runs forward; in the backward pass every candidate of a cell is evaluated
  under ``no_grad`` to get all binary-gate gradients, which :func:`gate_alpha_grad` turns
  into ``dL/dalpha``; the E[MACs] factor adds its exact gradient through the softmax. As in
  the authors' code, a cell whose sampled path is ``zero`` gets no update in that step.
  ProxylessNAS's ``two`` variant (two sampled paths, then a rescale of their logits) is not
  implemented: ``full_v2`` keeps no more activations than a weight step, and on a CPU one
  architecture step costs about three weight steps (about +60% per joint epoch at
  ``arch_every = 5``), a price worth the authors' exact estimator.

Resume is exact: every random draw of epoch ``e`` (shuffling, validation batches, paths)
comes from generators seeded by ``(seed, e)``, and ``supernet.pt`` holds the weights, the
logits, both optimizers' state and the history.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from kwspi.atomic import write_text
from kwspi.errors import KwspiError
from kwspi.progress import Progress, silent
from kwspi.train.nets.model import KwsNet
from kwspi.train.config import SearchConfig, TrainConfig
from kwspi.train.nets.quant import set_weight_quant
from kwspi.train.nets.space import ZERO
from kwspi.train.nets.supernet import SuperNet, expected_macs, gate_alpha_grad, inherit_weights
from kwspi.train.fit import CHECKPOINT_FORMAT, cosine_lr, load_checkpoint, pick_device, predict, save_checkpoint

log = logging.getLogger(__name__)

SEARCH_FORMAT = "kwspi-search-1"
SUPERNET_NAME, LOG_NAME, ARCH_NAME, INHERITED_NAME = "supernet.pt", "search.jsonl", "arch.json", "inherited.pt"


def arch_loss(ce: torch.Tensor, expected: torch.Tensor, target: float, beta: float) -> torch.Tensor:
    """``L = CE * (ln E[MACs] / ln target) ** beta`` (ProxylessNAS ``mul#log``, alpha_reg = 1).

    ``ce``: cross entropy (scalar), ``expected``: E[MACs] (scalar, > 1), ``target`` in MACs.
    beta = 0 gives CE; above the target the factor exceeds 1, below it falls under 1.
    """
    ratio = torch.log(torch.as_tensor(expected, dtype=torch.float64)) / math.log(target)
    ce = torch.as_tensor(ce)
    return ce * (ratio**beta).to(ce.dtype)


def arch_lr(step: int, total_steps: int, peak: float) -> float:
    """The authors' architecture lr ramp ``peak * (1 + cos(pi * (1 + 0.5 * t / T)))``: 0 -> peak."""
    return peak * (1 + math.cos(math.pi * (1 + 0.5 * step / max(total_steps, 1))))


def arch_travel(cfg: SearchConfig, n_train: int) -> float:
    """The architecture learning rates a search over ``n_train`` training examples sums to.

    Adam with ``beta1 = 0`` moves a logit by about its lr per step whatever the gradient's
    size, so this is about how far any logit can get from its uniform start. The paper's run
    (Speech Commands v0.01, about 22,700 training examples, 120 joint epochs) sums to about 8;
    the first search on the synthetic voices (3,556 clips, 10 joint epochs) summed to 0.1, and
    its architecture never left the start (results/recipe.md).
    """
    steps = math.ceil(n_train / cfg.batch_size)
    total = cfg.search_epochs * steps
    return sum(arch_lr(e * steps + i, total, cfg.arch_lr)
               for e in range(cfg.search_epochs) for i in range(steps) if takes_arch_step(e, i, cfg.arch_every))


def takes_arch_step(joint_epoch: int, batch: int, arch_every: int) -> bool:
    """Whether the search takes an architecture step after this batch of this joint epoch:
    every ``arch_every``-th batch, from the second joint epoch on."""
    return joint_epoch > 0 and (batch + 1) % arch_every == 0


#: Below this :func:`arch_travel` the search warns that its architecture will hardly move.
MIN_ARCH_TRAVEL = 1.0


def _warn_if_the_architecture_stays(cfg: SearchConfig, n_train: int) -> None:
    travel = arch_travel(cfg, n_train)
    if cfg.search_epochs > 0 and travel < MIN_ARCH_TRAVEL:
        log.warning("the architecture logits can move by about %.2f in this search (%d training examples, "
                    "%d joint epochs, a step every %d batches, peak lr %g), too little to leave their "
                    "uniform start (the paper's: about 8); raise --arch-lr or --search-epochs, or lower "
                    "--arch-every", travel, n_train, cfg.search_epochs, cfg.arch_every, cfg.arch_lr)


def _generators(seed: int, epoch: int) -> list[torch.Generator]:
    """Independent CPU generators for (training order, validation order, paths) of one epoch."""
    states = np.random.SeedSequence([seed, epoch]).generate_state(3, dtype=np.uint64)
    return [torch.Generator().manual_seed(int(s) >> 1) for s in states]


def weight_step(net: SuperNet, opt, loss_fn, xb, yb, lr: float) -> tuple[float, int]:
    """One SGD step on the sampled paths; unsampled ops keep ``grad = None`` (no decay)."""
    for group in opt.param_groups:
        group["lr"] = lr
    logits = net(xb)
    loss = loss_fn(logits, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item(), int((logits.argmax(1) == yb).sum())


def _binary_gate(n: int, index: int, device) -> torch.Tensor:
    """ProxylessNAS's gate ``g`` ``[n]``: one-hot at the sampled path, a leaf for ``dL/dg``."""
    gate = torch.zeros(n, device=device)
    gate[index] = 1.0
    return gate.requires_grad_()


def arch_step(net: SuperNet, opt, xb, yb, cfg: SearchConfig, lr: float, generator) -> float:
    """One architecture step on a validation batch (``full_v2``); returns the arch loss."""
    net.sample(generator)
    gates = [_binary_gate(len(c.ops), c.sampled, xb.device) for c in net.cells]
    ce = nn.functional.cross_entropy(net(xb, gates=gates), yb)
    loss = arch_loss(ce, expected_macs(net), cfg.target_macs, cfg.beta)
    alphas = net.arch_parameters()
    grads = torch.autograd.grad(loss, alphas + gates, allow_unused=True)  # no weight gradients
    for cell, g_alpha, g_gate in zip(net.cells, grads[:len(alphas)], grads[len(alphas):]):
        if cell.sampled_name == ZERO:
            cell.alpha.grad = None  # Adam skips it, as the authors' code does
            continue
        cell.alpha.grad = g_alpha + gate_alpha_grad(g_gate, cell.probs.detach())
    for group in opt.param_groups:
        group["lr"] = lr
    opt.step()
    return loss.item()


def _batches(order: torch.Tensor, batch_size: int):
    """Endless batches of indices from ``order``, wrapping around (validation batches)."""
    while True:
        for start in range(0, len(order), batch_size):
            yield order[start:start + batch_size]


def _run_epoch(net, opts, loss_fn, data, val, cfg: SearchConfig, epoch: int, device, progress: Progress) -> dict:
    X, y = data
    Xv, yv = val
    steps = math.ceil(len(X) / cfg.batch_size)
    warm, joint_epoch = epoch < cfg.warmup_epochs, epoch - cfg.warmup_epochs
    g_order, g_val, g_path = _generators(cfg.seed, epoch)
    order = torch.randperm(len(X), generator=g_order)
    val_batches = _batches(torch.randperm(len(Xv), generator=g_val), cfg.batch_size)
    s = {"loss": 0.0, "correct": 0, "seen": 0, "arch_loss": [], "macs": expected_macs(net).item()}
    net.train()
    phase = "warm-up" if warm else "search"
    with progress(f"{phase} {epoch + 1}/{cfg.epochs}", steps) as advance:
        for i in range(steps):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            if warm:
                lr = cosine_lr(epoch * steps + i, cfg.warmup_epochs * steps, cfg.warmup_lr)
            else:
                lr = cosine_lr(joint_epoch * steps + i, cfg.search_epochs * steps, cfg.lr)
            net.sample(g_path, uniform=warm)
            loss, correct = weight_step(net, opts[0], loss_fn, X[idx].to(device), y[idx].to(device), lr)
            s["loss"], s["correct"], s["seen"] = s["loss"] + loss * len(idx), s["correct"] + correct, s["seen"] + len(idx)
            if not warm and takes_arch_step(joint_epoch, i, cfg.arch_every):
                t = joint_epoch * steps + i
                v = next(val_batches)
                s["arch_lr"] = arch_lr(t, cfg.search_epochs * steps, cfg.arch_lr)
                s["arch_loss"].append(arch_step(net, opts[1], Xv[v].to(device), yv[v].to(device), cfg,
                                                s["arch_lr"], g_path))
                s["macs"] = expected_macs(net).item()
            advance(1, _status(s, net))
    recalibrate_bn(net, X[order[:RECALIBRATION_EXAMPLES]], cfg.batch_size, device, net.argmax_path())
    return _epoch_record(net, s, val, epoch, warm, lr)


RECALIBRATION_EXAMPLES = 2000


@torch.no_grad()
def recalibrate_bn(net: SuperNet, X: torch.Tensor, batch_size: int, device, path: tuple[int, ...]) -> None:
    """Fresh running BN statistics for the subnet ``path``, from the training batches ``X``.

    An op's running statistics blend every path that ran through it, and each fed it other
    inputs, so a subnet evaluated with them is at chance. Only evaluation reads running
    statistics (every search step uses batch statistics), so this changes no search step;
    the derived net and ``inherited.pt`` get statistics that fit it.
    """
    net.set_path(path)
    layers = [net.stem, net.head, *(cell.ops[cell.sampled] for cell in net.cells)]
    bns = [m for layer in layers for m in layer.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    net.train()
    for start in range(0, len(X), batch_size):
        net(X[start:start + batch_size].to(device))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum


def _epoch_record(net: SuperNet, s: dict, val, epoch: int, warm: bool, lr: float) -> dict:
    path = net.argmax_path()
    net.set_path(path)
    val_acc = float((predict(net, val[0]) == val[1].numpy()).mean())
    return {
        "epoch": epoch + 1, "phase": "warmup" if warm else "joint", "lr": lr, "arch_lr": s.get("arch_lr", 0.0),
        "loss": s["loss"] / max(s["seen"], 1), "accuracy": s["correct"] / max(s["seen"], 1),
        "arch_loss": float(np.mean(s["arch_loss"])) if s["arch_loss"] else None,
        "val_accuracy_argmax": val_acc, "expected_macs": s["macs"], "argmax_macs": net.path_macs(path),
        "arch": list(net.derive().cells),
        "probs": [[round(p, 6) for p in cell.probs.tolist()] for cell in net.cells],
    }


def compact_arch(cells) -> str:
    """``k7e2`` -> ``72``, ``zero`` -> ``--``: twelve cells in one short line."""
    return " ".join("--" if c == ZERO else c[1] + c[3] for c in cells)


def _status(s: dict, net: SuperNet) -> str:
    seen = max(s["seen"], 1)
    return (f"loss {s['loss'] / seen:.3f} acc {s['correct'] / seen:.3f} E[MACs] {s['macs'] / 1e6:.2f}M "
            f"{compact_arch(net.derive().cells)}")


def search(
    net: SuperNet,
    epoch_data: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    val: tuple[torch.Tensor, torch.Tensor],
    cfg: SearchConfig,
    out: Path,
    meta: dict,
    resume: bool = False,
    progress: Progress = silent,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Search, writing ``out/supernet.pt``, ``search.jsonl`` and ``arch.json`` after every
    epoch and ``inherited.pt`` at the end; return one record per epoch.

    ``epoch_data(e)``: training tensors (X ``[n, 1, n_mfcc, T]``, y ``[n]``) of epoch ``e``;
    ``val``: the validation tensors the architecture steps draw from. ``meta`` (front end,
    labels, data, augmentation) goes into every checkpoint.
    """
    if len(val[0]) == 0:
        raise KwspiError("the search needs validation examples for its architecture steps")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    set_weight_quant(net, cfg.weight_quant).to(device)
    wopt = torch.optim.SGD(net.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                           weight_decay=cfg.weight_decay)
    aopt = torch.optim.Adam(net.arch_parameters(), lr=0.0, betas=(0.0, 0.999), eps=1e-8, weight_decay=0.0)
    history, start = [], 0
    if resume and (out / SUPERNET_NAME).exists():
        state = load_search_checkpoint(out / SUPERNET_NAME)
        net.load_state_dict(state["supernet"])
        wopt.load_state_dict(state["weight_optimizer"])
        aopt.load_state_dict(state["arch_optimizer"])
        history, start = state["history"], state["epoch"]
        log.info("resuming %s at epoch %d of %d", out / SUPERNET_NAME, start + 1, cfg.epochs)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    for epoch in range(start, cfg.epochs):
        began = time.monotonic()
        data = epoch_data(epoch)
        if epoch == start:
            _warn_if_the_architecture_stays(cfg, len(data[0]))
        record = _run_epoch(net, (wopt, aopt), loss_fn, data, val, cfg, epoch, device, progress)
        record["seconds"] = round(time.monotonic() - began, 3)
        history.append(record)
        log.info("epoch %d/%d loss %.4f E[MACs] %.2fM %s", epoch + 1, cfg.epochs, record["loss"],
                 record["expected_macs"] / 1e6, compact_arch(record["arch"]))
        save_checkpoint(out / SUPERNET_NAME, {
            "format": SEARCH_FORMAT, "epoch": epoch + 1, "supernet": net.state_dict(),
            "weight_optimizer": wopt.state_dict(), "arch_optimizer": aopt.state_dict(), "history": history,
            "search_config": asdict(cfg), **meta})
        write_text(out / LOG_NAME, "".join(json.dumps(r) + "\n" for r in history))
        write_text(out / ARCH_NAME, net.derive().to_json() + "\n")
        if on_epoch:
            on_epoch(epoch, record)
    save_checkpoint(out / INHERITED_NAME, inherited_checkpoint(net, cfg, meta))
    return history


def inherited_checkpoint(net: SuperNet, cfg: SearchConfig, meta: dict) -> dict:
    """The derived network with the supernet's weights, as a ``kwspi train`` checkpoint at
    epoch 0 whose train config is the paper's retraining recipe with this search's batch,
    seed, quantization and device (so ``kwspi train --resume`` accepts it)."""
    arch = net.derive()
    model = inherit_weights(net, KwsNet(arch, net.input_shape[2], net.classifier.out_features))  # on the CPU
    tcfg = TrainConfig(batch_size=cfg.batch_size, seed=cfg.seed, weight_bits=cfg.weight_bits,
                       quant_scheme=cfg.quant_scheme, device=cfg.device)
    opt = torch.optim.SGD(model.parameters(), lr=tcfg.lr, momentum=tcfg.momentum, nesterov=True,
                          weight_decay=tcfg.weight_decay)
    return {"format": CHECKPOINT_FORMAT, "epoch": 0, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "history": [], "train_config": asdict(tcfg), **meta, "arch": arch.to_dict()}


# What the warm-up depends on. beta, the target, the arch lr and the joint epochs only act
# after it, so one warm-up serves every run of a sweep.
WARMUP_FIELDS = ("width_mult", "warmup_epochs", "batch_size", "warmup_lr", "momentum", "weight_decay",
                 "label_smoothing", "seed", "weight_bits", "quant_scheme")


def fork_warmup(state: dict, cfg: SearchConfig, path) -> dict:
    """The search checkpoint ``state`` of a finished warm-up, continued under ``cfg``.

    Every draw of epoch e comes from ``(seed, e)``, so a fork is exactly the run that would
    have done the same warm-up itself; only the fields in :data:`WARMUP_FIELDS` must agree.
    """
    done, wanted = state["epoch"], cfg.warmup_epochs
    if done != wanted:
        raise KwspiError(f"{path}: holds {done} epochs; a finished warm-up of {wanted} epochs is needed")
    theirs = state["search_config"]
    changed = sorted(k for k in WARMUP_FIELDS if theirs.get(k) != getattr(cfg, k))
    if changed:
        raise KwspiError(f"{path}: was warmed up with other options; these differ: {', '.join(changed)}")
    return {**state, "search_config": asdict(cfg)}


def load_search_checkpoint(path) -> dict:
    """A ``supernet.pt`` written by :func:`search`, or a one-line error."""
    return load_checkpoint(path, SEARCH_FORMAT, "search checkpoint")
