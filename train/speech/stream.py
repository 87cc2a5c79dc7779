"""Long synthetic audio streams with a truth file.

A stream is a sequence of spoken *events* over generated background noise: isolated
keywords, short phrases with a keyword in them ("please turn the lights on now"), sentences
without one, and confusable non-keywords ("yesterday", "nobody", "downtown"), separated by
random gaps. An event of several words is said in one go by its speaker (any engine of
:mod:`kwspi.train.speech.engines`; espeak-ng unless told otherwise), connected as people
speak, and its word times come from the engine (:mod:`kwspi.train.speech.phrases`). With
``speech="joined"`` every word is spoken separately and joined to the next with a short gap,
each word's start and end measured on its own audio, as streams were first made.

The truth file is DESIGN.md's stream truth CSV: header ``label,start_s,end_s``, one row per
spoken word, keywords and others, then ``engine,voice``: who said it.

Public API:

- :class:`StreamConfig`, :func:`iter_blocks`, :func:`write_stream`: build a stream. It is made
  and written block by block (one gap and one event at a time), so an hour costs the memory of
  a few seconds; the same seed and config give the same file.
- What is said comes from :mod:`kwspi.train.speech.texts`, the background from
  :class:`kwspi.train.speech.noise.NoiseTrack`; the truth CSV is
  :mod:`kwspi.deploy.evaluation.truth`, and detections are scored against it by
  :mod:`kwspi.deploy.evaluation.score`.

Torch-free: the demo and the streaming tests run it where only the runtime and espeak-ng
are installed.
"""

from __future__ import annotations

import math
import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from kwspi import gsc
from kwspi.atomic import temp_path
# The truth file lives with streaming evaluation, in the runtime: eval-stream runs on a Pi.
from kwspi.deploy.evaluation.truth import TruthRow, write_truth
from kwspi.errors import KwspiError
from kwspi.features import SAMPLE_RATE
from kwspi.train.speech import engines, phrases, synth
from kwspi.train.speech.engines import Speaker
from kwspi.train.speech.noise import NoiseTrack
from kwspi.train.speech.texts import (CONFUSABLE_SENTENCES, CONFUSABLE_WORDS, CONTEXT_SENTENCES, GENERIC_PHRASES,
                                     KEYWORD_PHRASES, SENTENCES, TRAINING_CONFUSABLES)


POSITIVE_MIX = (("keyword", 0.35), ("phrase", 0.30), ("sentence", 0.15), ("confusable", 0.20))
#: Keywords alone and in phrases, and everyday sentences: no deliberate confusables.
EVERYDAY_MIX = (("keyword", 0.5), ("phrase", 0.3), ("sentence", 0.2))
NEGATIVE_MIX = (("sentence", 0.5), ("confusable", 0.5))
EVENT_KINDS = ("keyword", "phrase", "sentence", "confusable")
SPEECH_MODES = ("phrase", "joined")
#: What the sentence and confusable events say, by name: ``evaluation``, the streams' own text,
#: which no training data says (tested); ``training``, the sentences and confusable words that
#: training data says (``synth-context``, ``make default-model``'s unknown class): a stream of
#: other text, for false alarms on speech a model trained or mined on another text did not hear.
TEXTS = {
    "evaluation": (SENTENCES, CONFUSABLE_WORDS, CONFUSABLE_SENTENCES),
    "training": (CONTEXT_SENTENCES, TRAINING_CONFUSABLES, CONTEXT_SENTENCES),
}


class StreamError(KwspiError):
    """A stream option that cannot work."""


