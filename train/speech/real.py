"""Real human voices from two Debian packages: a small keyword test set and negative speech.

kwspi trains on synthetic speech only, so the few recorded people a machine can install are
too precious to train on where they say a keyword: those clips are a **test set**, never
training data. Everything else those people say is ``_unknown_``/negative speech.

Sources (both Debian main; ``make real-voices`` installs them):

- ``hedgewars-data`` (GFDL-1.3): acted voice packs, one actor each, OGG Vorbis at 44.1 kHz
  (some 48 kHz, mono or stereo). :data:`ENGLISH_PACKS` are the English ones; the packs named
  ``*_es``, ``*_pl``, ``*_ru``, ``*_uk`` are translations (Spanish, Polish, Russian,
  Ukrainian) whose words nobody here has checked, and Spanish "no" is a keyword.
- ``klettres-data`` (GPL-2+): letters and short words read by one speaker per language,
  OGG Vorbis, 44.1 kHz mono. ``en`` and ``en_GB`` are English.

Which clips hold a keyword was decided from the file names alone (:data:`HEDGEWARS_KEYWORDS`,
:data:`KLETTRES_KEYWORDS`); nobody listened. A recording longer than the model's one second
is cut to a one-second window by :func:`keyword_window`, which places the window by where
the keyword sits in the phrase (``"start"``, ``"middle"``, ``"end"``) on the span of
audible sound (:func:`kwspi.train.speech.synth.speech_bounds`). Identical files (the packs
share some) are kept once.

:func:`build_real_voices` writes both folders in Google Speech Commands' layout, with a
``catalogue.csv`` each; the keyword folder lists every clip in ``testing_list.txt``. This
module must not import torch. Reading OGG needs the ``soundfile`` package (libsndfile).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from kwspi import gsc
from kwspi.atomic import write_text
from kwspi.errors import DatasetError, MissingDependency
from kwspi.features import SAMPLE_RATE
from kwspi.train.speech.synth import CLIP_SAMPLES, MIN_ACTIVE_S, PEAK, active_seconds, speech_bounds
from kwspi.wavio import write_wav

log = logging.getLogger(__name__)

HEDGEWARS_ROOT = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
KLETTRES_ROOT = Path("/usr/share/klettres")
#: The English hedgewars packs (accents and characters; ``Robot`` may be effect-processed).
ENGLISH_PACKS = ("British", "Classic", "Default", "HillBilly", "Mobster", "Pirate", "Robot",
                 "Russian", "Singer", "Surfer")
#: klettres' English speakers: one American (``en``), one British (``en_GB``).
KLETTRES_ENGLISH = ("en", "en_GB")
LICENCES = {"hedgewars-data": "GFDL-1.3", "klettres-data": "GPL-2+"}

#: Where the window sits in a phrase longer than a second.
PLACEMENTS = ("whole", "start", "middle", "end")
#: Keep a little sound before the onset (or after the offset) of a window placed at an edge,
#: so a soft onset is not cut; 50 ms is the margin GSC's aligner-free clips tend to show.
EDGE_MARGIN = int(0.05 * SAMPLE_RATE)
#: Sound, for placing windows, is what comes within this many dB of the loudest 10 ms. The
#: synthetic default (55 dB) counts klettres' hiss, 35-40 dB down, as sound and would place
#: its "no" by the file's ends; breath and soft consonants 30-35 dB down still count.
PLACE_RANGE_DB = 35.0


@dataclass(frozen=True)
class KeywordSpec:
    """What a recording says and where its keyword is in it."""

    keyword: str
    text: str
    placement: str  # one of PLACEMENTS: "whole" for a clip that is the keyword alone

    @property
    def isolated(self) -> bool:
        return self.placement == "whole"


#: hedgewars file stem -> keyword. "Yessir" is "yes sir" ("yes" first), "Nooo" a drawn-out
#: "no" alone, "Enemydown" "enemy down" ("down" last), "Comeonthen" "come on then" ("on"
#: in the middle). No other stem of the English packs says one of the ten keywords.
HEDGEWARS_KEYWORDS = {
    "Yessir": KeywordSpec("yes", "yes sir", "start"),
    "Nooo": KeywordSpec("no", "nooo", "whole"),
    "Enemydown": KeywordSpec("down", "enemy down", "end"),
    "Comeonthen": KeywordSpec("on", "come on then", "middle"),
}
#: klettres file stem (``syllab/``) -> keyword.
KLETTRES_KEYWORDS = {"no": KeywordSpec("no", "no", "whole")}

CATALOGUE = "catalogue.csv"
CATALOGUE_FIELDS = ("clip", "word", "keyword", "isolated", "placement", "text", "speaker", "package",
                    "pack", "original", "also_in", "window_start_s", "source_s", "sound_s", "licence")


@dataclass(frozen=True)
class Recording:
    """One installed file: who says it, from which package, and what."""

    package: str
    pack: str  # hedgewars voice pack or klettres language folder
    path: Path
    stem: str  # the file name without extension: what is said, as the package names it

    @property
    def speaker(self) -> str:
        # Hyphens only: GSC speaker ids end at "_nohash_", and packs are speakers.
        prefix = "hw" if self.package == "hedgewars-data" else "klettres"
        return f"{prefix}-{self.pack.lower().replace('_', '-')}"

    @property
    def spec(self) -> KeywordSpec | None:
        table = HEDGEWARS_KEYWORDS if self.package == "hedgewars-data" else KLETTRES_KEYWORDS
        return table.get(self.stem)


def find_recordings(hedgewars_root=HEDGEWARS_ROOT, klettres_root=KLETTRES_ROOT) -> list[Recording]:
    """The English recordings installed under the two roots, in a stable order."""
    found = []
    for pack in ENGLISH_PACKS:
        for p in sorted((Path(hedgewars_root) / pack).glob("*.ogg")):
            found.append(Recording("hedgewars-data", pack, p, p.stem))
    for lang in KLETTRES_ENGLISH:
        for sub in ("alpha", "syllab"):
            for p in sorted((Path(klettres_root) / lang / sub).glob("*.ogg")):
                found.append(Recording("klettres-data", lang, p, p.stem))
    return found


def read_audio(path) -> np.ndarray:
    """A compressed recording (OGG Vorbis, FLAC, ...) as float32 mono at 16 kHz."""
    try:
        import soundfile
    except ModuleNotFoundError:
        raise MissingDependency("reading OGG recordings needs soundfile: pip install 'kwspi[train]'") from None
    import soxr  # a runtime dependency of kwspi: the same resampler as kwspi.clips

    try:
        x, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as e:  # libsndfile's errors (soundfile.LibsndfileError) are RuntimeErrors
        raise DatasetError(f"{path}: cannot read ({e})") from None
    x = x.mean(axis=1)
    if rate != SAMPLE_RATE:
        x = soxr.resample(x, rate, SAMPLE_RATE)
    return np.asarray(x, np.float32)


def keyword_window(x: np.ndarray, placement: str) -> tuple[np.ndarray, int]:
    """The one-second window of ``x`` that holds the keyword, and where it starts in ``x``.

    Sound (:func:`speech_bounds`) of a second or less is centred in the window, whatever
    the placement (sound: within :data:`PLACE_RANGE_DB` of the loudest). Longer sound is cut by where the keyword is: ``"start"`` and ``"whole"``
    (a drawn-out word) take the first second from just before the onset, ``"end"`` the last
    second up to just after the offset, ``"middle"`` the second centred on the sound. The
    start can be negative (the clip is then zero-padded in front). Limits: a neighbouring
    word ("sir", "enemy", "come ... then") is inside the window as often as not, and a
    keyword off the middle of a long phrase could fall outside a "middle" window.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    start, end = speech_bounds(x, range_db=PLACE_RANGE_DB)
    if end - start <= CLIP_SAMPLES:
        begin = start - (CLIP_SAMPLES - (end - start)) // 2
    elif placement in ("start", "whole"):
        begin = max(0, start - EDGE_MARGIN)
    elif placement == "end":
        begin = min(len(x), end + EDGE_MARGIN) - CLIP_SAMPLES
    else:
        begin = (start + end) // 2 - CLIP_SAMPLES // 2
    return _cut(x, begin), begin


