"""Hard negatives: the windows of keyword-free speech a model fires on, cut as training clips.

``kwspi mine`` listens to keyword-free streams (``kwspi synth-stream --negative``, or
recordings of a room) once, as ``kwspi listen`` does, and takes the windows that fire at the
thresholds in force (and, with ``min_score``, every window whose keyword posterior reaches
that lower bar). Windows that touch a keyword of the stream's truth are never taken; nor are
two windows ending closer than ``spacing_s`` (at a 100 ms stride one spoken word lights up
several neighbouring windows, near copies of one clip): the highest-scoring one of them stays.
From what is left, ``max_clips`` are drawn with ``seed``, so the same streams, model and seed
give the same clips. Each is the exact second of audio the network saw, written as an
``_unknown_`` clip into a GSC-layout folder:

- ``mined/<speaker>_nohash_<end_ms>.wav``: any folder that is not a keyword is ``_unknown_``
  to training; the speaker id hashes the stream's name with the engine and voice that said the
  window's main word (when the truth CSV names them), so the clips of one voice share a
  speaker, and the window's end in the stream (milliseconds) names the clip. So a name is one
  second of one stream: two rounds mined from the same streams by different models can be
  joined (``kwspi combine``) without a clip hiding another, and a window both rounds took is
  one clip, the same audio;
- ``speakers.csv`` with the columns of ``kwspi synth``'s catalogue, so the folder joins a
  synthetic one (``kwspi combine``) and the engine is known to training;
- empty ``validation_list.txt`` and ``testing_list.txt``: mined clips are training data;
- ``mined.csv``: where each clip came from (stream, window, label heard, score, word said).

It lives with streaming evaluation, not with training, because it is the listening engine
run over a stream, like ``eval-stream`` and ``calibrate``: torch-free, so it runs on a Pi over
recordings of the very room the model will listen in, and it needs only numpy to write clips.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import click
import numpy as np

from kwspi import gsc
from kwspi.atomic import write_text
from kwspi.errors import KwspiError
from kwspi.settings import COUNT, NON_NEGATIVE, POSITIVE, Config, setting
from kwspi.wavio import write_wav

from kwspi.deploy.engine import DEFAULT_STRIDE_MS
from kwspi.deploy.evaluation.score import NO_SPEECH, filling_row, window_words
from kwspi.deploy.evaluation.stream import StreamRun, keywords_of, run_stream, shown
from kwspi.deploy.evaluation.truth import TruthRow
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.sources import SAMPLE_RATE, WavSource

#: The word folder of mined clips: not a keyword, so training reads them as ``_unknown_``.
MINED_WORD = "mined"
MANIFEST = "mined.csv"
MANIFEST_FIELDS = ("clip", "stream", "start_s", "end_s", "heard", "score", "said", "engine", "voice")


class MiningError(KwspiError):
    """Mining options or an output folder that cannot work."""


@dataclass(frozen=True)
class MiningConfig(Config):
    """Which windows become clips (``kwspi mine``'s options are made from these fields)."""

    max_clips: int = setting(1000, "At most this many clips, drawn at random (--seed) when more windows fire.",
                             flag="--max", type=POSITIVE)
    seed: int = setting(0, "Seed of that draw: the same streams, model and seed give the same clips.", type=COUNT)
    min_score: float | None = setting(
        None, "Also take windows whose posterior of a keyword reaches this (below the thresholds: windows that "
        "nearly fire).", type=click.FloatRange(0, 1, min_open=True), show="only windows that fire")
    spacing_s: float = setting(0.5, "Two windows taken end at least this many seconds apart (neighbouring windows "
                               "are near copies of one clip).", type=NON_NEGATIVE)

    def __post_init__(self):
        if self.max_clips < 1:
            raise MiningError(f"max_clips must be at least 1, got {self.max_clips}")
        if self.min_score is not None and not 0.0 < self.min_score <= 1.0:
            raise MiningError(f"min_score must lie in (0, 1], got {self.min_score}")
        if not self.spacing_s >= 0:
            raise MiningError(f"spacing_s must be >= 0 seconds, got {self.spacing_s}")


@dataclass(frozen=True)
class NegativeStream:
    """A keyword-free recording and, when known, what was said in it and by whom."""

    wav: Path
    truth: tuple[TruthRow, ...] = ()


@dataclass(frozen=True)
class Window:
    """A window that may become a clip: the stream, its end (samples at 16 kHz), the label
    that scored highest and its score."""

    stream: int  # index into the streams mined
    end: int
    heard: str
    score: float


@dataclass(frozen=True)
class MinedClip:
    """One clip written, and where it came from."""

    clip: str  # relative to the output folder
    stream: Path
    start_s: float
    end_s: float
    heard: str
    score: float
    said: str
    engine: str
    voice: str


def candidates(run: StreamRun, index: int, keywords: Sequence[str], truth: Sequence[TruthRow],
               labels: Sequence[str], min_score: float | None, window_s: float) -> list[Window]:
    """The windows of one run that fired (or reached ``min_score``), none touching a keyword
    the truth says was spoken."""
    found = {round(d.time * SAMPLE_RATE): (d.label, d.score) for d in run.detections}
    if min_score is not None:
        columns = [labels.index(k) for k in keywords]
        p = run.trace.posteriors[:, columns]
        for i in np.flatnonzero(p.max(axis=1) >= min_score):
            end = round(run.trace.times[i] * SAMPLE_RATE)
            best = int(np.argmax(p[i]))
            if end not in found or found[end][1] < p[i, best]:
                found[end] = (keywords[best], float(p[i, best]))
    spoken = [r for r in truth if r.label in keywords]
    return [Window(index, end, heard, score) for end, (heard, score) in sorted(found.items())
            if not window_words(spoken, end / SAMPLE_RATE, window_s)]


def spread(windows: Sequence[Window], spacing_s: float) -> list[Window]:
    """The highest-scoring windows, none ending within ``spacing_s`` of a higher one of its stream."""
    gap = spacing_s * SAMPLE_RATE
    kept: list[Window] = []
    ends: dict[int, list[int]] = {}  # per stream, the ends kept so far, sorted
    for w in sorted(windows, key=lambda w: (-w.score, w.stream, w.end)):
        taken = ends.setdefault(w.stream, [])
        i = bisect.bisect_left(taken, w.end)
        if all(abs(taken[j] - w.end) >= gap for j in (i - 1, i) if 0 <= j < len(taken)):
            taken.insert(i, w.end)
            kept.append(w)
    return sorted(kept, key=lambda w: (w.stream, w.end))


def draw(windows: Sequence[Window], max_clips: int, seed: int) -> list[Window]:
    """``max_clips`` of ``windows`` drawn at random with ``seed`` (all when there are fewer),
    in stream and time order."""
    if len(windows) <= max_clips:
        return list(windows)
    chosen = np.random.default_rng(seed).choice(len(windows), size=max_clips, replace=False)
    return [windows[i] for i in sorted(chosen)]


def cut(source: WavSource, ends: Sequence[int], length: int) -> Iterator[np.ndarray]:
    """The ``length`` samples (16 kHz, as the engine heard them) ending at each of ``ends``
    (ascending), reading the file once."""
    pending = list(ends)
    tail = np.zeros(0, np.float32)
    pos = 0  # samples of the stream before the current block
    for block in source.blocks(threading.Event()):
        buf = np.concatenate([tail, block])
        first = pos + len(block) - len(buf)  # stream sample of buf[0]
        while pending and pending[0] <= pos + len(block):
            end = pending.pop(0)
            yield buf[end - length - first:end - first]
        tail = buf[-length:]
        pos += len(block)
    if pending:
        raise MiningError(f"{source.path}: shorter than when it was scored (changed while being mined?)")


def speaker_id(stream: Path, engine: str, voice: str) -> str:
    """8 hex digits, like ``kwspi synth``'s, that no synthesized speaker shares."""
    return hashlib.sha1(f"mined:{stream.name}:{engine}:{voice}".encode("utf-8")).hexdigest()[:8]


def mine(model: LoadedModel, streams: Sequence[NegativeStream], out, config: MiningConfig = MiningConfig(),
         thresholds=None, stride_ms: int = DEFAULT_STRIDE_MS, patience: int | None = None,
         progress: Callable[[float], None] | None = None) -> tuple[list[MinedClip], int]:
    """Mine ``streams`` into the folder ``out`` (see the module docstring).

    ``thresholds``, ``stride_ms`` and ``patience`` are the engine's, as ``kwspi listen`` takes
    them; ``progress`` gets the seconds of audio listened to. Clips an earlier run listed in
    ``out/mined.csv`` are removed first, so the folder holds one run. Returns the clips
    written and the number of windows they were drawn from.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MiningError(f"{out}: is a file, not a folder")
    keywords = keywords_of(model)
    labels = list(model.info.labels)
    window_s = model.features.clip_ms / 1000
    pool: list[Window] = []
    for i, stream in enumerate(streams):
        run = run_stream(model, WavSource(stream.wav), thresholds, stride_ms, progress, patience)
        pool += candidates(run, i, keywords, stream.truth, labels, config.min_score, window_s)
    pool = spread(pool, config.spacing_s)
    chosen = draw(pool, config.max_clips, config.seed)
    _clear(out)
    clips = []
    length = round(window_s * SAMPLE_RATE)
    for i, stream in enumerate(streams):
        mine_here = [w for w in chosen if w.stream == i]
        for w, x in zip(mine_here, cut(WavSource(stream.wav), [w.end for w in mine_here], length)):
            end_s = w.end / SAMPLE_RATE
            row = filling_row(stream.truth, end_s, window_s)
            engine, voice = (row.engine, row.voice) if row is not None else ("", "")
            speaker = speaker_id(stream.wav, engine, voice)
            rel = f"{MINED_WORD}/{speaker}_nohash_{round(end_s * 1000)}.wav"
            (out / MINED_WORD).mkdir(parents=True, exist_ok=True)
            write_wav(out / rel, x, SAMPLE_RATE)
            said = row.label if row is not None else (NO_SPEECH if stream.truth else "")
            clips.append(MinedClip(rel, stream.wav, round(end_s - window_s, 3), round(end_s, 3), w.heard,
                                   round(w.score, 4), said, engine, voice))
    _write_catalogues(out, clips)
    return clips, len(pool)


def _clear(out: Path) -> None:
    """Remove the clips of an earlier run (those its manifest lists), nothing else."""
    manifest = out / MANIFEST
    if manifest.is_file():
        with open(manifest, newline="") as f:
            for row in csv.DictReader(f):
                (out / row["clip"]).unlink(missing_ok=True)


def _write_catalogues(out: Path, clips: Sequence[MinedClip]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / MANIFEST, gsc.csv_text(MANIFEST_FIELDS, [
        {f: getattr(c, f) for f in MANIFEST_FIELDS} | {"stream": str(shown(c.stream))} for c in clips]))
    speakers = {gsc.speaker_of(c.clip): c for c in clips}
    write_text(out / gsc.CATALOGUE, gsc.csv_text(gsc.SPEAKER_FIELDS, [
        {"speaker": s, "engine": c.engine, "voice": c.voice, "split": "training"} for s, c in sorted(speakers.items())]))
    for name in (gsc.VALIDATION_LIST, gsc.TESTING_LIST):  # lists present and empty: every clip trains
        write_text(out / name, "")
