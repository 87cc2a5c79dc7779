"""A synthetic data set's catalogue: its split lists and ``speakers.csv`` (who spoke: engine,
voice, variant, transform, family, speed, pitch and split of every speaker).

Split by GSC's hash rule on the speaker id, so a speaker's clips all fall in one split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from kwspi import gsc
from kwspi.atomic import write_text
from kwspi.train.speech.engines import Speaker


def write_split_lists(out_dir) -> dict[str, int]:
    """Write ``validation_list.txt`` and ``testing_list.txt`` for every clip in ``out_dir``.

    All clips found are listed, not only this run's, so clips left by an earlier run with
    other options never fall into training by default. Returns the clip count per split.
    """
    out = Path(out_dir)
    clips = sorted(f"{p.parent.name}/{p.name}" for p in out.glob("*/*_nohash_*.wav") if not p.parent.name.startswith("_"))
    splits = {s: [c for c in clips if gsc.which_set(c) == s] for s in gsc.SPLITS}
    write_text(out / gsc.VALIDATION_LIST, "".join(f"{c}\n" for c in splits["validation"]))
    write_text(out / gsc.TESTING_LIST, "".join(f"{c}\n" for c in splits["testing"]))
    return {s: len(c) for s, c in splits.items()}


def write_speakers_csv(out_dir, speakers: Iterable[Speaker]) -> Path:
    """Write ``speakers.csv``, merged with the rows of an earlier run, sorted by speaker id.

    Rows written before engines existed get theirs (:func:`kwspi.gsc.read_catalogue`).
    """
    path = Path(out_dir) / gsc.CATALOGUE
    rows = gsc.read_catalogue(out_dir)
    for s in speakers:
        split = gsc.which_set(f"{s.id}_nohash_0.wav")
        rows[s.id] = dict(zip(gsc.SPEAKER_FIELDS, (s.id, s.engine, s.voice, s.variant, s.transform, s.family,
                                               s.speed, s.pitch, split)))
    write_text(path, gsc.csv_text(gsc.SPEAKER_FIELDS, (rows[k] for k in sorted(rows))))
    return path
