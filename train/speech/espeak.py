"""espeak-ng, the training voices' first engine (:mod:`.engines`): its voices, variants and speakers.

A *speaker* is one espeak-ng voice, optionally with a variant (``en-us+f3``), at one
speed (words per minute) and pitch (0–99). Its id is the first 8 hex digits of the SHA-1
of ``"voice+variant/speed/pitch"``, so the GSC hash rule (:func:`kwspi.gsc.which_set`)
puts all of a speaker's clips in one split and test speakers are never heard in training.
MBROLA voices (``mb-*``) also speak through espeak-ng, but are their own engine
(:mod:`.mbrola`): this one never offers them, so its voices do not depend on what else
is installed.

- :func:`list_voices`, :func:`list_variants`: what the installed espeak-ng can speak;
- :class:`Speaker`, :func:`make_speakers`: seeded, balanced sets of speakers;
- :func:`speak`: any text (a word or a sentence) as float32 audio at 16 kHz.
"""

from __future__ import annotations

import difflib
import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soxr

from kwspi.features import SAMPLE_RATE
from kwspi.train.speech import espeaklib
from kwspi.train.speech.engines import Speaker, SynthError, key
from kwspi.wavio import read_wav_bytes_lenient

__all__ = ["Speaker", "SynthError", "key"]  # re-exported: where they lived before .engines

ESPEAK = "espeak-ng"
SPEEDS = (120, 200)  # words per minute
PITCHES = (25, 75)  # espeak-ng's 0..99 scale
MBROLA_FAMILY = "mbrola"
SPEED_FLOOR = 80  # espeak-ng's slowest rate
PITCH_BOUNDS = (0, 99)
CANNOT_SAY: dict[str, frozenset[str]] = {}


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice: ``name`` is what ``-v`` takes (``en-us``, ``mb-us1``)."""

    name: str
    language: str
    gender: str
    file: str

    @property
    def is_mbrola(self) -> bool:
        return Path(self.file).name.startswith("mb-")

    @property
    def family(self) -> str:
        """The base voice, or ``"mbrola"`` for every mbrola voice (held out together)."""
        return MBROLA_FAMILY if self.is_mbrola else self.name


DEFAULT_SPEAKER = Speaker("en-us", "", 160, 50)


# --- what espeak-ng offers ------------------------------------------------------------


def unavailable() -> str | None:
    """``None`` when espeak-ng runs here, else why not (the engine interface)."""
    return None if shutil.which(ESPEAK) else "espeak-ng is not installed (apt-get install espeak-ng)"


def list_voice_names() -> tuple[str, ...]:
    """The English espeak-ng voices, MBROLA's left out (the engine interface)."""
    return tuple(v.name for v in list_voices())


def espeak_version() -> str:
    """The installed espeak-ng's version line; :class:`SynthError` if there is none."""
    return _run_espeak(["--version"]).decode("utf-8", "replace").strip()


@functools.lru_cache(maxsize=None)
def list_voices(include_mbrola: bool = False) -> tuple[Voice, ...]:
    """English voices, sorted by name; with ``include_mbrola``, also the mbrola ones that
    actually produce audio (for :mod:`.mbrola`).

    espeak-ng lists mbrola voices whether or not mbrola and its voice data are installed,
    and speaks nothing (exit status 0) when they are not, so each is probed once.
    """
    voices = {}
    for row in _parse_voice_table(_run_espeak(["--voices=en"]).decode("utf-8", "replace")):
        _, language, gender, _, file = row
        if file.startswith("!v/"):
            continue  # a variant that declares a language (``Storm``), not a voice
        base = Path(file).name
        v = Voice(base if base.startswith("mb-") else language.lower(), language, gender, file)
        voices.setdefault(v.name, v)
    out = [v for v in voices.values() if not v.is_mbrola or (include_mbrola and _speaks(v.name))]
    return tuple(sorted(out, key=lambda v: v.name))