@dataclass(frozen=True)
class StreamConfig:
    """Everything that decides a stream's content (with the voices installed).

    Times are in seconds, levels in dB.
    """

    seconds: float = 60.0
    snr_db: float = 20.0  # active speech RMS over noise RMS; inf for no noise
    seed: int = 0
    engines: tuple[str, ...] = engines.DEFAULT_ENGINES  # speakers are dealt over those installed
    voices: tuple[str, ...] | None = None  # None: every English voice of those engines
    exclude_voices: tuple[str, ...] = ()
    negative: bool = False  # no keyword at all: sentences and confusables only
    keywords: tuple[str, ...] = gsc.KEYWORDS
    mix: tuple[tuple[str, float], ...] | None = None  # (event kind, weight); None: by `negative`
    speech_dbfs: float = -20.0  # active RMS of every event
    gap_s: tuple[float, float] = (0.5, 1.5)  # between events
    keyword_gap_s: float = 1.5  # at least this between two keywords, so each fires once
    word_gap_s: tuple[float, float] = (0.04, 0.12)  # between the words of an event
    lead_in_s: float = 1.0  # noise only: the runtime decides nothing before one full window
    tail_s: float = 1.5  # noise only after the last event, so its window can still fire
    speakers: int = 64  # size of the speaker pool drawn from per event
    text: str = "evaluation"  # what sentences and confusables say: a key of TEXTS
    # "phrase": an event of several words is said in one go, connected, with the engine's word
    # times (phrases.speak_phrase); "joined": every word said alone and joined with short gaps,
    # as streams were made before (for reproducing them).
    speech: str = "phrase"
    transforms: tuple[str, ...] = ()  # as kwspi synth's: new speakers made from recorded voices
    transformed_share: float = 0.25

    @property
    def event_mix(self) -> tuple[tuple[str, float], ...]:
        if self.mix is not None:
            return self.mix
        return NEGATIVE_MIX if self.negative else POSITIVE_MIX

    @property
    def noise_rms(self) -> float:
        """Linear RMS of the background noise (full scale 1)."""
        return 10.0 ** ((self.speech_dbfs - self.snr_db) / 20.0)

    def check(self) -> None:
        """:class:`StreamError` for options that cannot make a stream."""
        if self.seconds < self.lead_in_s + self.tail_s + 2.0:
            raise StreamError(f"a stream of {self.seconds:g} s is too short: give at least "
                              f"{self.lead_in_s + self.tail_s + 2.0:g} s")
        if math.isnan(self.snr_db) or self.snr_db == -math.inf:
            raise StreamError("the SNR must be a number of dB (or inf for no noise)")
        kinds = [k for k, w in self.event_mix if w > 0]
        if not kinds or any(k not in EVENT_KINDS for k in kinds):
            raise StreamError(f"event mix {self.event_mix!r}: kinds are {', '.join(EVENT_KINDS)}, weights > 0")
        if self.negative and {"keyword", "phrase"} & set(kinds):
            raise StreamError("a negative stream cannot have keyword or phrase events")
        if self.speech not in SPEECH_MODES:
            raise StreamError(f"speech {self.speech!r}: one of {', '.join(SPEECH_MODES)}")
        if self.text not in TEXTS:
            raise StreamError(f"text {self.text!r}: one of {', '.join(TEXTS)}")
        if not self.keywords and not self.negative:
            raise StreamError("a stream with keywords needs at least one keyword")
        for kw in self.keywords:
            if " " in kw or kw != kw.lower() or not kw:
                raise StreamError(f"keyword {kw!r}: streams take single lower-case words")


@dataclass(frozen=True)
class Block:
    """A stretch of stream: speech and noise tracks (float32, same length) and its words."""

    speech: np.ndarray
    noise: np.ndarray
    rows: tuple[TruthRow, ...]

    @property
    def mixed(self) -> np.ndarray:
        return np.clip(self.speech + self.noise, -1.0, 1.0)


# --- what is said ---------------------------------------------------------------------


def keyword_tokens(text: str, keywords: Iterable[str]) -> list[str]:
    """The words of ``text`` that are keywords (a check on the phrase lists)."""
    kws = set(keywords)
    return [w for w in text.lower().split() if w in kws]


class _Deck:
    """Keywords dealt from a shuffled deck, reshuffled when empty: a short stream still
    hears many different keywords, and none twice before all once."""

    def __init__(self, keywords: Sequence[str], rng: np.random.Generator):
        self._keywords, self._rng, self._left = list(keywords), rng, []

    def draw(self) -> str:
        if not self._left:
            self._left = [self._keywords[i] for i in self._rng.permutation(len(self._keywords))]
        return self._left.pop()


