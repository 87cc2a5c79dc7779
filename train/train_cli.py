"""``kwspi train`` and ``kwspi export``: the commands that need torch.

Kept apart from :mod:`kwspi.train.cli` (``kwspi synth``, torch-free) so that a missing
torch is reported by the CLI group as "pip install 'kwspi[train]'" before anything runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

import click
import numpy as np
import torch

from kwspi import gsc
from kwspi.atomic import write_text
from kwspi.errors import DatasetError, KwspiError
from kwspi.evaluate import task_for
from kwspi.features import FeatureConfig
from kwspi.metrics import classification_report
from kwspi.modelinfo import ModelInfo
from kwspi.train.speech.augment import EXTRA_AUGMENTATIONS, AugmentConfig, with_extras
from kwspi.train.cli import parse_names
from kwspi.train.nets.counting import count
from kwspi.options import progress_bar
from kwspi.train.data import DEFAULT_VIEWS, load_split
from kwspi.train.export import export_model
from kwspi.train.nets.model import build_model, set_input_stats
from kwspi.train.nets.quant import set_weight_quant, snap_weights_
from kwspi.train.nets.space import Arch, load_arch
from kwspi.train.fit import TrainConfig, fit, load_checkpoint, load_weights, predict

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def parse_keywords(value: str | None) -> tuple[str, ...]:
    """``--keywords`` as a tuple; the 10 GSC keywords when not given."""
    return parse_names(value) or gsc.KEYWORDS


def epoch_tensors(fs, epoch: int = 0):
    # The cache hands out read-only memory maps; torch wants arrays it may write to.
    features = np.require(fs.features_for_epoch(epoch), requirements=("C", "W"))
    return torch.from_numpy(features), torch.from_numpy(np.require(fs.labels, requirements=("C", "W")))


def _extra_augment(ctx, param, value) -> tuple[str, ...]:
    names = parse_names(value) or ()
    try:
        with_extras(names)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return names


def augment_config(no_augment: bool, extra: tuple[str, ...]) -> AugmentConfig | None:
    if no_augment and extra:
        raise KwspiError("--no-augment and --augment exclude each other")
    return None if no_augment else with_extras(extra)


def run_options(default_scheme: str):
    """The options ``kwspi train`` and ``kwspi search`` share: front end, quantization, data."""
    options = [
        click.option("--n-mfcc", type=click.IntRange(1, 40), default=10, show_default=True,
                     help="Cepstral coefficients (the paper tries 10, 20, 30, 40)."),
        click.option("--bits", type=click.IntRange(1, 8), default=8, show_default=True,
                     help="Weight bits for quantization-aware training (STE)."),
        click.option("--float", "float_weights", is_flag=True, help="Float weights (no QAT)."),
        click.option("--quant-scheme", type=click.Choice(["channel", "paper"]), default=default_scheme,
                     show_default=True,
                     help="channel: per-channel symmetric, as the int8 export; paper: per tensor in [-1, 1]."),
        click.option("--views", type=click.IntRange(min=0), default=DEFAULT_VIEWS, show_default=True,
                     help="Augmented views cached per clip; 0 computes fresh augmentation every epoch."),
        click.option("--no-augment", is_flag=True, help="No time shift and no background noise."),
        click.option("--augment", "extra_augment", default=None, metavar="NAMES", callback=_extra_augment,
                     help="Augmentations beyond the paper's, comma-separated: "
                          + ", ".join(EXTRA_AUGMENTATIONS) + " (for voices and channels never heard)."),
        click.option("--keywords", default=None, help="Comma-separated keywords. [default: the 10 GSC keywords]"),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Feature cache. [default: DATA/.kwspi-cache]"),
    ]

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


@click.command("train", short_help="Train a network: an architecture JSON file or a baseline name.")
@click.argument("arch_spec", metavar="ARCH")
@click.option("--data", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Training data in Google Speech Commands layout.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: checkpoint.pt (every epoch), arch.json, metrics.json.")
@click.option("--epochs", type=click.IntRange(min=1), default=120, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.2, show_default=True,
              help="Initial learning rate (cosine decay to 0 per iteration).")
@run_options(default_scheme="channel")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="The paper's 0.1 caps a confident score near 0.91; 0 lets a detector's threshold use the whole "
                   "range up to 1.")
@click.option("--unknown-fraction", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Training examples of the unknown class per keyword example (the paper: 0.1). More teaches the "
                   "model what is not a keyword, e.g. confusable words, at the cost of keyword recall.")
@click.option("--init-from", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Start from these weights, e.g. OUT/inherited.pt of `kwspi search` (the paper's retraining).")
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
def train(arch_spec, data, out, epochs, batch_size, lr, n_mfcc, bits, float_weights, quant_scheme, views,
          no_augment, extra_augment, keywords, seed, device, cache_dir, label_smoothing, unknown_fraction, init_from,
          resume):
    """Train a network: an architecture JSON file (e.g. from `kwspi search`) or a
    baseline name (dscnn-s, dscnn-m, dscnn-l).

    The paper's recipe: SGD with Nesterov momentum, cosine learning rate, label
    smoothing 0.1, 8-bit weights through the straight-through estimator. A checkpoint
    is written after every epoch; --resume continues an interrupted run exactly.

    \b
    Example:
      kwspi train dscnn-s --data data/synth --out runs/dscnn-s --epochs 30
      kwspi train arch.json --data speech_commands_v0.01 --out runs/nas --n-mfcc 20
    """
    arch = load_arch(arch_spec)
    cfg = FeatureConfig(n_mfcc=n_mfcc)
    task = gsc.TaskSpec(keywords=parse_keywords(keywords), unknown_fraction=unknown_fraction)
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                       weight_bits=None if float_weights else bits, quant_scheme=quant_scheme,
                       label_smoothing=label_smoothing)
    aug = augment_config(no_augment, extra_augment)
    checkpoint = out / CHECKPOINT_NAME
    if checkpoint.exists() and not resume:
        raise KwspiError(f"{checkpoint} exists: pass --resume to continue it, or choose another --out")
    if resume and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        check_same_run(state, arch, cfg, tcfg, checkpoint)
        if state.get("augment") != (aug.to_json() if aug else None):
            raise KwspiError(f"{checkpoint}: was trained with other augmentation; resume needs the same --augment")
        if state.get("unknown_fraction", 0.1) != unknown_fraction:
            raise KwspiError(f"{checkpoint}: was trained with another --unknown-fraction")
    train_set = load_split(data, "training", cfg, task, aug, views or None, seed, cache_dir, progress=progress_bar)
    val_set = _optional_split(data, "validation", cfg, task, seed, cache_dir)

    torch.manual_seed(seed)
    model = build_model(arch, cfg.n_mfcc, cfg.n_frames, len(task.labels))
    X0, _ = epoch_tensors(train_set)
    set_input_stats(model, X0.mean(dim=(0, 1, 3)), X0.std(dim=(0, 1, 3)))
    if init_from is not None and not (resume and checkpoint.exists()):
        init = load_checkpoint(init_from)
        if Arch.from_dict(init["arch"]) != arch or init["features"] != cfg.to_json():
            raise KwspiError(f"{init_from}: holds another architecture or front end than {arch_spec}")
        load_weights(model, init, init_from)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "arch.json", arch.to_json() + "\n")
    meta = {"arch": arch.to_dict(), "features": cfg.to_json(), "labels": list(task.labels),
            "data": str(data.resolve()), "augment": aug.to_json() if aug else None, "views": views,
            "unknown_fraction": unknown_fraction}
    fit(model, lambda e: epoch_tensors(train_set, e), val_set and epoch_tensors(val_set), tcfg, checkpoint, meta,
        resume=resume)

    metrics = {}
    for split, fs in [("validation", val_set), ("testing", _optional_split(data, "testing", cfg, task, seed, cache_dir))]:
        if fs is None:
            continue
        X, y = epoch_tensors(fs)
        report = classification_report(y.numpy(), predict(model, X), task.labels)
        metrics[split] = {"accuracy": report["accuracy"], "n": report["n"]}
    state = load_checkpoint(checkpoint)
    state["metrics"] = metrics
    from kwspi.train.fit import save_checkpoint

    save_checkpoint(checkpoint, state)
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    click.echo(f"{out}: " + ", ".join(f"{k} accuracy {v['accuracy']:.4f} (n={v['n']})" for k, v in metrics.items()))


def _optional_split(data, split, cfg, task, seed, cache_dir):
    """An unaugmented evaluation split, or ``None`` (with a warning) when it has no clips."""
    try:
        return load_split(data, split, cfg, task, None, None, seed, cache_dir, progress=progress_bar)
    except DatasetError as e:
        log.warning("no %s figures: %s", split, e)
        return None


def check_same_run(state: dict, arch: Arch, cfg: FeatureConfig, tcfg: TrainConfig, path: Path) -> None:
    if Arch.from_dict(state["arch"]) != arch or state["features"] != cfg.to_json():
        raise KwspiError(f"{path}: was trained with another architecture or front end; use another --out")
    if state["train_config"] != asdict(tcfg):
        changed = sorted(k for k, v in asdict(tcfg).items() if state["train_config"].get(k) != v)
        raise KwspiError(f"{path}: resume needs the same options; these differ: {', '.join(changed)}")


def restore(checkpoint: Path, arch_spec: str | None = None):
    """Network, front end, labels and checkpoint state, with QAT weights snapped to their grid."""
    state = load_checkpoint(checkpoint)
    arch = Arch.from_dict(state["arch"])
    if arch_spec is not None and load_arch(arch_spec) != arch:
        raise KwspiError(f"{checkpoint}: was trained as {arch.name}, not the architecture given with --arch")
    cfg = FeatureConfig.from_json(state["features"])
    labels = tuple(state["labels"])
    model = build_model(arch, cfg.n_mfcc, cfg.n_frames, len(labels))
    load_weights(model, state, checkpoint)
    tcfg = TrainConfig(**state["train_config"])
    set_weight_quant(model, tcfg.weight_quant)
    snap_weights_(model)
    return model.eval(), cfg, labels, state


def evaluate_checkpoint(checkpoint: Path, data: Path, split: str, seed: int = 0) -> dict:
    """``kwspi eval`` for a training checkpoint (float forward pass of the QAT weights)."""
    model, cfg, labels, _ = restore(checkpoint)
    fs = load_split(data, split, cfg, task_for(labels), None, None, seed)
    X, y = epoch_tensors(fs)
    report = classification_report(y.numpy(), predict(model, X), labels)
    report.update(model=str(checkpoint), data=str(data), split=split)
    return report


@click.command("export", short_help="Export a training checkpoint to a self-describing int8 ONNX model.")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The int8 ONNX file.")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Calibration and evaluation data. [default: the training data the checkpoint names]")
@click.option("--eval-data", "eval_data", multiple=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="More folders to measure (every clip), e.g. voices never trained on; repeatable.")
@click.option("--float-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the float ONNX model here.")
@click.option("--arch", "arch_spec", default=None, help="Refuse the checkpoint unless it has this architecture.")
@click.option("--calibration-size", type=click.IntRange(min=10), default=400, show_default=True,
              help="Training windows (silence and noise included) that calibrate the int8 activations.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Recommended detection threshold written into the model.")
@click.option("--dataset-name", default=None, help="How the model describes its training data.")
def export(checkpoint, out, data, eval_data, float_out, arch_spec, calibration_size, threshold, dataset_name):
    """Export a training checkpoint to a self-describing int8 ONNX model.

    Static int8 quantization (QDQ, per-channel weights) calibrated on training
    windows, then the model is measured on the validation and testing splits (and on
    any --eval-data folders) and the figures are stored in its metadata.

    \b
    Example:
      kwspi export runs/dscnn-s/checkpoint.pt --out model.onnx
      kwspi export runs/nas/checkpoint.pt --out nas.onnx --eval-data data/heldout --float-out nas-float.onnx
    """
    model, cfg, labels, state = restore(checkpoint, arch_spec)
    data = data or Path(state["data"])
    # Calibrate on the training split the model saw: its unknown share, its cached features.
    task = replace(task_for(labels), unknown_fraction=state.get("unknown_fraction", gsc.TaskSpec.unknown_fraction))
    aug = AugmentConfig.from_json(state["augment"]) if state.get("augment") else None
    seed = state["train_config"]["seed"]
    train_set = load_split(data, "training", cfg, task, aug, state.get("views") or None, seed, progress=progress_bar)
    X, _ = epoch_tensors(train_set)
    pick = np.random.default_rng(seed).permutation(len(X))[:calibration_size]
    c = count(model, (1, 1, cfg.n_mfcc, cfg.n_frames))
    bits = state["train_config"]["weight_bits"] or 8
    info = ModelInfo(labels=labels, features=cfg, arch=state["arch"], macs=c.macs, params=c.params,
                     weight_bits=8, weight_bytes=c.weight_bytes(8),
                     dataset=dataset_name or f"{data.name} ({len(X)} training examples)",
                     thresholds={"default": threshold})
    sizes = export_model(model, info, X[pick].numpy(), out, float_out)
    from kwspi.evaluate import evaluate_onnx

    metrics = {"qat_bits": bits}
    for name, folder, split in [("validation", data, "validation"), ("testing", data, "testing")] + [
            (f"{Path(d).name}/all", d, "all") for d in eval_data]:
        try:
            report = evaluate_onnx(out, folder, split, seed)
        except DatasetError as e:
            log.warning("no %s figures: %s", name, e)
            continue
        metrics[name] = {"accuracy": round(report["accuracy"], 5), "n": report["n"]}
    from kwspi.train.export import write_metadata

    write_metadata(out, replace(info, metrics=metrics), out)
    click.echo(f"{out}: {sizes['bytes']:,} bytes (float {sizes['float_bytes']:,}), "
               + ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in metrics.items() if isinstance(v, dict)))
