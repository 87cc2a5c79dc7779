"""Phrases spoken as phrases: connected, coarticulated speech with each word's time in it.

:func:`speak_phrase` has a phrase said in one go by a speaker of any engine
(:mod:`.engines`) and says where each word sounds, by the best method the engine offers:

- ``events``: the engine module's ``speak_timed`` reports where each word starts while it
  speaks (espeak-ng and MBROLA, through :mod:`.espeaklib`; Piper, from its phoneme
  alignments);
- ``cuts``: for an engine that reports nothing, the phrase is also spoken cut at each
  boundary, the words before it and the words after it: the end of the first part and the
  length of the second say where the boundary lies, and the two are averaged;
- ``joined``: when neither works, the words spoken one by one and joined with short gaps,
  as streams always were (one log line per engine says so).

Every method then trims each word's span to its sounding frames, so a pause before or
after a word is not counted as the word. A transformed speaker's base voice speaks and its
transform runs on the whole phrase (:mod:`.transforms` keeps the length; a room's tail is
added at the end), so the times hold.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kwspi.features import SAMPLE_RATE
from kwspi.train.speech import engines, synth
from kwspi.train.speech.engines import Speaker, SynthError

log = logging.getLogger(__name__)

METHODS = ("events", "cuts", "joined")
FRAME = SAMPLE_RATE // 100  # 10 ms, as synth.frame_levels
#: A frame sounds when it is within this many dB of the phrase's loudest and above the floor.
RANGE_DB, FLOOR_DB = 50.0, -65.0


@dataclass(frozen=True)
class Phrase:
    """A phrase as spoken: audio at 16 kHz (float, full scale 1), its words, and per word the samples
    ``(start, end)`` where it sounds; ``method`` says how the times were found."""

    audio: np.ndarray
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    method: str

    def seconds(self, i: int) -> tuple[float, float]:
        s, e = self.spans[i]
        return s / SAMPLE_RATE, e / SAMPLE_RATE


def speak_phrase(
    words: Sequence[str], speaker: Speaker, rng: np.random.Generator, *, speed: int | None = None,
    pitch: int | None = None, word_gap_s: tuple[float, float] = (0.04, 0.12), method: str | None = None,
) -> Phrase | None:
    """``words`` said by ``speaker`` as one phrase, with word times; ``None`` when a word
    does not sound (some voices say nothing for some words).

    ``method`` forces one of :data:`METHODS` (default: the engine's best, :func:`method_of`).
    ``rng`` draws the gaps of the ``joined`` method only, so the other methods give the same
    phrase whatever it is.
    """
    words = tuple(words)
    method = method or method_of(speaker.engine)
    if method not in METHODS:
        raise SynthError(f"unknown phrase method {method!r}; methods: {', '.join(METHODS)}")
    base = dataclasses.replace(speaker, transform="")
    try:
        if method == "events":
            audio, starts = engines.module(speaker.engine).speak_timed(" ".join(words), base, speed=speed, pitch=pitch)
            spans = spans_from_starts(audio, starts)
        elif method == "cuts":
            audio, spans = _by_cuts(words, base, speed, pitch)
        else:  # each word transformed on its own, as streams always did
            audio, spans = joined(words, speaker, rng, word_gap_s, speed, pitch)
            return Phrase(audio, words, tuple(spans), method)
    except _Silent:
        return None
    if speaker.transform:
        from kwspi.train.speech import transforms  # pyworld and pyroomacoustics only when asked for

        audio = transforms.apply_padded(speaker.transform, audio)
    return Phrase(audio, words, tuple(spans), method)


def method_of(engine: str) -> str:
    """The engine's best working method: ``events`` where its module has ``speak_timed``
    and it works here, else ``cuts``; ``joined`` (said once in the log) when that fails."""
    return _method(engine)


@functools.lru_cache(maxsize=None)
def _method(engine: str) -> str:
    mod = engines.module(engine)
    if hasattr(mod, "speak_timed"):
        reason = getattr(mod, "timed_unavailable", lambda: None)()
        if reason is None:
            return "events"
        log.warning("phrases of %s are spoken word by word and joined: %s", engine, reason)
        return "joined"
    return "cuts"


class _Silent(Exception):
    """A word of the phrase has no sounding frame."""


# --- spans from the sound -------------------------------------------------------------


def _sounding(x: np.ndarray) -> np.ndarray:
    """Per 10 ms frame of ``x``, whether it sounds (relative to the loudest frame)."""
    levels = synth.frame_levels(x)
    if levels.size == 0:
        return np.zeros(0, bool)
    return (levels > FLOOR_DB) & (levels > levels.max() - RANGE_DB)


def trim(sounding: np.ndarray, start: int, end: int, length: int) -> tuple[int, int]:
    """The span ``[start, end)`` shrunk to its first and last sounding frame, 10 ms kept on
    either side; :class:`_Silent` when none sounds."""
    lo, hi = start // FRAME, min(len(sounding), -(-end // FRAME))
    on = np.flatnonzero(sounding[lo:hi])
    if on.size == 0:
        raise _Silent
    return max(start, (lo + on[0] - 1) * FRAME), min(end, length, (lo + on[-1] + 2) * FRAME)


def spans_from_starts(audio: np.ndarray, starts: Sequence[int | None]) -> list[tuple[int, int]]:
    """Word spans from word starts: each word runs to the next one's start (the last to the
    end), then is trimmed to where it sounds. A word whose start is ``None`` was said run
    into the one before: every word of such a group gets the group's span, so the span of
    each holds the word (and a keyword's window holds it whole)."""
    sounding = _sounding(audio)
    heads = [i for i, s in enumerate(starts) if s is not None]
    if not heads or heads[0] != 0:
        raise SynthError("the first word of a phrase has no start")
    known = [starts[i] for i in heads]
    if any(b < a for a, b in zip(known, known[1:])):
        raise SynthError(f"word starts out of order: {list(starts)}")
    spans = []
    for j, i in enumerate(heads):
        end = known[j + 1] if j + 1 < len(heads) else len(audio)
        size = (heads[j + 1] if j + 1 < len(heads) else len(starts)) - i
        spans += [trim(sounding, known[j], end, len(audio))] * size
    return spans


def _bounds(x: np.ndarray) -> tuple[int, int]:
    start, end = synth.speech_bounds(x)
    if end <= start:
        raise _Silent
    return start, end


def _by_cuts(words, speaker, speed, pitch) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The phrase, and word spans from the phrase spoken cut at each word boundary.

    Where words 1..k end in the phrase is guessed twice: from the length of words 1..k said
    alone (but a phrase's last word is drawn out, so this is late) and from the length of
    words k+1..n said alone, counted back from the phrase's end (early, for the same reason
    at the other end); the boundary is their mean.
    """
    audio = engines.speak(" ".join(words), speaker, speed=speed, pitch=pitch)
    start, end = _bounds(audio)
    starts = [start]
    for k in range(1, len(words)):
        head = _bounds(engines.speak(" ".join(words[:k]), speaker, speed=speed, pitch=pitch))
        tail = _bounds(engines.speak(" ".join(words[k:]), speaker, speed=speed, pitch=pitch))
        guess = 0.5 * ((start + head[1] - head[0]) + (end - (tail[1] - tail[0])))
        starts.append(int(np.clip(guess, starts[-1], end)))
    return audio, spans_from_starts(audio, starts)


# --- word by word ---------------------------------------------------------------------


def speak_word(word: str, speaker: Speaker, speed: int | None = None, pitch: int | None = None) -> np.ndarray | None:
    """One word trimmed to its sounding span with 5 ms fades, or ``None`` if it is (nearly)
    silent."""
    raw = engines.speak(word, speaker, speed=speed, pitch=pitch)
    if synth.active_seconds(raw) < 0.05:
        return None
    start, end = synth.speech_bounds(raw)
    x = raw[start:end].astype(np.float64)
    ramp = min(int(0.005 * SAMPLE_RATE), len(x) // 2)
    fade = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    x[:ramp] *= fade
    x[len(x) - ramp:] *= fade[::-1]
    return x


def joined(words, speaker, rng, word_gap_s, speed=None, pitch=None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The words spoken one by one and joined with gaps drawn from ``word_gap_s``: float64
    audio and each word's ``(start, end)`` sample in it."""
    pieces, spans, at = [], [], 0
    for i, word in enumerate(words):
        x = speak_word(word, speaker, speed, pitch)
        if x is None:
            raise _Silent
        if i:
            gap = int(rng.uniform(*word_gap_s) * SAMPLE_RATE)
            pieces.append(np.zeros(gap))
            at += gap
        pieces.append(x)
        spans.append((at, at + len(x)))
        at += len(x)
    return np.concatenate(pieces), spans