def _choose_words(kind: str, rng: np.random.Generator, deck: _Deck, text: str
                  ) -> tuple[list[str], int | None]:
    """The words of one event and the index of its keyword (``None`` for no keyword)."""
    sentences, confusable_words, confusable_sentences = TEXTS[text]
    if kind == "keyword":
        return [deck.draw()], 0
    if kind == "phrase":
        kw = deck.draw()
        template = str(rng.choice(KEYWORD_PHRASES.get(kw, GENERIC_PHRASES)))
        words = template.split()
        return [kw if w == "{kw}" else w.lower() for w in words], words.index("{kw}")
    if kind == "sentence":
        return str(rng.choice(sentences)).lower().split(), None
    if rng.uniform() < 0.5:
        return [str(rng.choice(confusable_words))], None
    return str(rng.choice(confusable_sentences)).lower().split(), None


# --- how it sounds --------------------------------------------------------------------


def render_event(
    words: Sequence[str], speaker: Speaker, rng: np.random.Generator, config: StreamConfig
) -> tuple[np.ndarray, list[tuple[int, int]]] | None:
    """The words of an event, said as ``config.speech`` says, at the configured level.

    Returns ``(audio, spans)``: float64 audio and each word's ``(start, end)`` sample in it;
    ``None`` when the speaker says nothing audible for one of the words, or its engine is
    known to say one wrongly (only when no speaker can say every word of an event).
    """
    if any(engines.cannot_say(speaker, w) for w in words):
        return None
    joined = config.speech == "joined" or len(words) == 1
    phrase = phrases.speak_phrase(words, speaker, rng, word_gap_s=config.word_gap_s,
                                  method="joined" if joined else None)
    if phrase is None:
        return None
    audio, spans = np.asarray(phrase.audio, np.float64), list(phrase.spans)
    if not joined:  # from the first word's start to the last one's end, as a joined event
        first, last = spans[0][0], spans[-1][1]
        audio = audio[first:last] * synth.fade(last - first, int(0.005 * SAMPLE_RATE))
        spans = [(a - first, b - first) for a, b in spans]
    # Level over the words only, so pauses between words do not change the SNR.
    active = np.concatenate([audio[s:e] for s, e in spans])
    audio *= 10.0 ** (config.speech_dbfs / 20.0) / (np.sqrt(np.mean(active**2)) + 1e-12)
    return audio, spans


def make_speakers(config: StreamConfig) -> list[Speaker]:
    """The stream's speaker pool: :func:`kwspi.train.speech.synth.make_speakers`'s."""
    return synth.make_speakers(synth.SynthConfig(
        speakers=config.speakers, seed=config.seed, engines=config.engines, voices=config.voices,
        exclude_voices=config.exclude_voices, transforms=config.transforms,
        transformed_share=config.transformed_share))


# --- the stream -----------------------------------------------------------------------


def iter_blocks(config: StreamConfig) -> Iterator[Block]:
    """The stream as consecutive blocks (a gap, then an event; last, the noise to the end).

    Deterministic for ``config``: events, speakers and gaps come from one generator seeded
    by ``config.seed``, the noise from another, so blocks are the same however they are used.
    """
    config.check()
    speakers = make_speakers(config)
    rng = np.random.default_rng([config.seed, 1])
    track = NoiseTrack(np.random.default_rng([config.seed, 2]), config.noise_rms)
    total = int(round(config.seconds * SAMPLE_RATE))
    deck = _Deck(config.keywords, rng)
    cursor, last_kw_end = 0, -total  # no keyword yet
    while True:
        audio, spans, words, kw_at, speaker = _next_event(rng, speakers, deck, config)
        start = cursor + int(max(rng.uniform(*config.gap_s), config.lead_in_s if cursor == 0 else 0) * SAMPLE_RATE)
        if kw_at is not None:  # keep `keyword_gap_s` of anything-but-keyword between keywords
            start = max(start, int(last_kw_end + config.keyword_gap_s * SAMPLE_RATE) - spans[kw_at][0])
        if start + len(audio) > total - config.tail_s * SAMPLE_RATE:
            break
        if kw_at is not None:
            last_kw_end = start + spans[kw_at][1]
        speech = np.concatenate([np.zeros(start - cursor), audio])
        rows = tuple(TruthRow(w, (start + a) / SAMPLE_RATE, (start + b) / SAMPLE_RATE, speaker.engine, speaker.voice)
                     for w, (a, b) in zip(words, spans))
        yield Block(speech.astype(np.float32), track.take(len(speech)).astype(np.float32), rows)
        cursor = start + len(audio)
    yield Block(np.zeros(total - cursor, np.float32), track.take(total - cursor).astype(np.float32), ())


