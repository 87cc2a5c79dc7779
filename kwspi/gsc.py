"""The Google Speech Commands folder layout, its split rule and the 12-class task.

A GSC-layout folder holds one subfolder per word with ``<speaker>_nohash_<n>.wav`` clips,
a ``_background_noise_`` folder of long noise recordings, and optionally
``validation_list.txt`` and ``testing_list.txt`` (v0.02; one ``word/file.wav`` per line).

Split rule (decided here, used by every command):

- if either list file exists, the lists define validation and testing (a missing list
  means an empty split) and training is every other clip; this covers v0.02, kwspi's
  synthetic sets, and a folder holding only a test set with its ``testing_list.txt``;
- otherwise the TensorFlow ``which_set`` hash of the speaker id decides (v0.01, as the
  paper did), so one speaker's clips always land in one split.

This module is torch-free so that ``kwspi eval`` runs on a Raspberry Pi.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from kwspi import atomic
from kwspi.errors import DatasetError

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
#: The paper's 12 classes, in the index order of its models.
LABELS = KEYWORDS + (SILENCE, UNKNOWN)

#: The 30 words of GSC v0.01.
WORDS_V1 = KEYWORDS + (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
    "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero",
)
#: The 35 words of GSC v0.02.
WORDS_V2 = WORDS_V1 + ("backward", "follow", "forward", "learn", "visual")

BACKGROUND_NOISE_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
#: Who spoke each clip of a synthetic data set (engine, voice, transform...), by speaker id.
CATALOGUE = "speakers.csv"
#: Its columns as ``kwspi synth`` writes them (``kwspi mine`` too, so mined folders join).
SPEAKER_FIELDS = ("speaker", "engine", "voice", "variant", "transform", "family", "speed", "pitch", "split")
SPLITS = ("training", "validation", "testing")
#: Every clip of the folder: for a folder of speakers no model has heard.
ALL = "all"

_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # from TensorFlow's speech_commands/input_data.py
_NOHASH = re.compile(r"_nohash_.*$")


def speaker_of(filename: str) -> str:
    """The part of a clip's file name before ``_nohash_``: its speaker id."""
    return _NOHASH.sub("", Path(filename).name)


