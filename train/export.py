"""Export a trained network to one self-describing int8 ONNX file.

1. Snap the QAT weights onto their grid and export a float ONNX graph (TorchScript
   exporter, opset 17, so onnxruntime releases back to 1.13 on a Pi can load it; BN is
   folded into the convs by the exporter).
2. Static int8 quantization with onnxruntime: QDQ format, per-channel symmetric int8
   weights (the grid QAT trained on, so weights pass unchanged), uint8 activations
   calibrated (min/max) on real feature windows, silence and noise included.
3. Compact the graph (short names, no shape annotations), write the ``kwspi.*`` metadata (:mod:`kwspi.modelinfo`) and move the file into place
   atomically.

The graph maps ``features [batch, 1, n_mfcc, n_frames]`` (float32) to ``logits [batch, n_classes]``
(output 0) and ``embedding [batch, size]`` (output 1), the pooled features the final linear layer
sees; the metadata carries that layer in float (``classifier``), which ``kwspi enroll`` re-fits
on a user's voice (:mod:`kwspi.deploy.enroll`), and :func:`bank_rows` picks the training examples
whose labelled embeddings (the ``bank``) keep the re-fit from forgetting everyone else.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from kwspi.atomic import atomic_write
from kwspi.gsc import UNKNOWN
from kwspi.modelinfo import EMBEDDING_NAME, INPUT_NAME, OUTPUT_NAME, ModelInfo, encode_array, run_batched

log = logging.getLogger(__name__)

OPSET = 17


class _WithEmbedding(torch.nn.Module):
    """``model`` with its embedding as a second output."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        e = self.model.embed(x)
        return self.model.classifier(e), e


def export_float(model: torch.nn.Module, input_shape: tuple[int, ...], path: Path) -> None:
    """Write ``model`` as a float32 ONNX graph (logits, embedding) with a dynamic batch axis."""
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            _WithEmbedding(model),
            (torch.zeros(input_shape),),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME, EMBEDDING_NAME],
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, OUTPUT_NAME, EMBEDDING_NAME)},
        )


def with_classifier(model: torch.nn.Module, info: ModelInfo) -> ModelInfo:
    """``info`` naming the embedding output and carrying the final layer in float: the
    weights the int8 graph holds (QAT snapped them to its grid), and the float bias."""
    from dataclasses import replace

    layer = model.classifier
    weight = layer.weight.detach().cpu().numpy()
    return replace(info, embedding={"output": EMBEDDING_NAME, "size": int(weight.shape[1])},
                   classifier={"weight": encode_array(weight, "<f4"),
                               "bias": encode_array(layer.bias.detach().cpu().numpy(), "<f4")})


def bank_rows(labels: np.ndarray, size: int, seed: int = 0, speech: int | None = None,
              speech_share: float = 0.0) -> np.ndarray:
    """Up to ``size`` row indices of ``labels``: the examples whose embeddings the model
    carries as its bank. ``speech_share`` of them (as far as there are) have the label
    ``speech`` (``_unknown_``: other words), the rest are as even over the other labels as the
    data allows; without ``speech``, all are even over all labels."""
    rng = np.random.default_rng(seed)
    per_label = {int(k): rng.permutation(np.flatnonzero(labels == k)) for k in np.unique(labels)}
    picked: list[int] = []
    if speech in per_label:
        picked += per_label.pop(speech)[:int(round(size * speech_share))].tolist()
    for rank in range(max((len(p) for p in per_label.values()), default=0)):  # round-robin over the labels
        if len(picked) >= size:
            break
        picked += [int(p[rank]) for p in per_label.values() if rank < len(p)]
    return np.sort(np.array(picked[:size], dtype=np.int64))


