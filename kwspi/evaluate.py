"""Accuracy of an ONNX model on a GSC-layout folder, without torch (it runs on a Pi).

Clips are loaded with :func:`kwspi.clips.load_clip` and turned into features with the
model's own front end, the same path training took, and the split is built with the
model's labels and the paper's balance (:func:`kwspi.gsc.build_split`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kwspi import gsc
from kwspi.clips import load_clip
from kwspi.errors import DatasetError, KwspiError
from kwspi.features import FeatureConfig, clip_features
from kwspi.metrics import classification_report
from kwspi.modelinfo import batch_logits, open_session
from kwspi.progress import Progress, silent

log = logging.getLogger(__name__)


def task_for(labels: tuple[str, ...]) -> gsc.TaskSpec:
    """The task a model was trained for, from its labels (keywords, silence, unknown)."""
    task = gsc.TaskSpec(keywords=tuple(lab for lab in labels if lab not in (gsc.SILENCE, gsc.UNKNOWN)))
    if task.labels != tuple(labels):
        raise KwspiError(f"model labels {list(labels)} are not keywords followed by _silence_, _unknown_")
    return task


def split_features(root, split: str, cfg: FeatureConfig, task: gsc.TaskSpec, seed: int = 0,
                   progress: Progress = silent):
    """Features ``[n, 1, n_mfcc, n_frames]`` float32 and labels ``[n]`` of one split.

    Unreadable clips are skipped and counted in the log.
    """
    return _split_features(root, split, cfg, task, seed, progress)[:2]


def _split_features(root, split, cfg, task, seed, progress):
    """:func:`split_features`, the number of clips skipped, and each example's speaker
    (``None`` for silence)."""
    examples = gsc.build_split(root, split, task, seed)
    if not examples:
        raise DatasetError(f"{root}: the {split} split is empty")
    X, y, speakers, skipped = [], [], [], 0
    with progress(f"features {split}", len(examples)) as advance:
        for ex in examples:
            advance(1)
            if ex.path is None:
                wave = np.zeros(cfg.clip_samples, np.int16)
            else:
                try:
                    wave = load_clip(ex.path, cfg.sample_rate, cfg.clip_samples)[0]
                except (KwspiError, OSError) as e:  # one bad file must not end a long evaluation
                    skipped += 1
                    log.warning("skipping %s", e)
                    continue
            X.append(clip_features(wave, cfg))
            y.append(ex.label)
            speakers.append(None if ex.path is None else gsc.speaker_of(ex.path.name))
    if skipped:
        log.warning("%s: skipped %d unreadable clip(s) of %d", root, skipped, len(examples))
    if not X:
        raise DatasetError(f"{root}: none of the {len(examples)} clips of the {split} split could be read")
    return np.stack(X)[:, None], np.asarray(y, dtype=np.int64), skipped, speakers


def breakdown(y: np.ndarray, pred: np.ndarray, speakers, catalogue: dict, column: str) -> dict:
    """Accuracy and count of the spoken examples per value of a catalogue ``column``
    (``engine``, ``voice``): on unheard engines a model is judged engine by engine."""
    groups: dict[str, list[int]] = {}
    for i, spk in enumerate(speakers):
        if spk is not None and spk in catalogue:
            key = catalogue[spk].get(column) or "?"
            if column == "voice" and catalogue[spk].get("engine"):
                key = f"{catalogue[spk]['engine']}:{key}"
            groups.setdefault(key, []).append(i)
    return {k: {"accuracy": round(float(np.mean(y[idx] == pred[idx])), 5), "n": len(idx)}
            for k, idx in sorted(groups.items())}


def evaluate_onnx(model_path, data, split: str = "testing", seed: int = 0, progress: Progress = silent) -> dict:
    """Accuracy, per-class accuracy and confusion of an ONNX model on one split."""
    session, info = open_session(model_path, threads=0)
    task = task_for(info.labels)
    X, y, skipped, speakers = _split_features(data, split, info.features, task, seed, progress)
    pred = batch_logits(session, info, X, model_path).argmax(1)
    report = classification_report(y, pred, info.labels)
    report.update(model=str(model_path), data=str(Path(data)), split=split, skipped=skipped)
    catalogue = gsc.read_catalogue(data)
    if catalogue:
        report.update(per_engine=breakdown(y, pred, speakers, catalogue, "engine"),
                      per_voice=breakdown(y, pred, speakers, catalogue, "voice"))
    return report

