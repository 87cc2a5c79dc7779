"""Keyword-in-context clips: one-second windows cut from connected speech, in GSC's layout.

A keyword said alone starts and ends in silence; in a stream it comes between other words,
run into them. These clips teach that case (issue 12): each keyword's folder gets windows
of a phrase said in one go (:mod:`.phrases`) with words before and after the keyword
(:data:`~kwspi.train.speech.texts.CONTEXT_BEFORE` / ``CONTEXT_AFTER``), the whole keyword
inside the window at a random position, its neighbours cut where the window ends; the
folder :data:`NEGATIVE_FOLDER` gets windows cut from keyword-free sentences
(``CONTEXT_SENTENCES``), which training reads as ``_unknown_`` as it does any folder that is
not a keyword (a folder named ``_unknown_`` would be skipped: GSC's loader ignores folders
starting with ``_``).

Clips are ``<speaker>_nohash_c<n>.wav``, so they sit beside ``kwspi synth``'s
``_nohash_<n>`` clips of the same speakers without a clash, and GSC's hash on the speaker puts
a speaker's every clip in one split. ``speakers.csv`` is written as ``kwspi synth`` writes
it, so the leave-one-engine-out folds work on these clips too. Every clip's randomness comes
from a generator seeded by ``(seed, speaker, folder, n)``: the same seed gives the same files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kwspi import gsc
from kwspi.train.speech import engines, noise, phrases, synth
from kwspi.train.speech.catalogue import write_speakers_csv, write_split_lists
from kwspi.train.speech.engines import Speaker, SynthError
from kwspi.train.speech.synth import CLIP_SAMPLES, PEAK, SynthConfig, SynthSummary
from kwspi.train.speech.texts import CONTEXT_AFTER, CONTEXT_BEFORE, CONTEXT_SENTENCES

#: Where the windows of keyword-free speech go: any folder that is not a keyword is unknown.
NEGATIVE_FOLDER = "no_keyword"


@dataclass(frozen=True)
class ContextConfig:
    """A keyword-in-context data set: ``voices`` says who speaks and which keywords (its
    ``words``), how many clips of each per speaker (``repeats``) and the clip style."""

    voices: SynthConfig = field(default_factory=lambda: SynthConfig(words=gsc.KEYWORDS))
    negatives: int = 10  # windows of keyword-free speech per speaker
    margin_s: float = 0.03  # the keyword stays this far inside the window
    alone_p: float = 0.25  # chance that the keyword has no word before it (and, apart, none after)
    method: str | None = None  # phrase timing method (None: the engine's best, phrases.method_of)


@dataclass(frozen=True)
class ContextClip:
    """A window: its samples and the words in it, as ``(word, start, end)`` samples in the
    window, cut at its edges (a word the window cuts keeps only its part inside)."""

    audio: np.ndarray
    rows: tuple[tuple[str, int, int], ...]


def keyword_words(keyword: str, rng: np.random.Generator, alone_p: float) -> tuple[list[str], int]:
    """The words of a keyword phrase and the keyword's index: seeded context before and
    after, each left out with chance ``alone_p`` (never both)."""
    before = [] if rng.uniform() < alone_p else str(rng.choice(CONTEXT_BEFORE)).split()
    after = [] if rng.uniform() < alone_p and before else str(rng.choice(CONTEXT_AFTER)).split()
    return before + [keyword] + after, len(before)


def cut(phrase: phrases.Phrase, start: int, rng: np.random.Generator, style: synth.ClipStyle,
        gain_db: float, floor_db: float) -> ContextClip:
    """The window ``[start, start + 1 s)`` of ``phrase`` (silence where it runs past the
    audio), peak-levelled to :data:`PEAK` less ``gain_db`` and laid over a faint noise floor."""
    audio = np.asarray(phrase.audio, np.float64)
    window = np.zeros(CLIP_SAMPLES)
    lo, hi = max(0, start), min(len(audio), start + CLIP_SAMPLES)
    if hi > lo:
        window[lo - start:hi - start] = audio[lo:hi]
    peak = float(np.max(np.abs(window)))
    if peak > 0:
        window *= PEAK * 10.0 ** (gain_db / 20.0) / peak
    window += 10.0 ** (floor_db / 20.0) * rng.standard_normal(CLIP_SAMPLES)
    rows = tuple((w, max(0, s - start), min(CLIP_SAMPLES, e - start)) for w, (s, e) in zip(phrase.words, phrase.spans)
                 if e > start and s < start + CLIP_SAMPLES)
    return ContextClip(np.clip(window, -1.0, 1.0).astype(np.float32), rows)


def _spoken(words, speaker: Speaker, rng: np.random.Generator, config: ContextConfig) -> phrases.Phrase | None:
    style = config.voices.style
    speed, pitch = engines.jittered(
        speaker,
        speaker.speed * (1.0 + rng.uniform(-style.speed_jitter, style.speed_jitter)),
        speaker.pitch + rng.integers(-style.pitch_jitter, style.pitch_jitter + 1),
    )
    return phrases.speak_phrase(words, speaker, rng, speed=speed, pitch=pitch, method=config.method)


def positive_clip(keyword: str, speaker: Speaker, rng: np.random.Generator,
                  config: ContextConfig) -> tuple[ContextClip | None, str]:
    """A window holding the whole keyword, said in a phrase: ``(clip, "ok")`` or
    ``(None, "silent" | "too_long")``."""
    style = config.voices.style
    words, at = keyword_words(keyword, rng, config.alone_p)
    gain, floor, place = rng.uniform(*style.gain_db), rng.uniform(*style.noise_floor_db), rng.uniform()
    phrase = _spoken(words, speaker, rng, config)
    if phrase is None:
        return None, "silent"
    s, e = phrase.spans[at]
    margin = int(config.margin_s * synth.SAMPLE_RATE)
    room = CLIP_SAMPLES - 2 * margin - (e - s)
    if room < 0:
        return None, "too_long"
    # Any position that keeps the keyword `margin` inside the window, uniformly.
    start = s - margin - int(place * room)
    return cut(phrase, start, rng, style, gain, floor), "ok"


def negative_clip(speaker: Speaker, rng: np.random.Generator, config: ContextConfig) -> tuple[ContextClip | None, str]:
    """A window cut from a keyword-free sentence, mostly speech: ``(clip, "ok")`` or
    ``(None, "silent")``."""
    style = config.voices.style
    words = str(rng.choice(CONTEXT_SENTENCES)).split()
    gain, floor, place = rng.uniform(*style.gain_db), rng.uniform(*style.noise_floor_db), rng.uniform()
    phrase = _spoken(words, speaker, rng, config)
    if phrase is None:
        return None, "silent"
    first, last = phrase.spans[0][0], phrase.spans[-1][1]
    lo = first - CLIP_SAMPLES // 5  # at most a fifth of the window before the speech ...
    hi = max(lo, last - 4 * CLIP_SAMPLES // 5)  # ... or after it
    return cut(phrase, lo + int(place * (hi - lo)), rng, style, gain, floor), "ok"


def check_keywords(words) -> tuple[str, ...]:
    """:func:`kwspi.train.speech.synth.check_words`, single words only (a phrase has no
    one keyword span to keep whole), none named :data:`NEGATIVE_FOLDER`."""
    keywords = synth.check_words(words)
    for k in keywords:
        if " " in k or k == NEGATIVE_FOLDER:
            raise SynthError(f"keyword {k!r}: keyword-in-context clips take single words, not {NEGATIVE_FOLDER}")
    return keywords


def synthesize_context(out_dir, config: ContextConfig = ContextConfig(), jobs: int | None = None,
                       progress: Callable[[int], None] | None = None) -> SynthSummary:
    """Write (or complete) a GSC-layout folder of keyword-in-context clips under ``out_dir``.

    ``repeats`` windows per speaker and keyword in the keyword's folder and
    ``config.negatives`` per speaker in :data:`NEGATIVE_FOLDER`; background noise, the split
    lists and ``speakers.csv`` as :func:`kwspi.train.speech.synth.synthesize_dataset` writes
    them. Clips already there are kept; ``progress`` is called with clips finished.
    """
    t0 = time.monotonic()
    voices = config.voices
    keywords = check_keywords(voices.words)
    out = synth._prepare_out_dir(out_dir)
    speakers = synth.make_speakers(voices)
    summary = SynthSummary(speakers=len(speakers), words=len(keywords))
    groups = [(kw, voices.repeats) for kw in keywords] + [(NEGATIVE_FOLDER, config.negatives)]
    todo = synth.plan(out, speakers, groups, summary, progress, suffix="c")

    def render(item):
        _, spk, folder, n = item
        rng = synth.clip_rng(voices.seed, spk, f"context:{folder}", n)
        clip, status = (negative_clip(spk, rng, config) if folder == NEGATIVE_FOLDER
                        else positive_clip(folder, spk, rng, config))
        return (clip.audio if clip else None), status

    synth.run_jobs(todo, render, jobs, summary, progress)
    noise.write_noise_folder(out / gsc.BACKGROUND_NOISE_DIR, voices.seed, voices.noise_seconds)
    write_split_lists(out)
    write_speakers_csv(out, speakers)
    summary.seconds = time.monotonic() - t0
    return summary
