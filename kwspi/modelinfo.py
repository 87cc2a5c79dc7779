"""What a kwspi model file says about itself.

A model is one ONNX file whose ``metadata_props`` carry, under keys prefixed ``kwspi.``,
everything the runtime needs: labels, the front end, thresholds and the patience they were
chosen with, and the figures a user wants to see (MACs, parameters, weight bytes, data set,
accuracy). Values are strings; structured ones are JSON. Reading needs only onnxruntime, so it works on a Raspberry Pi.

Models exported since enrollment (issue 13) also have a second output, the embedding the
final layer sees (``embedding``: its name and size), that layer in float (``classifier``),
and a bank of labelled embeddings of the training data (``bank``); arrays travel as base64
in JSON (:func:`encode_array`). A model adapted by ``kwspi enroll`` adds its own layer
(``head``), which replaces output 0 when present, and what enrollment measured (``enrollment``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kwspi import __version__
from kwspi.errors import FeatureConfigError, KwspiError
from kwspi.features import FeatureConfig

FORMAT_VERSION = 1
PREFIX = "kwspi."
#: The graph maps INPUT_NAME float32 [batch, 1, n_mfcc, n_frames] to OUTPUT_NAME [batch, n_classes].
INPUT_NAME = "features"
OUTPUT_NAME = "logits"
#: The optional second output, ``[batch, embedding size]``: what the final linear layer sees.
EMBEDDING_NAME = "embedding"
REQUIRED_KEYS = ("format_version", "labels", "features", "features_hash")


class ModelFormatError(KwspiError):
    """A file that is not a usable kwspi model."""

    def __init__(self, path, reason):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class ModelInfo:
    """The ``kwspi.*`` metadata of a model, decoded."""

    labels: tuple[str, ...]
    features: FeatureConfig
    arch: dict = field(default_factory=dict)
    macs: int = 0
    params: int = 0
    weight_bits: int = 32
    weight_bytes: int = 0
    dataset: str = ""
    metrics: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    embedding: dict = field(default_factory=dict)
    classifier: dict = field(default_factory=dict)
    bank: dict = field(default_factory=dict)
    head: dict = field(default_factory=dict)
    enrollment: dict = field(default_factory=dict)
    # Windows in a row over threshold before a keyword fires: thresholds calibrated at one
    # patience let through more false alarms at a lower one, so the two travel together.
    patience: int = 1
    created_by: str = f"kwspi {__version__}"
    format_version: int = FORMAT_VERSION

    def threshold(self, label: str) -> float:
        return float(self.thresholds.get(label, self.thresholds.get("default", 0.5)))

    def to_metadata(self) -> dict[str, str]:
        """The ``kwspi.*`` key/value strings to store in the ONNX file."""
        raw = {
            "format_version": str(self.format_version),
            "labels": json.dumps(list(self.labels)),
            "features": self.features.to_json(),
            "features_hash": self.features.hash(),
            "arch": json.dumps(self.arch, sort_keys=True),
            "macs": str(self.macs),
            "params": str(self.params),
            "weight_bits": str(self.weight_bits),
            "weight_bytes": str(self.weight_bytes),
            "dataset": self.dataset,
            "metrics": json.dumps(self.metrics, sort_keys=True),
            "thresholds": json.dumps(self.thresholds, sort_keys=True),
            "patience": str(self.patience),
            "created_by": self.created_by,
        }
        raw.update({k: json.dumps(getattr(self, k), sort_keys=True) for k in EXTRA_KEYS if getattr(self, k)})
        return {PREFIX + k: v for k, v in raw.items()}

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path="model") -> "ModelInfo":
        """Decode ``kwspi.*`` metadata, refusing what this kwspi cannot run."""
        raw = {k[len(PREFIX):]: v for k, v in meta.items() if k.startswith(PREFIX)}
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            hint = "" if raw else " (not a kwspi model: export it with `kwspi export`)"
            raise ModelFormatError(path, f"lacks kwspi metadata {', '.join(PREFIX + k for k in missing)}{hint}")
        try:
            version = int(raw["format_version"])
            if version > FORMAT_VERSION:
                raise ModelFormatError(path, f"model format {version} is newer than this kwspi reads; upgrade kwspi")
            features = FeatureConfig.from_json(raw["features"])
            if features.hash() != raw["features_hash"]:
                raise ModelFormatError(path, "front-end hash does not match its description (file edited?)")
            labels = json.loads(raw["labels"])
            if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
                raise ModelFormatError(path, "kwspi.labels must be a JSON list of label strings")
            arch, metrics, thresholds = (_json_object(raw, key, path) for key in ("arch", "metrics", "thresholds"))
            extras = {key: _json_object(raw, key, path) for key in EXTRA_KEYS}
            if not all(isinstance(v, (int, float)) for v in thresholds.values()):
                raise ModelFormatError(path, "kwspi.thresholds must map labels to numbers")
            if not all(0 < v <= 1 for v in thresholds.values()):  # NaN fails this too
                raise ModelFormatError(path, f"kwspi.thresholds must lie in (0, 1], not {thresholds}")
            patience = raw.get("patience", "1")
            if not patience.isdigit() or int(patience) < 1:
                raise ModelFormatError(path, f"kwspi.patience must be a whole number >= 1, not {patience!r}")
            patience = int(patience)
            repeated = next((x for i, x in enumerate(labels) if x in labels[:i]), None)
            if repeated is not None:
                raise ModelFormatError(path, f"kwspi.labels repeats {repeated!r}")
            return cls(
                labels=tuple(labels),
                features=features,
                arch=arch,
                macs=int(raw.get("macs", 0)),
                params=int(raw.get("params", 0)),
                weight_bits=int(raw.get("weight_bits", 32)),
                weight_bytes=int(raw.get("weight_bytes", 0)),
                dataset=raw.get("dataset", ""),
                metrics=metrics,
                thresholds=thresholds,
                **extras,
                patience=patience,
                created_by=raw.get("created_by", ""),
                format_version=version,
            )
        except FeatureConfigError as e:
            raise ModelFormatError(path, str(e)) from None
        except (ValueError, TypeError) as e:
            raise ModelFormatError(path, f"malformed kwspi metadata ({e})") from None

    def as_dict(self) -> dict:
        """A JSON-ready view for ``kwspi info --json``."""
        return {
            "labels": list(self.labels),
            "features": json.loads(self.features.to_json()),
            "arch": self.arch,
            "macs": self.macs,
            "params": self.params,
            "weight_bits": self.weight_bits,
            "weight_bytes": self.weight_bytes,
            "dataset": self.dataset,
            "metrics": self.metrics,
            "thresholds": self.thresholds,
            "patience": self.patience,
            "created_by": self.created_by,
            "format_version": self.format_version,
            "embedding": self.embedding,
            "enrollment": self.enrollment,
        }


#: Optional JSON objects, written only when not empty, so older models read as before.
EXTRA_KEYS = ("embedding", "classifier", "bank", "head", "enrollment")


def encode_array(a, dtype) -> dict:
    """An array as a JSON-ready ``{"dtype", "shape", "data"}`` (base64 of its little-endian bytes)."""
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_array(value: dict, path="model"):
    """The array :func:`encode_array` stored (a copy, in its stored dtype); a one-line error if it is malformed."""
    try:
        a = np.frombuffer(base64.b64decode(value["data"], validate=True), dtype=np.dtype(value["dtype"]))
        return a.reshape([int(n) for n in value["shape"]]).copy()
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(path, f"malformed array in kwspi metadata ({e})") from None


def _json_object(raw: dict, key: str, path) -> dict:
    value = json.loads(raw.get(key, "{}"))
    if not isinstance(value, dict):
        raise ModelFormatError(path, f"kwspi.{key} must be a JSON object")
    return value


def enrolled_head(info: ModelInfo, path="model") -> tuple[np.ndarray, np.ndarray] | None:
    """The final layer ``(W [n_labels, size], b [n_labels])`` that ``kwspi enroll`` wrote into
    the metadata, checked against the labels; ``None`` for a model as exported. With it, the
    logits are ``embedding @ W.T + b``, not the graph's own output."""
    if not info.head:
        return None
    weight, bias = (decode_array(info.head.get(k, {}), path).astype(np.float32) for k in ("weight", "bias"))
    n = len(info.labels)
    if weight.ndim != 2 or weight.shape[0] != n or bias.shape != (n,):
        raise ModelFormatError(path, f"enrolled head of shape {list(weight.shape)} + {list(bias.shape)} "
                                     f"does not match its {n} labels")
    return weight, bias