@functools.lru_cache(maxsize=None)
def list_variants() -> tuple[str, ...]:
    """Variant names ``+NAME`` accepts, sorted; names with a space (``Mr serious``) left out.

    espeak-ng silently ignores an unknown variant, so this list is the only check there is.
    """
    rows = _parse_voice_table(_run_espeak(["--voices=variant"]).decode("utf-8", "replace"))
    names = {row[4][len("!v/"):] for row in rows if row[4].startswith("!v/")}
    return tuple(sorted(n for n in names if n and " " not in n))


def _parse_voice_table(text: str) -> list[tuple[str, str, str, str, str]]:
    """Rows of ``espeak-ng --voices`` as (priority, language, age/gender, name, file).

    The columns are not fixed-width (long names push the rest right) and the file may
    contain a space (``!v/Mr serious``), so: four single tokens, then the file up to the
    ``(lang priority)`` groups.
    """
    rows = []
    for line in text.splitlines()[1:]:
        parts = line.split(None, 4)
        if len(parts) < 5:
            continue
        file = re.sub(r"\s+(\([^)]*\)\s*)+$", "", parts[4]).strip()
        rows.append((parts[0], parts[1], parts[2], parts[3], file))
    return rows


@functools.lru_cache(maxsize=None)
def _speaks(voice: str) -> bool:
    try:
        audio = speak("test", Speaker(voice))
    except SynthError:
        return False
    return audio.size > 0 and float(np.max(np.abs(audio))) > 1e-3


# --- speakers -------------------------------------------------------------------------


