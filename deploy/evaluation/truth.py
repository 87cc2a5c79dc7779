"""Stream truth files: what was said in a long recording, and when.

DESIGN.md's stream truth CSV: header ``label,start_s,end_s``, one row per spoken word,
keywords and others, times in seconds from the start of the stream. Two optional columns,
``engine,voice``, say who spoke each word (``kwspi synth-stream`` writes them), so results
can be broken down by voice; files without them read as before. ``kwspi synth-stream``
writes them; ``kwspi eval-stream`` and ``kwspi demo`` read them.

Torch-free and model-free, so streaming evaluation runs where only the runtime is installed.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from kwspi.atomic import write_text
from kwspi.errors import KwspiError

TRUTH_HEADER = ("label", "start_s", "end_s")
#: The optional columns after :data:`TRUTH_HEADER`: who spoke the word.
SPEAKER_COLUMNS = ("engine", "voice")


class TruthError(KwspiError):
    """A truth file that is missing or not a stream truth CSV."""


@dataclass(frozen=True)
class TruthRow:
    """One spoken word: its text, where it sounds in the stream, in seconds, and who said it
    (``""`` where the file does not say)."""

    label: str
    start_s: float
    end_s: float
    engine: str = ""
    voice: str = ""


def write_truth(path, rows: Iterable[TruthRow]) -> None:
    """Write the truth CSV (times in seconds, 3 decimals), atomically; with the engine and
    voice columns when a row names its speaker."""
    rows = list(rows)
    who = any(r.engine or r.voice for r in rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TRUTH_HEADER + (SPEAKER_COLUMNS if who else ()))
    writer.writerows((r.label, f"{r.start_s:.3f}", f"{r.end_s:.3f}") + ((r.engine, r.voice) if who else ())
                     for r in rows)
    write_text(path, buf.getvalue())


def read_truth(path) -> list[TruthRow]:
    """Rows of a truth CSV; :class:`TruthError` naming the file (and line) for a bad one."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = tuple(h.strip() for h in next(reader, None) or ())
            if header not in (TRUTH_HEADER, TRUTH_HEADER + SPEAKER_COLUMNS):
                raise TruthError(f"{path}: not a stream truth file (header must be {','.join(TRUTH_HEADER)}, "
                                 f"optionally followed by {','.join(SPEAKER_COLUMNS)})")
            return [_truth_row(path, reader.line_num, row, len(header)) for row in reader if row]
    except UnicodeDecodeError:
        raise TruthError(f"{path}: not a stream truth file (not text)") from None
    except OSError as e:
        raise TruthError(f"{path}: cannot read ({e.strerror})") from None


def _truth_row(path: Path, line: int, row: list[str], width: int) -> TruthRow:
    try:
        if len(row) != width:
            raise ValueError
        label, start, end, *who = row
        out = TruthRow(label.strip(), float(start), float(end), *(w.strip() for w in who))
    except ValueError:
        columns = ",".join((TRUTH_HEADER + SPEAKER_COLUMNS)[:width])
        raise TruthError(f"{path}, line {line}: expected {columns}, got {','.join(row)!r}") from None
    if not (math.isfinite(out.start_s) and math.isfinite(out.end_s)) or out.start_s < 0:
        raise TruthError(f"{path}, line {line}: times must be finite seconds >= 0")
    if not out.start_s <= out.end_s:
        raise TruthError(f"{path}, line {line}: the word ends before it starts")
    if not out.label:
        raise TruthError(f"{path}, line {line}: empty label")
    return out