def negative_windows(x: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
    """One-second windows covering all the sound of ``x``, and where each starts.

    Sound of a second or less gives one centred window; longer sound gives consecutive
    windows from its onset, the last one ending at its offset (so none is mostly padding).
    Windows with under :data:`MIN_ACTIVE_S` of audible sound are left out.
    """
    start, end = speech_bounds(x, range_db=PLACE_RANGE_DB)
    if end - start <= CLIP_SAMPLES:
        begins = [start - (CLIP_SAMPLES - (end - start)) // 2]
    else:
        begins = list(range(start, end - CLIP_SAMPLES, CLIP_SAMPLES)) + [end - CLIP_SAMPLES]
    for begin in begins:
        w = _cut(x, begin)
        if active_seconds(w) >= MIN_ACTIVE_S:
            yield w, begin


def _cut(x: np.ndarray, begin: int) -> np.ndarray:
    """``x[begin:begin + 1 s]``, zero-padded where it runs off either end, at most PEAK."""
    out = np.zeros(CLIP_SAMPLES, np.float32)
    lo, hi = max(0, begin), min(len(x), begin + CLIP_SAMPLES)
    if hi > lo:
        out[lo - begin:hi - begin] = x[lo:hi]
    # The recordings keep their own level; only resampling overshoot is brought back.
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return out * (PEAK / peak) if peak > PEAK else out


def word_folder(stem: str) -> str:
    """A negative clip's folder: its file stem in lower case (``"Uh-oh"`` -> ``uh-oh``)."""
    return re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-") or "x"


@dataclass
class RealVoicesSummary:
    keyword_clips: dict[str, int] = field(default_factory=dict)  # keyword -> clips
    speakers: set[str] = field(default_factory=set)  # speakers of the keyword clips
    negative_clips: int = 0
    negative_speakers: set[str] = field(default_factory=set)
    duplicates: list[str] = field(default_factory=list)  # files left out as copies of another

    def __str__(self) -> str:
        kws = ", ".join(f"{k} {n}" for k, n in sorted(self.keyword_clips.items()))
        return (f"{sum(self.keyword_clips.values())} keyword clips ({kws}) from {len(self.speakers)} speakers; "
                f"{self.negative_clips} negative clips from {len(self.negative_speakers)} speakers; "
                f"{len(self.duplicates)} duplicate file(s) left out")


def build_real_voices(keywords_dir, negatives_dir, hedgewars_root=HEDGEWARS_ROOT,
                      klettres_root=KLETTRES_ROOT) -> RealVoicesSummary:
    """Write the keyword test set and the negative speech as two GSC-layout folders.

    ``keywords_dir/<keyword>/<speaker>_nohash_<n>.wav`` with ``testing_list.txt`` listing
    every clip, and ``negatives_dir/<word>/<speaker>_nohash_<n>.wav`` (``n`` counts the
    windows of one recording); 16 kHz mono 16-bit, a ``catalogue.csv`` in each. A rerun
    first removes the clips its earlier catalogue lists, so the folders hold one build.
    """
    recordings = find_recordings(hedgewars_root, klettres_root)
    if not recordings:
        raise DatasetError(f"no English voices under {hedgewars_root} or {klettres_root}: "
                           "install them with `make real-voices` (apt-get install hedgewars-data klettres-data)")
    kw_dir, neg_dir = _fresh(keywords_dir), _fresh(negatives_dir)
    if kw_dir.resolve() == neg_dir.resolve():
        raise DatasetError(f"{kw_dir}: the keyword test set and the negatives must be different folders")
    summary = RealVoicesSummary()
    kw_rows, neg_rows = [], []
    kept: dict[str, dict] = {}  # file digest -> the first recording with those bytes
    for rec in recordings:
        digest = hashlib.sha1(rec.path.read_bytes()).hexdigest()
        if digest in kept:
            kept[digest]["also_in"].append(f"{rec.package}:{rec.pack}/{rec.path.name}")
            summary.duplicates.append(str(rec.path))
            continue
        kept[digest] = {"also_in": []}
        x = read_audio(rec.path)
        spec = rec.spec
        start, end = speech_bounds(x, range_db=PLACE_RANGE_DB)
        base = dict(speaker=rec.speaker, package=rec.package, pack=rec.pack, original=str(rec.path),
                    also_in=kept[digest]["also_in"], source_s=round(len(x) / SAMPLE_RATE, 3),
                    sound_s=round((end - start) / SAMPLE_RATE, 3),
                    licence=LICENCES[rec.package])
        if spec is not None:
            clip, begin = keyword_window(x, spec.placement)
            rel = f"{spec.keyword}/{rec.speaker}_nohash_0.wav"
            write_wav(kw_dir / rel, clip, SAMPLE_RATE)
            kw_rows.append(dict(base, clip=rel, word=spec.keyword, keyword=spec.keyword, isolated=int(spec.isolated),
                                placement=spec.placement, text=spec.text, window_start_s=round(begin / SAMPLE_RATE, 3)))
            summary.keyword_clips[spec.keyword] = summary.keyword_clips.get(spec.keyword, 0) + 1
            summary.speakers.add(rec.speaker)
            continue
        word = word_folder(rec.stem)
        for n, (clip, begin) in enumerate(negative_windows(x)):
            rel = f"{word}/{rec.speaker}_nohash_{n}.wav"
            write_wav(neg_dir / rel, clip, SAMPLE_RATE)
            neg_rows.append(dict(base, clip=rel, word=word, keyword="", isolated="", placement="",
                                 text=rec.stem, window_start_s=round(begin / SAMPLE_RATE, 3)))
            summary.negative_clips += 1
            summary.negative_speakers.add(rec.speaker)
    if not kw_rows:
        raise DatasetError(f"none of the installed voices under {hedgewars_root} or {klettres_root} says a keyword")
    _write_catalogue(kw_dir, kw_rows)
    write_text(kw_dir / gsc.TESTING_LIST, "".join(f"{r['clip']}\n" for r in sorted(kw_rows, key=lambda r: r["clip"])))
    _write_catalogue(neg_dir, neg_rows)
    return summary


def read_catalogue(folder) -> list[dict[str, str]]:
    """The rows of a folder's ``catalogue.csv`` (empty when there is none)."""
    path = Path(folder) / CATALOGUE
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _fresh(folder) -> Path:
    """``folder``, created, without the clips an earlier build listed in its catalogue."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for row in read_catalogue(out):
        (out / row["clip"]).unlink(missing_ok=True)
    for d in out.iterdir():
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    return out


def _write_catalogue(folder: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CATALOGUE_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in sorted(rows, key=lambda r: r["clip"]):
        writer.writerow(dict(r, also_in=";".join(r["also_in"])))
    write_text(folder / CATALOGUE, buf.getvalue())