def make_speakers(
    n: int,
    seed: int = 0,
    voices: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    exclude_voices: Sequence[str] = (),
    speeds: tuple[int, int] = SPEEDS,
    pitches: tuple[int, int] = PITCHES,
) -> list[Speaker]:
    """``n`` distinct speakers, spread evenly over the voices.

    Parameters
    ----------
    n : int
        Number of speakers.
    seed : int
        Speaker ``i`` depends only on ``seed``, ``i`` and the voice and variant lists, so
        the speakers for ``n`` are the first ``n`` of those for any larger ``n``.
    voices, variants : sequence of str, optional
        Names to use (default: every English espeak-ng voice, MBROLA's not among them;
        every variant plus none). ``""`` or ``"none"`` in ``variants`` means the voice
        without a variant. Unknown names and MBROLA voices raise :class:`SynthError`.
    exclude_voices : sequence of str
        Voice names to leave out (``"mbrola"`` is accepted and changes nothing).
    speeds, pitches : (int, int)
        Inclusive ranges, in words per minute and on espeak-ng's 0–99 pitch scale.
    """
    voice_names = resolve_voices(voices, exclude_voices)
    variant_names = resolve_variants(variants)
    # Each voice walks its own seeded shuffle of the variants; once every variant has been
    # used the walk starts over with fresh speeds and pitches.
    orders = {v: np.random.default_rng([seed, key(v)]).permutation(len(variant_names)) for v in voice_names}
    speakers, seen = [], set()
    for i in range(50 * (n + len(voice_names) * len(variant_names))):
        if len(speakers) == n:
            return speakers
        voice = voice_names[i % len(voice_names)]
        cycle, rank = divmod(i // len(voice_names), len(variant_names))
        rng = np.random.default_rng([seed, key(voice), cycle, rank])
        spk = Speaker(
            voice,
            variant_names[orders[voice][rank]],
            int(rng.integers(speeds[0], speeds[1] + 1)),
            int(rng.integers(pitches[0], pitches[1] + 1)),
        )
        if spk.id not in seen:
            seen.add(spk.id)
            speakers.append(spk)
    raise SynthError(f"cannot make {n} distinct speakers from these voices, variants, speeds and pitches")


def resolve_voices(voices: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> list[str]:
    """Check voice names against :func:`list_voices`; return the ones to use, sorted."""
    available = {v.name for v in list_voices()}
    mbrola = _listed_mbrola_voices()
    for name in voices or ():
        if name in mbrola:
            raise SynthError(f"voice {name!r} is an MBROLA voice: give --engines mbrola (make voices installs it)")
    # Excluding an MBROLA voice, or all of them, is harmless here: this engine has none.
    for name in list(voices or ()) + [x for x in exclude if x != MBROLA_FAMILY and x not in mbrola]:
        if name not in available:
            raise SynthError(
                f"unknown espeak-ng voice {name!r}; English voices here: {', '.join(sorted(available))}"
            )
    chosen = sorted(set(voices) if voices else available)
    chosen = [v for v in chosen if v not in exclude]
    if not chosen:
        raise SynthError("no voices left to speak with after --voices/--exclude-voices")
    return chosen


def resolve_variants(variants: Sequence[str] | None = None) -> list[str]:
    """Check variant names against :func:`list_variants`; ``""`` stands for no variant."""
    available = list_variants()
    if variants is None:
        return [""] + list(available)
    out = []
    for name in variants:
        name = "" if name in ("", "none") else name
        if name and name not in available:
            lower = {v.lower(): v for v in available}
            close = [lower[c] for c in difflib.get_close_matches(name.lower(), lower, n=3)]
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise SynthError(
                f"unknown espeak-ng variant {name!r}; {hint}names are case-sensitive, "
                f"see the File column of `espeak-ng --voices=variant` (after '!v/')"
            )
        if name not in out:
            out.append(name)
    if not out:
        raise SynthError("--variants is empty")
    return out


@functools.lru_cache(maxsize=None)
def _listed_mbrola_voices() -> frozenset[str]:
    """mbrola voices espeak-ng lists, whether or not they can speak."""
    rows = _parse_voice_table(_run_espeak(["--voices=en"]).decode("utf-8", "replace"))
    return frozenset(Path(r[4]).name for r in rows if Path(r[4]).name.startswith("mb-"))


def speak(
    text: str,
    speaker: Speaker = DEFAULT_SPEAKER,
    *,
    speed: int | None = None,
    pitch: int | None = None,
    rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Speak ``text`` (a word or whole sentences) and return float32 mono audio at ``rate`` Hz.

    The level is espeak-ng's own (peaks up to about 1; soxr can overshoot slightly), with
    espeak-ng's leading and trailing silence kept. ``speed`` (words per minute) and
    ``pitch`` (0–99) override the speaker's for this call.
    """
    args = [
        "-v", speaker.espeak_voice,
        "-s", str(speaker.speed if speed is None else speed),
        "-p", str(speaker.pitch if pitch is None else pitch),
        "--stdout",
    ]
    # Text goes in on stdin so that text starting with "-" is never read as an option.
    data = _run_espeak(args, stdin=text.encode("utf-8"))
    if len(data) <= 44:
        return np.zeros(0, np.float32)
    x, src_rate = read_wav_bytes_lenient(data)
    if src_rate != rate and x.size:
        x = soxr.resample(x, src_rate, rate)
    return np.ascontiguousarray(x, dtype=np.float32)


def speak_timed(text: str, speaker: Speaker, *, speed: int | None = None,
                pitch: int | None = None) -> tuple[np.ndarray, list[int]]:
    """``text`` spoken in one go with the sample where each word starts
    (:func:`kwspi.train.speech.espeaklib.speak_timed`)."""
    return espeaklib.speak_timed(text, speaker, speed=speed, pitch=pitch)


def timed_unavailable() -> str | None:
    """Why :func:`speak_timed` cannot run here, or ``None``."""
    return espeaklib.unavailable()


def _run_espeak(args: list[str], stdin: bytes | None = None) -> bytes:
    """Run espeak-ng and return its stdout; :class:`SynthError` if it is missing or fails."""
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise SynthError("espeak-ng is not installed (Debian/Ubuntu/Raspberry Pi OS: sudo apt-get install espeak-ng)")
    proc = subprocess.run([exe, *args], input=stdin if stdin is not None else b"", capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SynthError(f"espeak-ng {' '.join(args[:2])} failed: {err[-1] if err else f'exit status {proc.returncode}'}")
    return proc.stdout
