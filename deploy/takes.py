"""A user's takes for ``kwspi enroll``: read from a folder or recorded, trimmed, checked.

A take is one word said once. Each is trimmed to its speech with an energy check (frames
within :data:`ACTIVE_DB` of the loudest, plus :data:`PAD_S` either side, at most one model
window around its loudest part) and refused when it is silent (its loudest frame under
:data:`SILENT_DBFS`) or clipped (more than :data:`CLIPPED_SHARE` of its samples at full
scale): a silent take teaches the model silence, a clipped one a distortion it will not hear
again. The room is a recording of the place with nobody speaking; ``_unknown_`` clips are the
user's other speech, which the model must not take for keywords: trimmed of the silence around
it but never cut to one window, since every window of it is a negative (results/enroll.md
measures what it buys in false alarms).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from kwspi import gsc
from kwspi.errors import KwspiError
from kwspi.features import SAMPLE_RATE
from kwspi.wavio import read_wav

#: A take whose loudest 20 ms frame is quieter than this (dB below full scale) is silent.
SILENT_DBFS = -45.0
#: Frames within this many dB of the loudest frame are speech.
ACTIVE_DB = 30.0
#: Seconds kept before the first and after the last speech frame.
PAD_S = 0.1
#: A take with more than this share of its samples at full scale is clipped.
CLIPPED_SHARE = 0.001
FRAME_S = 0.02
#: Seconds recorded per take, of the user's other speech, and of the room, by ``kwspi enroll --record``.
TAKE_S = 2.0
SPEECH_S = 10.0
ROOM_S = 20.0
#: What the user is asked to read for their other speech: no keyword, and none of their
#: sound-alikes, so that every window of it is ``_unknown_``.
READ_ALOUD = "A cup of tea with milk, the paper by the window, and a walk to the shops after lunch."
#: Takes refused in a row before recording gives up on a word.
MAX_RETRIES = 5


class TakeError(KwspiError):
    """Takes that cannot teach a model: a missing or silent take, an unknown keyword."""


@dataclass(frozen=True)
class Takes:
    """What enrollment learns from, all float32 at 16 kHz: ``words`` maps each keyword to its
    trimmed takes; ``room`` is the room without speech (may be empty); ``unknown`` holds the
    user's other words (trimmed)."""

    words: dict[str, tuple[np.ndarray, ...]]
    room: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    unknown: tuple[np.ndarray, ...] = ()

    def counts(self) -> dict[str, int]:
        return {word: len(takes) for word, takes in self.words.items()}


