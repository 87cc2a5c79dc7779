"""The architecture as data: the paper's search space and its JSON form.

An architecture is a width multiplier and twelve cell choices. Each choice is a string:

- ``"k{K}e{E}"`` -- an MBConv cell with a K x K depthwise kernel (K in 3, 5, 7) and
  expansion ratio E (1..6), e.g. ``"k7e2"``;
- ``"zero"`` -- the cell is skipped (only cells 2..12, which have an identity shortcut).

Cell 1 always has stride 2 in both axes and no shortcut; it is the only downsampling after
the stem. ``arch.json`` holds ``{"kind": "mbconv", "width_mult": 1.0, "cells": [...]}``;
the baselines are ``{"kind": "dscnn", "size": "s" | "m" | "l"}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from kwspi.errors import KwspiError

KERNELS = (3, 5, 7)
EXPANSIONS = (1, 2, 3, 4, 5, 6)
N_CELLS = 12
ZERO = "zero"
#: Candidate ops of a cell, in the order of the supernet's architecture parameters.
MBCONV_OPS = tuple(f"k{k}e{e}" for k in KERNELS for e in EXPANSIONS)
DSCNN_SIZES = ("s", "m", "l")

_OP = re.compile(r"^k(\d)e(\d)$")


class ArchError(KwspiError):
    """An architecture description that is not in the search space."""


@dataclass(frozen=True)
class MBConvOp:
    kernel: int
    expansion: int


def parse_op(op: str) -> MBConvOp | None:
    """``"k5e3"`` -> ``MBConvOp(5, 3)``; ``"zero"`` -> ``None``."""
    if op == ZERO:
        return None
    m = _OP.match(op)
    if not m or int(m[1]) not in KERNELS or int(m[2]) not in EXPANSIONS:
        raise ArchError(f"unknown cell op {op!r}: expected 'zero' or k{{3,5,7}}e{{1..6}}, e.g. 'k5e3'")
    return MBConvOp(int(m[1]), int(m[2]))


def candidate_ops(cell_index: int) -> tuple[str, ...]:
    """The ops cell ``cell_index`` (0-based) may take: no ``zero`` for the first cell."""
    return MBCONV_OPS if cell_index == 0 else MBCONV_OPS + (ZERO,)


def round_channels(channels: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never down by more than 10%.

    The same rule as MobileNet's ``make_divisible``: 72 * 1.25 = 90 -> 88, 144 * 0.75 = 108 -> 112.
    """
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class Arch:
    """An architecture: ``kind`` "mbconv" (the paper's space) or "dscnn" (Hello Edge)."""

    kind: str = "mbconv"
    cells: tuple[str, ...] = ()
    width_mult: float = 1.0
    size: str = ""

    def __post_init__(self):
        if self.kind == "mbconv":
            if len(self.cells) != N_CELLS:
                raise ArchError(f"an mbconv architecture has {N_CELLS} cells, got {len(self.cells)}")
            for i, op in enumerate(self.cells):
                if op not in candidate_ops(i):
                    parse_op(op)  # raises with the grammar for a malformed op
                    raise ArchError(f"cell 1 cannot be {op!r}: it is the downsampling cell")
            if not 0.1 <= self.width_mult <= 4:
                raise ArchError(f"width_mult must be in [0.1, 4], got {self.width_mult}")
        elif self.kind == "dscnn":
            if self.size not in DSCNN_SIZES:
                raise ArchError(f"DS-CNN size must be one of {DSCNN_SIZES}, got {self.size!r}")
        else:
            raise ArchError(f"unknown architecture kind {self.kind!r}: expected 'mbconv' or 'dscnn'")

    @property
    def name(self) -> str:
        if self.kind == "dscnn":
            return f"dscnn-{self.size}"
        return "mbconv-" + "-".join(self.cells)

    def to_dict(self) -> dict:
        if self.kind == "dscnn":
            return {"kind": "dscnn", "size": self.size}
        return {"kind": "mbconv", "width_mult": self.width_mult, "cells": list(self.cells)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Arch":
        if not isinstance(d, dict):
            raise ArchError("an architecture must be a JSON object")
        kind = d.get("kind", "mbconv")
        allowed = {"kind", "size"} if kind == "dscnn" else {"kind", "width_mult", "cells"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ArchError(f"unknown architecture keys {unknown} for kind {kind!r}")
        if kind == "dscnn":
            return cls(kind="dscnn", size=d.get("size", ""))
        return cls(kind="mbconv", cells=tuple(d.get("cells", ())), width_mult=float(d.get("width_mult", 1.0)))


def dscnn(size: str) -> Arch:
    return Arch(kind="dscnn", size=size)


def load_arch(spec: str) -> Arch:
    """An architecture from a JSON file path, a JSON string, or a baseline name ``dscnn-s``."""
    if spec.lower() in {f"dscnn-{s}" for s in DSCNN_SIZES}:
        return dscnn(spec[-1].lower())
    if spec.lstrip().startswith("{"):
        text = spec
    else:
        path = Path(spec)
        if not path.is_file():
            raise ArchError(f"{spec}: no such architecture file (or a name like dscnn-s)")
        text = path.read_text()
    try:
        return Arch.from_dict(json.loads(text))
    except json.JSONDecodeError as e:
        raise ArchError(f"{spec}: not valid JSON ({e})") from None


#: The paper's headline architecture (20 MFCC, beta = 8): 27.06 M MACs on its 20 x 51 input.
PAPER_20MFCC_BETA8 = Arch(
    cells=("k7e2", "k7e2", "k7e2", "k7e1", "k5e1", "k7e1", "k5e1", "k7e1", "k5e1", "k5e1", "k5e1", "k5e1")
)