def run_batched(session, output: str, X: np.ndarray, batch: int = 256) -> np.ndarray:
    """The graph's ``output`` for feature windows ``X [N, 1, n_mfcc, n_frames]``, ``batch``
    windows per call (bounded memory for a whole data set)."""
    return np.concatenate([session.run([output], {INPUT_NAME: X[i:i + batch]})[0] for i in range(0, len(X), batch)])


def batch_logits(session, info: ModelInfo, X: np.ndarray, path="model") -> np.ndarray:
    """Logits ``[len(X), n_labels]`` of feature windows ``X``, through the enrolled head when
    the model has one (as :class:`kwspi.deploy.model.LoadedModel` does)."""
    head = enrolled_head(info, path)
    out = run_batched(session, OUTPUT_NAME if head is None else info.embedding.get("output"), X)
    return out if head is None else out @ head[0].T + head[1]


def open_session(path, threads: int = 1):
    """An onnxruntime session and the model's :class:`ModelInfo`, or a one-line error."""
    import onnxruntime as ort

    path = Path(path)
    if not path.exists():
        raise ModelFormatError(path, "no such file")
    if path.is_dir():
        raise ModelFormatError(path, "is a directory, not an ONNX model")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own classes for every malformed file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFormatError(path, f"is not a valid ONNX model ({first[:200]})") from None
    info = ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map, path)
    return session, info


def read_info(path) -> ModelInfo:
    """The metadata of a model file (loads it once to validate it)."""
    return open_session(path)[1]


def bundled_model_path() -> Path:
    """The default model shipped inside the package."""
    return Path(__file__).parent / "models" / "default.onnx"


def resolve_model(path=None) -> Path:
    """``path``, or the bundled model when it is ``None``; a one-line error if it is missing."""
    if path is not None:
        return Path(path)
    bundled = bundled_model_path()
    if not bundled.is_file():
        raise ModelFormatError(bundled, "the bundled model is missing from this install; pass --model PATH")
    return bundled