def frame_db(x: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The level of each 20 ms frame of ``x`` in dB below full scale."""
    n = int(FRAME_S * rate)
    frames = np.asarray(x[: len(x) // n * n], np.float64).reshape(-1, n)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def problem(x: np.ndarray, rate: int = SAMPLE_RATE) -> str | None:
    """Why the take ``x`` cannot be used (``"silent ..."``, ``"clipped ..."``), or ``None``."""
    levels = frame_db(x, rate)
    if len(levels) == 0 or levels.max() < SILENT_DBFS:
        peak = levels.max() if len(levels) else -np.inf
        return f"silent (loudest {peak:.0f} dBFS, needs {SILENT_DBFS:.0f})"
    share = np.mean(np.abs(x) >= 0.999)
    if share > CLIPPED_SHARE:
        return f"clipped ({share:.1%} of the samples at full scale): speak further from the microphone"
    return None


def trim(x: np.ndarray, rate: int = SAMPLE_RATE, window_s: float = 1.0) -> np.ndarray:
    """The speech in the take ``x``: its active frames with :data:`PAD_S` around them, cut to
    ``window_s`` around the loudest frame when longer."""
    levels = frame_db(x, rate)
    n = int(FRAME_S * rate)
    active = np.flatnonzero(levels >= levels.max() - ACTIVE_DB)
    pad = int(PAD_S * rate)
    start, end = max(active[0] * n - pad, 0), min((active[-1] + 1) * n + pad, len(x))
    width = int(window_s * rate)
    if end - start > width:  # longer than a window: keep the window around the loudest frame
        centre = int(np.argmax(levels)) * n + n // 2
        start = int(np.clip(centre - width // 2, start, end - width))
        end = start + width
    return np.asarray(x[start:end], np.float32)


def trim_speech(x: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Other speech ``x`` with the silence before and after it trimmed, however long it is."""
    return trim(x, rate, window_s=len(x) / rate)


def checked(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` trimmed, or a one-line :class:`TakeError` naming ``where`` and what is wrong."""
    why = problem(x)
    if why is not None:
        raise TakeError(f"{where}: {why}; record it again")
    return trim(x)


def _read(path: Path) -> np.ndarray:
    from kwspi.deploy.sources import Resampler

    x, rate = read_wav(path)
    return Resampler(rate).process(x, last=True)


def read_takes(folder, labels: Iterable[str]) -> Takes:
    """The takes in ``folder`` (GSC layout: ``WORD/*.wav``, optional ``_background_noise_/``
    and ``_unknown_/``) for a model with ``labels``; a one-line error for a folder without
    keyword folders, a keyword the model does not know, or a silent or clipped take."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TakeError(f"{folder}: no such folder")
    keywords = [lab for lab in labels if lab not in (gsc.SILENCE, gsc.UNKNOWN)]
    found = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_") and any(p.glob("*.wav")))
    unknown = [p.name for p in found if p.name not in keywords]
    if unknown:
        raise TakeError(f"{folder}: the model does not know {', '.join(unknown)} (it knows {', '.join(keywords)})")
    if not found:
        raise TakeError(f"{folder}: no keyword folder with WAV files (expected e.g. {keywords[0]}/*.wav)")
    words = {p.name: tuple(checked(_read(f), str(f)) for f in sorted(p.glob("*.wav"))) for p in found}
    noise = [_read(f) for f in gsc.noise_files(folder)]
    others = []
    for f in sorted((folder / gsc.UNKNOWN).glob("*.wav")):
        x = _read(f)
        if problem(x) is None:  # other speech is optional: a bad clip is left out, not fatal
            others.append(trim_speech(x))
    room = np.concatenate(noise).astype(np.float32) if noise else np.zeros(0, np.float32)
    return Takes(words=words, room=room, unknown=tuple(others))


def take_audio(blocks: Iterator[np.ndarray], seconds: float) -> np.ndarray:
    """The next ``seconds`` of audio from ``blocks`` (16 kHz float32 blocks)."""
    want = int(seconds * SAMPLE_RATE)
    got, n = [], 0
    while n < want:
        block = next(blocks, None)
        if block is None:
            raise TakeError(f"the microphone stopped after {n / SAMPLE_RATE:.1f} s of a {seconds:g} s recording")
        got.append(block)
        n += len(block)
    return np.concatenate(got)[:want].astype(np.float32)


def accepted(blocks: Iterator[np.ndarray], seconds: float, say: Callable[[str], None], prompt: str,
             what: str) -> np.ndarray:
    """``seconds`` of audio after ``prompt``, asked for again while silent or clipped, at most
    :data:`MAX_RETRIES` times in a row."""
    for _ in range(MAX_RETRIES + 1):
        say(prompt)
        x = take_audio(blocks, seconds)
        why = problem(x)
        if why is None:
            return x
        say(f"  that take was {why}; again")
    raise TakeError(f"{MAX_RETRIES + 1} takes of {what} in a row were refused; check the microphone with `kwspi devices`")


def record_takes(source, keywords: Iterable[str], takes: int, say: Callable[[str], None],
                 take_s: float = TAKE_S, speech_s: float = SPEECH_S, room_s: float = ROOM_S) -> Takes:
    """Record ``takes`` takes of each keyword, ``speech_s`` of the user's other speech (0:
    none) and ``room_s`` of the room from ``source`` (anything with ``blocks(stop)``, such as
    :class:`~kwspi.deploy.mic.MicSource`).

    ``say(text)`` shows the user a prompt. A take that is silent or clipped is asked for
    again, at most :data:`MAX_RETRIES` times in a row.
    """
    stop = threading.Event()
    blocks = source.blocks(stop)
    try:
        words = {word: tuple(trim(accepted(blocks, take_s, say, f"say '{word}' ({i + 1} of {takes})", f"'{word}'"))
                             for i in range(takes))
                 for word in keywords}
        speech = ()
        if speech_s > 0:
            said = accepted(blocks, speech_s, say, f"now talk for {speech_s:g} s, anything but the keywords; "
                            f"for example, read aloud: \"{READ_ALOUD}\"", "other speech")
            speech = (trim_speech(said),)
        say(f"now quiet, please: recording {room_s:g} s of the room")
        room = take_audio(blocks, room_s)
    finally:
        stop.set()
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
    return Takes(words=words, room=room, unknown=speech)
