"""Classification figures, the same for a torch checkpoint and an ONNX model."""

from __future__ import annotations

import numpy as np


def classification_report(y_true, y_pred, labels) -> dict:
    """Accuracy, per-class accuracy (recall) and the confusion matrix.

    ``confusion[i][j]`` counts examples of class ``i`` predicted as ``j``. A class with no
    examples has per-class accuracy ``None``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    support = confusion.sum(axis=1)
    per_class = {
        label: (float(confusion[i, i] / support[i]) if support[i] else None) for i, label in enumerate(labels)
    }
    n = int(len(y_true))
    return {
        "accuracy": float((y_true == y_pred).mean()) if n else 0.0,
        "n": n,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "labels": list(labels),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
