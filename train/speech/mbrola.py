"""MBROLA through espeak-ng (:mod:`.engines`): 20 English-speaking diphone voices recorded
from people, 4 native (``mb-en1``, ``mb-us1``..``3``) and 16 accented (``mb-de1-en`` ...).

espeak-ng drives MBROLA when ``-v`` names an ``mb-*`` voice and nothing else: adding a
variant (``mb-us1+f3``) silently switches it back to its own formant voice, at 22,050 Hz.
So an MBROLA speaker never has a variant; speakers differ by voice, speed and pitch.
espeak-ng lists these voices whether or not MBROLA and the voice's data are installed (then
it speaks nothing), so only voices that produce audio are offered.
"""

from __future__ import annotations

import functools
import shutil
from typing import Sequence

from kwspi.train.speech import engines, espeak
from kwspi.train.speech.engines import Speaker, SynthError

SPEEDS = espeak.SPEEDS
PITCHES = espeak.PITCHES
SPEED_FLOOR = espeak.SPEED_FLOOR
PITCH_BOUNDS = espeak.PITCH_BOUNDS
# What a recogniser heard instead, at the slowest, middle and fastest speed (pitch 50), with
# `python bench/check_keywords.py --engines mbrola` (pocketsphinx, the 35 GSC words; "-" is
# nothing). Left out: heard wrong at all three. mb-us3's "on" and "off" are near-silent
# (0.04 s of audible speech), as issue 11 found; the accented voices lack some English
# diphones. The native US voices mb-us1 and mb-us2 were heard right on every keyword.
CANNOT_SAY: dict[str, frozenset[str]] = {
    "mb-af1-en": frozenset({"no", "down", "right", "go"}),  # eight/bed/bed no/go/up nine x3 bird/bird/learn
    "mb-de1-en": frozenset({"no", "down", "on"}),  # go x3, follow/one/up, one x3
    "mb-de2-en": frozenset({"no"}),  # on/on/go
    "mb-de3-en": frozenset({"yes", "stop", "go"}),  # left/no/off, two/up/up, learn x3
    "mb-de5-en": frozenset({"up"}),  # eight x3
    "mb-en1": frozenset({"stop"}),  # dog x3
    "mb-fr1-en": frozenset({"down", "right", "on"}),  # go x3, eight/on/on, one x3
    "mb-gr2-en": frozenset({"no"}),  # go x3
    "mb-hu1-en": frozenset({"down"}),  # go x3
    "mb-nl2-en": frozenset({"down"}),  # dog x3
    "mb-ro1-en": frozenset({"down", "on"}),  # go x3, one x3
    "mb-sw1-en": frozenset({"no"}),  # go/on/on
    "mb-us3": frozenset({"on", "off"}),  # -/-/- both
}


def unavailable() -> str | None:
    if shutil.which("mbrola") is None:
        return "mbrola is not installed (Debian contrib: apt-get install mbrola mbrola-us1 ...)"
    if not list_voice_names():
        return "no MBROLA voice that speaks English is installed (Debian non-free: apt-get install mbrola-us1 ...)"
    return None


@functools.lru_cache(maxsize=None)
def list_voice_names() -> tuple[str, ...]:
    """The MBROLA voices espeak-ng lists for English that produce audio here, sorted."""
    if espeak.unavailable() is not None:
        return ()
    return tuple(v.name for v in espeak.list_voices(include_mbrola=True) if v.is_mbrola)


def make_speakers(
    n: int, seed: int = 0, voices: Sequence[str] | None = None, exclude: Sequence[str] = (), limit: bool = False
) -> list[Speaker]:
    """``n`` distinct MBROLA speakers (no variant: see the module doc), dealt over the voices."""
    return engines.engine_speakers("mbrola", n, seed, voices, exclude, limit)


def speak(text: str, speaker: Speaker, *, speed: int | None = None, pitch: int | None = None):
    """``text`` spoken by MBROLA through espeak-ng, float32 at 16 kHz."""
    _check_no_variant(speaker)
    return espeak.speak(text, speaker, speed=speed, pitch=pitch)


def _check_no_variant(speaker: Speaker) -> None:
    if speaker.variant:
        raise SynthError(f"MBROLA voice {speaker.voice} given variant {speaker.variant!r}: espeak-ng would "
                         f"speak its formant voice instead")


def speak_timed(text: str, speaker: Speaker, *, speed: int | None = None, pitch: int | None = None):
    """``text`` spoken in one go with the sample where each word starts (MBROLA's phoneme
    events, :mod:`.espeaklib`)."""
    _check_no_variant(speaker)
    return espeak.speak_timed(text, speaker, speed=speed, pitch=pitch)


timed_unavailable = espeak.timed_unavailable


def native_rate(voice: str) -> int:
    """The sample rate espeak-ng writes for ``voice`` before resampling: the MBROLA
    database's own (16 kHz for most; 22,050 Hz is also espeak-ng's formant rate)."""
    data = espeak._run_espeak(["-v", voice, "--stdout"], stdin=b"yes")
    return int.from_bytes(data[24:28], "little")
