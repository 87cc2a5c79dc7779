"""A model file with new ``kwspi.*`` metadata, written without the ``onnx`` package.

Calibration and enrollment run on a Raspberry Pi, where kwspi has onnxruntime but neither
torch nor ``onnx``. Changing a model's metadata needs no graph: an ONNX file is a protobuf
``ModelProto`` whose field 14, ``metadata_props``, is a repeated ``{key = 1, value = 2}``
message. :func:`with_metadata` copies every top-level field byte for byte, drops the
``kwspi.*`` entries and appends the new ones, so the graph and the weights stay exactly
as they were. (A new dependency, ``onnx``, would do the same in three lines for about
15 MB on the Pi; the wire format is stable and small, and the tests check the result with
``onnx`` itself.)
"""

from __future__ import annotations

from pathlib import Path

from kwspi.atomic import atomic_write
from kwspi.modelinfo import PREFIX, ModelFormatError, ModelInfo

_METADATA_PROPS = 14  # ModelProto.metadata_props (onnx.proto)
_LENGTH_DELIMITED, _VARINT, _FIXED64, _FIXED32 = 2, 0, 1, 5


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(data: bytes):
    """``(field number, wire type, payload start, end)`` of each top-level field, in order."""
    i = 0
    while i < len(data):
        start = i
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _, i = _varint(data, i)
        elif wire == _FIXED64:
            i += 8
        elif wire == _FIXED32:
            i += 4
        elif wire == _LENGTH_DELIMITED:
            length, i = _varint(data, i)
            i += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i > len(data):
            raise ValueError("truncated field")
        yield number, wire, start, i


def _string_field(number: int, text: str) -> bytes:
    raw = text.encode("utf-8")
    return _encode_varint(number << 3 | _LENGTH_DELIMITED) + _encode_varint(len(raw)) + raw


def _entry_key(entry: bytes) -> str:
    for number, wire, start, end in _fields(entry):
        if number == 1 and wire == _LENGTH_DELIMITED:
            length, i = _varint(entry, _varint(entry, start)[1])
            return entry[i:i + length].decode("utf-8")
    return ""


def with_metadata(model: bytes, entries: dict[str, str], replace_prefix: str = PREFIX) -> bytes:
    """``model`` (a serialized ONNX ModelProto) with its metadata entries whose key starts
    with ``replace_prefix`` replaced by ``entries``; everything else kept byte for byte."""
    out = bytearray()
    for number, wire, start, end in _fields(model):
        if number == _METADATA_PROPS and wire == _LENGTH_DELIMITED:
            payload_start = _varint(model, _varint(model, start)[1])[1]
            if _entry_key(model[payload_start:end]).startswith(replace_prefix):
                continue
        out += model[start:end]
    for key, value in entries.items():
        entry = _string_field(1, key) + _string_field(2, value)
        out += _encode_varint(_METADATA_PROPS << 3 | _LENGTH_DELIMITED) + _encode_varint(len(entry)) + entry
    return bytes(out)


def write_model(source: Path, info: ModelInfo, out: Path) -> Path:
    """Write ``source``'s network with ``info`` as its metadata to ``out``, atomically."""
    try:
        data = with_metadata(Path(source).read_bytes(), info.to_metadata())
    except ValueError as e:
        raise ModelFormatError(source, f"not an ONNX file ({e})") from None
    with atomic_write(out) as f:
        f.write(data)
    return Path(out)
