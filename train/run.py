"""A run, top to bottom: train, search or export from one config.

Each function takes the config of one ``kwspi`` command (:mod:`kwspi.train.config`), loads
its data, builds its network, runs the loop of :mod:`kwspi.train.fit` or
:mod:`kwspi.train.search`, and writes its run folder. The CLI, the sweep and the studies all
call these; none of them repeats a step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch

from kwspi import gsc
from kwspi.atomic import write_text
from kwspi.errors import DatasetError, KwspiError
from kwspi.evaluate import evaluate_onnx, task_for
from kwspi.features import FeatureConfig
from kwspi.metrics import classification_report
from kwspi.modelinfo import ModelInfo, open_session
from kwspi.progress import Progress, silent
from kwspi.train.config import DataConfig, ExportRun, SearchRun, TrainConfig, TrainRun
from kwspi.train.data import FeatureSet, load_split
from kwspi.train.export import bank, export_model, write_metadata
from kwspi.train.fit import fit, load_checkpoint, load_weights, predict, save_checkpoint
from kwspi.train.nets.counting import count
from kwspi.train.nets.domain import domain_labels
from kwspi.train.nets.model import build_model, set_input_stats
from kwspi.train.nets.quant import set_weight_quant, snap_weights_
from kwspi.train.nets.space import Arch, load_arch
from kwspi.train.nets.supernet import SuperNet
from kwspi.train.search import SUPERNET_NAME, fork_warmup, load_search_checkpoint, search
from kwspi.train.speech.augment import AugmentConfig

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def epoch_tensors(fs: FeatureSet, epoch: int = 0, progress: Progress = silent) -> tuple[torch.Tensor, torch.Tensor]:
    """The features ``[n, 1, n_mfcc, T]`` and labels ``[n]`` epoch ``epoch`` trains on."""
    # The cache hands out read-only memory maps; torch wants arrays it may write to.
    features = np.require(fs.features_for_epoch(epoch, progress), requirements=("C", "W"))
    return torch.from_numpy(features), torch.from_numpy(np.require(fs.labels, requirements=("C", "W")))


def training_split(data: DataConfig, seed: int, progress: Progress = silent) -> FeatureSet:
    """The augmented training split of ``data``."""
    return load_split(data.data, "training", data.features, data.task, data.augment_config,
                      data.views or None, seed, data.cache_dir, progress)


def eval_split(data: DataConfig, split: str, seed: int, progress: Progress = silent) -> FeatureSet | None:
    """An unaugmented evaluation split, or ``None`` (with a warning) when it has no clips."""
    try:
        return load_split(data.data, split, data.features, data.task, None, None, seed,
                          data.cache_dir, progress)
    except DatasetError as e:
        log.warning("no %s figures: %s", split, e)
        return None


def _meta(data: DataConfig, run) -> dict:
    """What every checkpoint of a run carries beside its weights, so it can be exported alone."""
    aug = data.augment_config
    return {"features": data.features.to_json(), "labels": list(data.task.labels),
            "data": str(data.data.resolve()), "augment": aug.to_json() if aug else None, "views": data.views,
            "unknown_fraction": data.unknown_fraction, "run": run.to_dict()}


# --- kwspi train -----------------------------------------------------------------------------


def train_run(cfg: TrainRun, progress: Progress = silent,
              init: torch.nn.Module | None = None) -> tuple[torch.nn.Module, dict]:
    """Train ``cfg.arch`` into ``cfg.out`` (``checkpoint.pt`` after every epoch,
    ``arch.json``, ``metrics.json``); return the trained network and its validation and
    testing accuracy.

    ``init``: start from this network's weights (a trained float twin, say) unless the
    run resumes; ``cfg.init_from`` does the same from a checkpoint file.
    """
    arch, data, tcfg = load_arch(cfg.arch), cfg.data, cfg.train
    features = data.features
    checkpoint = cfg.out / CHECKPOINT_NAME
    resuming = cfg.resume and checkpoint.exists()
    if checkpoint.exists() and not cfg.resume:
        raise KwspiError(f"{checkpoint} exists: pass --resume to continue it, or choose another --out")
    meta = {"arch": arch.to_dict(), **_meta(data, cfg)}
    if resuming:
        check_same_run(load_checkpoint(checkpoint), arch, features, tcfg, checkpoint, meta)
    train_set = training_split(data, tcfg.seed, progress)
    val_set = eval_split(data, "validation", tcfg.seed, progress)

    torch.manual_seed(tcfg.seed)
    model = build_model(arch, features.n_mfcc, features.n_frames, len(data.task.labels))
    set_input_stats(model, epoch_tensors(train_set)[0])
    if not resuming and cfg.init_from is not None:
        start = load_checkpoint(cfg.init_from)
        if Arch.from_dict(start["arch"]) != arch or start["features"] != features.to_json():
            raise KwspiError(f"{cfg.init_from}: holds another architecture or front end than {cfg.arch}")
        load_weights(model, start, cfg.init_from)
    elif not resuming and init is not None:
        model.load_state_dict(init.state_dict())
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_text(cfg.out / "arch.json", arch.to_json() + "\n")
    domains = None
    if tcfg.domain_adversarial > 0:
        index, names = domain_labels(data.data, train_set.paths, tcfg.domain_label)
        log.info("domain head: %d %ss (%s), %d of %d training examples labelled", len(names), tcfg.domain_label,
                 ", ".join(names), int((index >= 0).sum()), len(index))
        domains = torch.from_numpy(index)
    fit(model, lambda e: epoch_tensors(train_set, e, progress), val_set and epoch_tensors(val_set), tcfg, checkpoint,
        meta, resume=cfg.resume, progress=progress, domains=domains)

    metrics = {}
    for split, fs in [("validation", val_set), ("testing", eval_split(data, "testing", tcfg.seed, progress))]:
        if fs is not None:
            X, y = epoch_tensors(fs)
            report = classification_report(y.numpy(), predict(model, X), data.task.labels)
            metrics[split] = {"accuracy": report["accuracy"], "n": report["n"]}
    state = load_checkpoint(checkpoint)
    state["metrics"] = metrics
    save_checkpoint(checkpoint, state)
    write_text(cfg.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return model, metrics


def check_same_run(state: dict, arch: Arch, features: FeatureConfig, tcfg: TrainConfig, path: Path,
                   meta: dict | None = None) -> None:
    """A one-line error unless the checkpoint ``state`` was trained as asked (resume needs it)."""
    if Arch.from_dict(state["arch"]) != arch or state["features"] != features.to_json():
        raise KwspiError(f"{path}: was trained with another architecture or front end; use another --out")
    # Through TrainConfig: settings added since the checkpoint was written take their defaults.
    recorded = dataclasses.asdict(TrainConfig(**state["train_config"]))
    if recorded != dataclasses.asdict(tcfg):
        changed = sorted(k for k, v in dataclasses.asdict(tcfg).items() if recorded.get(k) != v)
        raise KwspiError(f"{path}: resume needs the same options; these differ: {', '.join(changed)}")
    if meta is not None:
        if state.get("augment") != meta["augment"]:
            raise KwspiError(f"{path}: was trained with other augmentation; resume needs the same --augment")
        if state.get("unknown_fraction", gsc.TaskSpec.unknown_fraction) != meta["unknown_fraction"]:
            raise KwspiError(f"{path}: was trained with another --unknown-fraction")


def restore(checkpoint: Path, arch_spec: str | None = None):
    """Network, front end, labels and checkpoint state, with QAT weights snapped to their grid."""
    state = load_checkpoint(checkpoint)
    arch = Arch.from_dict(state["arch"])
    if arch_spec is not None and load_arch(arch_spec) != arch:
        raise KwspiError(f"{checkpoint}: was trained as {arch.name}, not the architecture given with --arch")
    features = FeatureConfig.from_json(state["features"])
    labels = tuple(state["labels"])
    model = build_model(arch, features.n_mfcc, features.n_frames, len(labels))
    load_weights(model, state, checkpoint)
    set_weight_quant(model, TrainConfig(**state["train_config"]).weight_quant)
    snap_weights_(model)
    return model.eval(), features, labels, state


def evaluate_checkpoint(checkpoint: Path, data: Path, split: str, seed: int = 0) -> dict:
    """``kwspi eval`` for a training checkpoint (float forward pass of the QAT weights)."""
    model, features, labels, _ = restore(checkpoint)
    X, y = epoch_tensors(load_split(data, split, features, task_for(labels), None, None, seed))
    report = classification_report(y.numpy(), predict(model, X), labels)
    report.update(model=str(checkpoint), data=str(data), split=split)
    return report


# --- kwspi search ----------------------------------------------------------------------------


def search_run(cfg: SearchRun, progress: Progress = silent) -> list[dict]:
    """Search an architecture into ``cfg.out`` (see :func:`kwspi.train.search.search`);
    return one record per epoch."""
    data, scfg = cfg.data, cfg.search
    features = data.features
    checkpoint = cfg.out / SUPERNET_NAME
    if checkpoint.exists() and not cfg.resume:
        raise KwspiError(f"{checkpoint} exists: pass --resume to continue it, or choose another --out")
    resume = cfg.resume
    if cfg.warmup_from is not None and not checkpoint.exists():
        state = load_search_checkpoint(cfg.warmup_from)
        if state["features"] != features.to_json() or state["data"] != str(data.data.resolve()):
            raise KwspiError(f"{cfg.warmup_from}: was warmed up on other data or another front end than --data "
                             "and --n-mfcc")
        cfg.out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(checkpoint, fork_warmup(state, scfg, cfg.warmup_from))
        resume = True
    if resume and checkpoint.exists():
        _check_same_search(load_search_checkpoint(checkpoint), features, scfg, checkpoint)
    train_set = training_split(data, scfg.seed, progress)
    val_set = load_split(data.data, "validation", features, data.task, None, None, scfg.seed, data.cache_dir,
                         progress)

    torch.manual_seed(scfg.seed)
    net = SuperNet(features.n_mfcc, features.n_frames, len(data.task.labels), scfg.width_mult)
    set_input_stats(net, epoch_tensors(train_set)[0])
    meta = _meta(data, cfg)
    return search(net, lambda e: epoch_tensors(train_set, e, progress), epoch_tensors(val_set), scfg, cfg.out, meta,
                  resume=resume, progress=progress)


def _check_same_search(state: dict, features: FeatureConfig, scfg, path: Path) -> None:
    if state["features"] != features.to_json():
        raise KwspiError(f"{path}: was searched with another front end; use another --out")
    if state["search_config"] != dataclasses.asdict(scfg):
        changed = sorted(k for k, v in dataclasses.asdict(scfg).items() if state["search_config"].get(k) != v)
        raise KwspiError(f"{path}: resume needs the same options; these differ: {', '.join(changed)}")


# --- kwspi export ----------------------------------------------------------------------------

#: An unknown fraction no split reaches: every clip of a word that is no keyword.
EVERY_OTHER_WORD = 1e6


def read_figures(path: Path) -> dict:
    """``kwspi export --figures``: a JSON object of named figures, each an object."""
    try:
        figures = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise KwspiError(f"{path}: not a JSON file of figures ({e})") from None
    if not isinstance(figures, dict) or not all(isinstance(v, dict) for v in figures.values()):
        raise KwspiError(f"{path}: figures must be a JSON object of named objects, e.g. "
                         '{"held-out engines": {"mean": 0.7}}')
    return figures


def bank_pool(X, y, data: Path, features: FeatureConfig, task, labels, seed: int, progress: Progress = silent):
    """What the bank is drawn from: the training windows the model saw, with their other
    speech replaced by every other-word clip of the training split (clean), since training
    drew only a tenth as many as it has keywords and the bank wants speech most."""
    if gsc.UNKNOWN not in labels:
        return X, y
    speech = labels.index(gsc.UNKNOWN)
    every = load_split(data, "training", features, dataclasses.replace(task, unknown_fraction=EVERY_OTHER_WORD), None,
                       None, seed, progress=progress)
    Xe, ye = epoch_tensors(every)
    keep = y != speech
    return torch.cat([X[keep], Xe[ye == speech]]), torch.cat([y[keep], ye[ye == speech]])


def export_run(cfg: ExportRun, progress: Progress = silent) -> tuple[dict, dict]:
    """Export ``cfg.checkpoint`` to an int8 ONNX model calibrated on the training split the
    model saw, measure it and store the figures in its metadata; return ``(sizes, metrics)``."""
    figures = read_figures(cfg.figures) if cfg.figures else {}  # a bad file stops before anything is written
    model, features, labels, state = restore(cfg.checkpoint, cfg.arch)
    data = cfg.data or Path(state["data"])
    # Calibrate on the training split the model saw: its unknown share, its cached features.
    task = dataclasses.replace(task_for(labels),
                               unknown_fraction=state.get("unknown_fraction", gsc.TaskSpec.unknown_fraction))
    aug = AugmentConfig.from_json(state["augment"]) if state.get("augment") else None
    seed = state["train_config"]["seed"]
    train_set = load_split(data, "training", features, task, aug, state.get("views") or None, seed, progress=progress)
    X, y = epoch_tensors(train_set)
    pick = np.random.default_rng(seed).permutation(len(X))[:cfg.calibration_size]
    c = count(model, (1, 1, features.n_mfcc, features.n_frames))
    info = ModelInfo(labels=labels, features=features, arch=state["arch"], macs=c.macs, params=c.params,
                     weight_bits=8, weight_bytes=c.weight_bytes(8),
                     dataset=cfg.dataset_name or f"{data.name} ({len(X)} training examples)",
                     thresholds={"default": cfg.threshold})
    sizes = export_model(model, info, X[pick].numpy(), cfg.out, cfg.float_out)

    metrics = {"qat_bits": state["train_config"]["weight_bits"] or 8}
    for name, folder, split in [("validation", data, "validation"), ("testing", data, "testing")] + [
            (f"{Path(d).name}/all", d, gsc.ALL) for d in cfg.eval_data]:
        try:
            report = evaluate_onnx(cfg.out, folder, split, seed)
        except DatasetError as e:
            log.warning("no %s figures: %s", name, e)
            continue
        metrics[name] = {"accuracy": round(report["accuracy"], 5), "n": report["n"]}
    metrics.update(figures)
    Xb, yb = bank_pool(X, y, data, features, task, labels, seed, progress) if cfg.bank_speech_share else (X, y)
    session, written = open_session(cfg.out)
    carried = bank(session, Xb.numpy(), yb.numpy(), labels, cfg.bank_size, cfg.bank_speech_share, seed)
    write_metadata(cfg.out, dataclasses.replace(written, metrics=metrics, bank=carried), cfg.out)
    return sizes, metrics