def split_percentage(filename: str) -> float:
    """Where a clip's speaker falls in [0, 100] under TensorFlow's hash rule."""
    digest = hashlib.sha1(speaker_of(filename).encode("utf-8")).hexdigest()
    return (int(digest, 16) % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """TensorFlow's ``which_set``: ``"validation"``, ``"testing"`` or ``"training"``."""
    p = split_percentage(filename)
    if p < validation_percentage:
        return "validation"
    if p < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def scan(root) -> dict[str, list[str]]:
    """Word -> sorted clip paths relative to ``root`` (``"yes/abc_nohash_0.wav"``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    words = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name.startswith("_") or d.name.startswith("."):
            continue
        clips = sorted(f"{d.name}/{f.name}" for f in d.glob("*.wav"))
        if clips:
            words[d.name] = clips
    if not words:
        raise DatasetError(f"{root}: no word folders with .wav clips (expected GSC layout: word/clip.wav)")
    return words


def noise_files(root) -> list[Path]:
    """The background-noise recordings of a GSC-layout folder (may be empty)."""
    return sorted((Path(root) / BACKGROUND_NOISE_DIR).glob("*.wav"))


def split_of_clips(root, clips: list[str]) -> dict[str, list[str]]:
    """Assign every clip to a split by the rule in the module docstring."""
    root = Path(root)
    val_file, test_file = root / VALIDATION_LIST, root / TESTING_LIST
    out = {s: [] for s in SPLITS}
    if val_file.exists() or test_file.exists():
        val, test = _read_list(val_file), _read_list(test_file)
        for c in clips:
            out["validation" if c in val else "testing" if c in test else "training"].append(c)
    else:
        for c in clips:
            out[which_set(c)].append(c)
    return out


@dataclass(frozen=True)
class Example:
    """One item of a split: a clip (or ``None`` for a silence example) and its class."""

    path: Path | None
    label: int


@dataclass(frozen=True)
class TaskSpec:
    """The classification task: keywords plus the silence and unknown classes."""

    keywords: tuple[str, ...] = KEYWORDS
    unknown_fraction: float = 0.1  # unknown examples per keyword example (the paper: K // 10)
    silence_fraction: float = 0.1

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.keywords) + (SILENCE, UNKNOWN)


def build_split(root, split: str, task: TaskSpec = TaskSpec(), seed: int = 0) -> list[Example]:
    """The examples of one split with the paper's class balance.

    All K keyword clips of the split, ``int(K * unknown_fraction)`` clips drawn (seeded) from
    the other words, and ``int(K * silence_fraction)`` silence examples (``path=None``).
    ``split="all"`` takes every clip of the folder, whatever the split rule says; it is for
    measuring, so a folder that holds only some of the keywords (a small set of real voices,
    say) is scored on those. Any other split needs every keyword.
    """
    if split not in SPLITS + (ALL,):
        raise DatasetError(f"split must be one of {', '.join(SPLITS + (ALL,))}, got {split!r}")
    root = Path(root)
    words = scan(root)
    missing = [k for k in task.keywords if k not in words]
    if missing and (split != ALL or len(missing) == len(task.keywords)):
        raise DatasetError(f"{root}: no clips for keyword(s) {', '.join(missing)}")
    labels = task.labels
    all_clips = [c for clips in words.values() for c in clips]
    chosen = all_clips if split == ALL else split_of_clips(root, all_clips)[split]
    keyword_index = {k: i for i, k in enumerate(task.keywords)}
    kw, other = [], []
    for c in chosen:
        word = c.split("/", 1)[0]
        if word in keyword_index:
            kw.append(Example(root / c, keyword_index[word]))
        else:
            other.append(root / c)
    rng = random.Random(f"kwspi:{split}:{seed}")
    n_unknown = min(len(other), int(len(kw) * task.unknown_fraction))
    unknown = [Example(p, labels.index(UNKNOWN)) for p in rng.sample(other, n_unknown)]
    silence = [Example(None, labels.index(SILENCE))] * int(len(kw) * task.silence_fraction)
    return kw + unknown + silence


def _read_list(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def csv_text(fields, rows) -> str:
    """``rows`` (dicts) as CSV text with header ``fields``: a missing value is empty and a
    key not in ``fields`` is left out."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def read_catalogue(root) -> dict[str, dict[str, str]]:
    """A synthetic data set's ``speakers.csv`` as speaker id -> row; empty for a folder
    without one, such as GSC. Rows written before engines existed get theirs from the voice
    (``mb-*``: MBROLA, else espeak-ng) and an empty transform."""
    path = Path(root) / CATALOGUE
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = {r["speaker"]: r for r in csv.DictReader(f) if r.get("speaker")}
    for r in rows.values():
        r.setdefault("engine", "mbrola" if r.get("voice", "").startswith("mb-") else "espeak")
        r.setdefault("transform", "")
    return rows


def _write_if_changed(path: Path, text: str) -> None:
    # The feature cache is keyed on the folder's files: rewriting an identical list would
    # throw it away.
    if not path.exists() or path.read_text() != text:
        atomic.write_text(path, text)


def combine(pools: list[Path], dst: Path) -> Path:
    """A GSC-layout folder of symlinks holding every clip of ``pools``, their split lists and
    catalogues merged, and the first pool's noise: ``kwspi combine``. ``kwspi train`` takes
    one folder; this makes one from, say, one folder per voice engine without copying a clip.
    Two pools may hold the same clip name (the same speaker and word: synthesis is
    deterministic, so the same file) and the same speaker's catalogue row: the first pool's
    is kept. Links that no longer belong are removed, with the folders they leave empty, and
    a rerun changes nothing, so the feature cache stays valid."""
    dst.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, Path] = {}
    lists = {TESTING_LIST: [], VALIDATION_LIST: []}
    rows: dict[str, dict] = {}
    for i, src in enumerate(pools):
        src = src.resolve()
        for wav in src.glob("*/*.wav"):
            if wav.parent.name != BACKGROUND_NOISE_DIR or i == 0:
                wanted.setdefault(f"{wav.parent.name}/{wav.name}", wav)
        for name in lists:
            if (src / name).exists():
                lists[name] += (src / name).read_text().split()
        for speaker, row in read_catalogue(src).items():
            rows.setdefault(speaker, row)
    for link in list(dst.glob("*/*.wav")):
        if link.relative_to(dst).as_posix() not in wanted:
            link.unlink()
    for folder in dst.iterdir():  # a word no pool says any more is no word of the mix
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    for rel, target in sorted(wanted.items()):
        link = dst / rel
        if link.is_symlink() and os.readlink(link) != str(target):
            link.unlink()
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
    for name, clips in lists.items():
        _write_if_changed(dst / name, "".join(f"{c}\n" for c in sorted(set(clips))))
    if rows:
        fields = list(dict.fromkeys(f for row in rows.values() for f in row))  # every pool's columns, in order
        _write_if_changed(dst / CATALOGUE, csv_text(fields, (rows[s] for s in sorted(rows))))
    return dst