def _next_event(rng: np.random.Generator, speakers: Sequence[Speaker], deck: _Deck, config: StreamConfig):
    """``(audio, spans, words, keyword index, speaker)`` of the next event; retries other speakers
    when one cannot say a word (some voices are silent on some words)."""
    kinds, weights = zip(*[(k, w) for k, w in config.event_mix if w > 0])
    kind = kinds[rng.choice(len(kinds), p=np.asarray(weights) / sum(weights))]
    words, kw_at = _choose_words(kind, rng, deck, config.text)
    # Only speakers whose engine says every word right (all of espeak-ng's do, so its
    # streams are as they were).
    able = [s for s in speakers if not any(engines.cannot_say(s, w) for w in words)] or speakers
    for _ in range(8):
        speaker = able[rng.integers(len(able))]
        rendered = render_event(words, speaker, rng, config)
        if rendered is not None:
            return rendered[0], rendered[1], words, kw_at, speaker
    raise StreamError(f"no voice among --voices could say {' '.join(words)!r} audibly")


@dataclass(frozen=True)
class StreamSummary:
    """What :func:`write_stream` wrote."""

    wav: Path
    truth: Path
    seconds: float
    words: int
    keywords: int

    def __str__(self) -> str:
        return (f"{self.wav}: {self.seconds:.1f} s, {self.keywords} keywords among {self.words} words; "
                f"truth in {self.truth}")


def write_stream(
    wav_path, truth_path, config: StreamConfig, progress: Callable[[float], None] | None = None
) -> StreamSummary:
    """Write the stream as a 16 kHz mono 16-bit WAV and its truth CSV, block by block.

    Both files appear atomically (temp file, then rename). ``progress`` is called with the
    seconds of audio each block added.
    """
    wav_path, truth_path = Path(wav_path), Path(truth_path)
    config.check()
    check_paths(wav_path, truth_path)
    rows: list[TruthRow] = []
    with _AtomicWav(wav_path) as out:
        for block in iter_blocks(config):
            out.write(block.mixed)
            rows.extend(block.rows)
            if progress:
                progress(len(block.speech) / SAMPLE_RATE)
    write_truth(truth_path, rows)
    n_kw = sum(r.label in config.keywords for r in rows)
    return StreamSummary(wav_path, truth_path, config.seconds, len(rows), n_kw)


def check_paths(*paths) -> None:
    """:class:`StreamError` unless each path can be written as a file (its folder exists)."""
    for p in map(Path, paths):
        if p.is_dir():
            raise StreamError(f"{p}: is a folder; give a file name")
        if not p.parent.is_dir():
            raise StreamError(f"{p.parent}: no such folder")


class _AtomicWav:
    """A 16 kHz mono 16-bit WAV written piece by piece to a temp file, renamed on success."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self._tmp = temp_path(self.path)
        self._file = open(self._tmp, "xb")
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        return self

    def write(self, x: np.ndarray) -> None:
        pcm = np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype("<i2")
        self._wav.writeframes(pcm.tobytes())

    def __exit__(self, exc_type, exc, tb):
        try:
            self._wav.close()  # patches the header's sizes
            self._file.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            Path(self._tmp).unlink(missing_ok=True)
        return False