def bank(session, X: np.ndarray, y: np.ndarray, labels, size: int, speech_share: float, seed: int = 0) -> dict:
    """The ``bank`` metadata of a model: :func:`bank_rows` of ``y`` (``speech_share`` of them
    ``_unknown_``), their embeddings as the int8 graph ``session`` computes them, and labels;
    empty for a size of 0."""
    rows = bank_rows(y, size, seed, labels.index(UNKNOWN) if UNKNOWN in labels else None, speech_share)
    if not len(rows):
        return {}
    return {"embeddings": encode_array(run_batched(session, EMBEDDING_NAME, X[rows]), "<f2"),
            "labels": encode_array(y[rows], "<u1")}


class _Windows:
    """onnxruntime's CalibrationDataReader protocol over an array of feature windows."""

    def __init__(self, windows: np.ndarray):
        self._it = iter(windows.astype(np.float32)[:, None] if windows.ndim == 3 else windows.astype(np.float32))

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {INPUT_NAME: x[None]}


def quantize_int8(float_path: Path, out_path: Path, calibration: np.ndarray) -> None:
    """Static QDQ int8 quantization of ``float_path``, calibrated on ``calibration``.

    ``calibration``: feature windows ``[n, 1, n_mfcc, n_frames]`` or ``[n, n_mfcc, n_frames]``.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prep = Path(tmp) / "prep.onnx"
        quant_pre_process(str(float_path), str(prep))
        quantize_static(
            str(prep),
            str(out_path),
            _Windows(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,  # measured faster than int8 on x86 (feasibility.md 4)
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


def compact(model) -> None:
    """Shorten tensor names, drop optional shape annotations and all-zero constant zero
    points of DequantizeLinear (an absent zero point means 0), in place.

    In a model of this size the exporter's and quantizer's long names, ``value_info`` and
    per-channel zero points weigh as much as the int8 weights themselves; none of them
    changes what the graph computes.
    """
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    for node in g.node:
        if node.op_type == "DequantizeLinear" and len(node.input) == 3 and node.input[2] in inits:
            if not numpy_helper.to_array(inits[node.input[2]]).any():
                del node.input[2]
    used = {name for node in g.node for name in node.input} | {v.name for v in g.output}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for init in g.initializer:
        init.name = short(init.name)
    for node in g.node:
        node.name = ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    del g.value_info[:]


def write_metadata(path: Path, info: ModelInfo, out_path: Path) -> None:
    """Copy ``path`` to ``out_path`` atomically, compacted, with ``info`` in its metadata."""
    import onnx

    model = onnx.load(str(path))
    compact(model)
    keep = [p for p in model.metadata_props if not p.key.startswith("kwspi.")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in info.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "kwspi"
    with atomic_write(out_path) as f:
        f.write(model.SerializeToString())


def export_model(
    model: torch.nn.Module,
    info: ModelInfo,
    calibration: np.ndarray,
    out_path,
    float_out=None,
    int8: bool = True,
) -> dict:
    """Export ``model`` to ``out_path`` (int8 unless ``int8=False``), with its embedding
    output and float classifier in the metadata; returns file sizes."""
    info = with_classifier(model, info)
    cfg = info.features
    shape = (1, 1, cfg.n_mfcc, cfg.n_frames)
    with tempfile.TemporaryDirectory() as tmp:
        raw_float = Path(tmp) / "raw-float.onnx"
        export_float(model, shape, raw_float)
        float_path = Path(float_out) if float_out else Path(tmp) / "float.onnx"
        write_metadata(raw_float, _with_bits(info, 32), float_path)
        sizes = {"float_bytes": float_path.stat().st_size}
        if int8:
            quantized = Path(tmp) / "int8.onnx"
            quantize_int8(raw_float, quantized, calibration)
            write_metadata(quantized, info, Path(out_path))
        else:
            write_metadata(raw_float, _with_bits(info, 32), Path(out_path))
    sizes["bytes"] = Path(out_path).stat().st_size
    log.info("wrote %s (%d bytes; float graph %d bytes)", out_path, sizes["bytes"], sizes["float_bytes"])
    return sizes


def _with_bits(info: ModelInfo, bits: int) -> ModelInfo:
    from dataclasses import replace

    return replace(info, weight_bits=bits, weight_bytes=info.weight_bytes * bits // max(info.weight_bits, 1))
