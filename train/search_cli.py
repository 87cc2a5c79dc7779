"""``kwspi search``: the paper's architecture search (ProxylessNAS) from the command line.

A thin layer over :func:`kwspi.train.search.search`: it loads the training and validation
splits, builds the supernet and the :class:`~kwspi.train.search.SearchConfig`, and checks
that a resumed run has the same options.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import click
import torch

from kwspi import gsc
from kwspi.errors import KwspiError
from kwspi.features import FeatureConfig
from kwspi.options import progress_bar
from kwspi.train.data import load_split
from kwspi.train.nets.model import set_input_stats
from kwspi.train.search import (ARCH_NAME, INHERITED_NAME, SUPERNET_NAME, SearchConfig, fork_warmup,
                                load_search_checkpoint, search)
from kwspi.train.nets.supernet import SuperNet
from kwspi.train.fit import save_checkpoint
from kwspi.train.train_cli import augment_config, epoch_tensors, parse_keywords, run_options

log = logging.getLogger(__name__)


@click.command("search", short_help="Search an architecture (ProxylessNAS) under a MACs target.")
@click.option("--data", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Training data in Google Speech Commands layout (its validation split drives the search).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: supernet.pt, search.jsonl, arch.json (every epoch), inherited.pt (at the end).")
@click.option("--beta", type=click.FloatRange(min=0), default=4.0, show_default=True,
              help="Weight of the cost term; the paper sweeps 0, 1, 2, 4, 8, 16 (higher: cheaper nets).")
@click.option("--target-macs", type=click.FloatRange(min=1, min_open=True), default=20e6, show_default=True,
              help="The MACs where the cost factor (ln E[MACs] / ln target)^beta is 1.")
@click.option("--width-mult", type=click.FloatRange(0.1, 4), default=1.0, show_default=True,
              help="Width multiplier w: cells have round8(72 w) channels, the head round8(144 w).")
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=40, show_default=True,
              help="Epochs of weights only, on uniformly sampled paths.")
@click.option("--warmup-lr", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Peak learning rate of the warm-up (cosine to 0).")
@click.option("--epochs", type=click.IntRange(min=0), default=120, show_default=True,
              help="Joint epochs (weights and architecture) after the warm-up.")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--arch-lr", type=click.FloatRange(min=0), default=4e-3, show_default=True,
              help="Peak architecture learning rate (Adam), reached at the last epoch.")
@run_options(default_scheme="paper")
@click.option("--warmup-from", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Start from the supernet.pt of a finished warm-up (a search run with --epochs 0) instead of "
                   "warming up again; its warm-up options and seed must match.")
@click.option("--resume", is_flag=True, help="Continue the search in --out where it stopped.")
def search_command(data, out, beta, target_macs, width_mult, warmup_epochs, warmup_lr, epochs, batch_size, arch_lr,
                   n_mfcc, bits, float_weights, quant_scheme, views, no_augment, extra_augment, keywords, seed,
                   device, cache_dir, warmup_from, resume):
    """Search an architecture with ProxylessNAS under a MACs target, as the paper.

    A supernet of twelve cells (18 MBConv candidates each, plus 'zero' from cell
    2 on) trains its weights on one sampled path per batch; every 5 batches an
    architecture step on a validation batch lowers CE * (ln E[MACs] / ln
    target)^beta. The bar shows loss, accuracy, E[MACs] and the argmax
    architecture as kernel-expansion digits (72 = k7e2, -- = zero).

    OUT/arch.json is the argmax architecture. OUT/inherited.pt is that network
    with the supernet's weights, as a `kwspi train` checkpoint at epoch 0: copy
    it to RUN/checkpoint.pt and run `kwspi train OUT/arch.json --out RUN
    --resume` with the search's --seed, --batch-size, --bits and --quant-scheme
    to retrain from the inherited weights (the paper's recipe).

    \b
    Example:
      kwspi search --data data/synth --out runs/search --beta 4 --width-mult 0.5 --warmup-epochs 5 --epochs 15
      kwspi search --data speech_commands_v0.01 --out runs/nas-b8 --n-mfcc 20 --beta 8
      kwspi search --data data/synth --out runs/warm --epochs 0      # one warm-up ...
      kwspi search --data data/synth --out runs/b16 --beta 16 --warmup-from runs/warm/supernet.pt  # ... many betas
      mkdir runs/nas-b8-retrain && cp runs/nas-b8/inherited.pt runs/nas-b8-retrain/checkpoint.pt
      kwspi train runs/nas-b8/arch.json --data speech_commands_v0.01 --out runs/nas-b8-retrain \\
          --n-mfcc 20 --quant-scheme paper --resume
    """
    cfg = FeatureConfig(n_mfcc=n_mfcc)
    task = gsc.TaskSpec(keywords=parse_keywords(keywords))
    scfg = SearchConfig(width_mult=width_mult, beta=beta, target_macs=target_macs, warmup_epochs=warmup_epochs,
                        warmup_lr=warmup_lr, joint_epochs=epochs, batch_size=batch_size, arch_lr=arch_lr, seed=seed,
                        device=device,
                        weight_bits=None if float_weights else bits, quant_scheme=quant_scheme)
    checkpoint = out / SUPERNET_NAME
    if checkpoint.exists() and not resume:
        raise KwspiError(f"{checkpoint} exists: pass --resume to continue it, or choose another --out")
    if warmup_from is not None and not checkpoint.exists():
        state = load_search_checkpoint(warmup_from)
        _check_same_data(state, cfg, data, warmup_from)
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(checkpoint, fork_warmup(state, scfg, warmup_from))
        resume = True
    if resume and checkpoint.exists():
        _check_same_search(load_search_checkpoint(checkpoint), cfg, scfg, checkpoint)
    aug = augment_config(no_augment, extra_augment)
    train_set = load_split(data, "training", cfg, task, aug, views or None, seed, cache_dir, progress=progress_bar)
    val_set = load_split(data, "validation", cfg, task, None, None, seed, cache_dir, progress=progress_bar)

    torch.manual_seed(seed)
    net = SuperNet(cfg.n_mfcc, cfg.n_frames, len(task.labels), width_mult)
    X0, _ = epoch_tensors(train_set)
    set_input_stats(net, X0.mean(dim=(0, 1, 3)), X0.std(dim=(0, 1, 3)))
    meta = {"features": cfg.to_json(), "labels": list(task.labels), "data": str(data.resolve()),
            "augment": aug.to_json() if aug else None, "views": views}
    history = search(net, lambda e: epoch_tensors(train_set, e), epoch_tensors(val_set), scfg, out, meta, resume=resume)
    last = history[-1] if history else None
    if last:
        click.echo(f"{out / ARCH_NAME}: {' '.join(last['arch'])} ({last['argmax_macs'] / 1e6:.2f} M MACs, "
                   f"E[MACs] {last['expected_macs'] / 1e6:.2f} M); inherited weights in {out / INHERITED_NAME}")


def _check_same_data(state: dict, cfg: FeatureConfig, data: Path, path: Path) -> None:
    if state["features"] != cfg.to_json() or state["data"] != str(data.resolve()):
        raise KwspiError(f"{path}: was warmed up on other data or another front end than --data and --n-mfcc")


def _check_same_search(state: dict, cfg: FeatureConfig, scfg: SearchConfig, path: Path) -> None:
    if state["features"] != cfg.to_json():
        raise KwspiError(f"{path}: was searched with another front end; use another --out")
    if state["search_config"] != asdict(scfg):
        changed = sorted(k for k, v in asdict(scfg).items() if state["search_config"].get(k) != v)
        raise KwspiError(f"{path}: resume needs the same options; these differ: {', '.join(changed)}")
