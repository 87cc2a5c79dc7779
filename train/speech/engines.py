"""Voice engines behind one interface: a registry of names, speakers, and speaking.

An *engine* is a module beside this one (:mod:`.espeak`, :mod:`.mbrola`, :mod:`.rhvoice`,
:mod:`.piper`, :mod:`.kokoro`) with the same shape:

- ``unavailable() -> str | None``: why it cannot speak here (not installed), or ``None``;
- ``list_voice_names() -> tuple[str, ...]``: the voices it offers, sorted;
- ``make_speakers(n, seed, voices=None, exclude=()) -> list[Speaker]``: seeded, distinct;
- ``speak(text, speaker, *, speed=None, pitch=None) -> float32`` mono at ``SAMPLE_RATE``;
- ``SPEED_FLOOR`` and ``PITCH_BOUNDS``: how far a clip's jitter may move speed and pitch;
- ``CANNOT_SAY``: ``{voice or "*": words}`` it says wrongly or not at all, with the evidence.

Engines are imported only when used, so a missing optional package costs nothing until an
engine is asked for, and then one log line. ``python -m kwspi.train.speech.engines`` says
which engines speak here.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Iterable, Sequence

import numpy as np

from kwspi.errors import KwspiError

log = logging.getLogger(__name__)

#: Engine name -> module; the order is the order speakers are dealt in.
ENGINES = {
    "espeak": "kwspi.train.speech.espeak",
    "mbrola": "kwspi.train.speech.mbrola",
    "rhvoice": "kwspi.train.speech.rhvoice",
    "piper": "kwspi.train.speech.piper",
    "kokoro": "kwspi.train.speech.kokoro",
}
DEFAULT_ENGINES = ("espeak",)
#: Engines whose voices come from recordings of people (diphones, units, or neural nets trained
#: on them): the ones ``kwspi synth --transforms`` makes new speakers from. espeak-ng's formant
#: voices are left out by default: they are the narrow span the transforms are meant to widen.
RECORDED = ("mbrola", "rhvoice", "piper", "kokoro")
# Engines that speak through espeak-ng's -v: their speaker ids keep espeak-ng's form.
_ESPEAK_FORM = ("espeak", "mbrola")


class SynthError(KwspiError):
    """An engine is missing, or a voice, variant or word cannot be used."""


@dataclass(frozen=True)
class Speaker:
    """One voice of one engine at one speed and pitch, optionally transformed.

    ``speed`` and ``pitch`` are in the engine's units: espeak-ng and MBROLA take words per
    minute and 0–99, the others percent of the voice's natural rate and pitch.
    ``variant`` is espeak-ng's (``""`` for none); ``transform`` names a change made to the
    audio afterwards (``""`` for none).
    """

    voice: str
    variant: str = ""
    speed: int = 160
    pitch: int = 50
    engine: str = "espeak"
    transform: str = ""

    @property
    def espeak_voice(self) -> str:
        """espeak-ng's ``-v`` argument: ``voice`` or ``voice+variant``."""
        return f"{self.voice}+{self.variant}" if self.variant else self.voice

    @property
    def canonical(self) -> str:
        # espeak-ng's and MBROLA's speakers keep the form they always had, so their ids,
        # and with them the GSC hash split of existing data sets, do not move.
        head = self.espeak_voice if self.engine in _ESPEAK_FORM else f"{self.engine}:{self.espeak_voice}"
        return f"{head}/{self.speed}/{self.pitch}" + (f"/{self.transform}" if self.transform else "")

    @property
    def id(self) -> str:
        """8 hex digits: the GSC file-name prefix, and what the split hash sees."""
        return hashlib.sha1(self.canonical.encode("utf-8")).hexdigest()[:8]

    @property
    def family(self) -> str:
        """What is held out together: an espeak-ng voice, or a whole other engine."""
        if self.engine == "espeak" and not self.voice.startswith("mb-"):
            return self.voice
        return "mbrola" if self.voice.startswith("mb-") else self.engine


def key(text: str) -> int:
    # A stable integer per string for seeding: Python's hash() is salted per process.
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:16], 16)


# --- the registry ---------------------------------------------------------------------


def module(name: str) -> ModuleType:
    """The engine module called ``name``; :class:`SynthError` for an unknown name."""
    if name not in ENGINES:
        raise SynthError(f"unknown voice engine {name!r}; engines: {', '.join(ENGINES)}")
    return importlib.import_module(ENGINES[name])


def parse_engines(names: Iterable[str] | None) -> tuple[str, ...]:
    """Known engine names, de-duplicated, in the order given (default: espeak-ng only);
    ``all`` stands for every engine."""
    out = []
    for n in names or DEFAULT_ENGINES:
        n = n.strip().lower()
        for name in ENGINES if n == "all" else (n,):
            if name not in ENGINES:
                raise SynthError(f"unknown voice engine {name!r}; engines: {', '.join(ENGINES)} (or all)")
            if name not in out:
                out.append(name)
    if not out:
        raise SynthError("--engines is empty")
    return tuple(out)


@functools.lru_cache(maxsize=None)
def why_unavailable(name: str) -> str | None:
    """Why engine ``name`` cannot speak here, or ``None`` when it can."""
    try:
        return module(name).unavailable()
    except ImportError as e:  # an optional package the engine module itself imports
        return f"{e.name or e} is not installed"


def usable(names: Sequence[str]) -> tuple[str, ...]:
    """The engines among ``names`` that can speak here; one log line for each that cannot.

    :class:`SynthError` when none can.
    """
    names = parse_engines(names)
    ok = []
    for n in names:
        reason = why_unavailable(n)
        if reason is None:
            ok.append(n)
        else:
            _skip_once(n, reason)
    if not ok:
        raise SynthError(f"no voice engine can speak here ({'; '.join(f'{n}: {why_unavailable(n)}' for n in names)})")
    return tuple(ok)


@functools.lru_cache(maxsize=None)
def _skip_once(name: str, reason: str) -> None:
    log.warning("voice engine %s skipped: %s; `make voices` installs it", name, reason)


# --- speakers and speech --------------------------------------------------------------


def make_speakers(
    n: int,
    seed: int = 0,
    engines: Sequence[str] | None = None,
    voices: Sequence[str] | None = None,
    exclude_voices: Sequence[str] = (),
    **espeak_options,
) -> list[Speaker]:
    """``n`` distinct speakers dealt round-robin over the usable ``engines``.

    Speaker ``i`` depends only on ``seed``, ``i`` and the engines, so the speakers for ``n``
    are the first ``n`` of those for any larger ``n``; an engine with no distinct speaker
    left drops out of the deal. ``voices`` and ``exclude_voices`` are names of any engine's
    voices; each engine takes its own. ``espeak_options`` (variants, speeds, pitches) go to
    espeak-ng. With espeak-ng alone this is :func:`kwspi.train.speech.espeak.make_speakers`.
    """
    names = usable(engines)
    if names == ("espeak",):
        return module("espeak").make_speakers(n, seed, voices, exclude_voices=exclude_voices, **espeak_options)
    _check_excluded(names, exclude_voices)
    names = tuple(k for k in names if k not in exclude_voices)  # a whole engine left out
    if not names:
        raise SynthError("no voice engine left after --exclude-voices")
    own = _split_voices(names, voices)
    pools = {}
    for name in names:
        if voices is not None and not own[name]:
            continue
        chosen = own[name] if voices is not None else None
        # Each engine makes as many as it might be dealt; fewer if it has fewer distinct ones.
        if name == "espeak":
            theirs = [x for x in exclude_voices if x in module(name).list_voice_names()]
            pools[name] = module(name).make_speakers(n, seed, chosen, exclude_voices=theirs, **espeak_options)
        else:
            pools[name] = module(name).make_speakers(n, seed, chosen, exclude=tuple(exclude_voices), limit=True)
    out, at = [], {k: 0 for k in pools}
    while len(out) < n and any(at[k] < len(pools[k]) for k in pools):
        for k in pools:
            if len(out) < n and at[k] < len(pools[k]):
                out.append(pools[k][at[k]])
                at[k] += 1
    if len(out) < n:
        raise SynthError(f"cannot make {n} distinct speakers from engines {', '.join(pools)}: at most {len(out)}")
    return out


def _split_voices(names: Sequence[str], voices: Sequence[str] | None) -> dict[str, list[str]]:
    """``voices`` grouped by the engine (among ``names``) that offers each."""
    own = {k: [] for k in names}
    for v in voices or ():
        owner = next((k for k in names if v in module(k).list_voice_names()), None)
        if owner is None:
            offered = sorted({x for k in names for x in module(k).list_voice_names()})
            raise SynthError(f"unknown voice {v!r} for engines {', '.join(names)}; voices: {', '.join(offered)}")
        own[owner].append(v)
    return own


def _check_excluded(names: Sequence[str], exclude: Sequence[str]) -> None:
    """:class:`SynthError` for a name in ``exclude`` that is no engine and no voice of one
    (MBROLA's listed voices count even where they are not installed: leaving one out is
    harmless, and a script may run on machines with and without it)."""
    known = set(ENGINES) | {v for k in names for v in module(k).list_voice_names()}
    known |= module("espeak")._listed_mbrola_voices() if "espeak" in names or "mbrola" in names else set()
    for x in exclude:
        if x not in known:
            raise SynthError(f"--exclude-voices: {x!r} is no voice of engines {', '.join(names)} and no engine")


def speak(text: str, speaker: Speaker, *, speed: int | None = None, pitch: int | None = None) -> np.ndarray:
    """``text`` in ``speaker``'s voice as float32 mono at 16 kHz (its engine's own level).

    A transformed speaker's base voice speaks (so an engine's cache serves both), then its
    transform (:mod:`kwspi.train.speech.transforms`) runs on the audio.
    """
    if not speaker.transform:
        return module(speaker.engine).speak(text, speaker, speed=speed, pitch=pitch)
    from kwspi.train.speech import transforms  # pyworld and pyroomacoustics only when asked for

    base = dataclasses.replace(speaker, transform="")
    return transforms.apply_padded(speaker.transform, module(speaker.engine).speak(text, base, speed=speed, pitch=pitch))


def cannot_say(speaker: Speaker, word: str) -> bool:
    """True where the speaker's engine is known to say ``word`` wrongly or not at all."""
    table = module(speaker.engine).CANNOT_SAY
    return word in table.get("*", ()) or word in table.get(speaker.voice, ())


def jittered(speaker: Speaker, speed: float, pitch: int) -> tuple[int, int]:
    """A clip's jittered speed and pitch, kept inside what the speaker's engine accepts."""
    mod = module(speaker.engine)
    lo, hi = mod.PITCH_BOUNDS
    return max(mod.SPEED_FLOOR, round(speed)), int(np.clip(pitch, lo, hi))


def seeded_speakers(
    engine: str, voices: Sequence[str], n: int, seed: int, speeds: tuple[int, int], pitches: tuple[int, int],
    limit: bool = False,
) -> list[Speaker]:
    """``n`` distinct speakers of ``engine`` dealt over ``voices``, each at a seeded speed and
    pitch drawn from the inclusive ranges; with ``limit``, fewer when that many cannot be
    distinct (half the speed x pitch grid per voice, so the draw never searches long)."""
    if not voices:
        raise SynthError(f"no {engine} voices left to speak with after --voices/--exclude-voices")
    grid = (speeds[1] - speeds[0] + 1) * (pitches[1] - pitches[0] + 1)
    room = len(voices) * max(1, grid // 2)
    if n > room and not limit:
        raise SynthError(f"cannot make {n} distinct {engine} speakers: at most {room}")
    out, seen, i = [], set(), 0
    while len(out) < min(n, room):
        voice = voices[i % len(voices)]
        rng = np.random.default_rng([seed, key(f"{engine}:{voice}"), i // len(voices)])
        spk = Speaker(voice, "", int(rng.integers(speeds[0], speeds[1] + 1)),
                      int(rng.integers(pitches[0], pitches[1] + 1)), engine=engine)
        if spk.id not in seen:
            seen.add(spk.id)
            out.append(spk)
        i += 1
    return out


def resolve_names(engine: str, offered: Sequence[str], voices: Sequence[str] | None, exclude: Sequence[str]) -> list[str]:
    """The engine's voices to use: ``voices`` (each must be offered) or all, less ``exclude``."""
    for v in voices or ():
        if v not in offered:
            raise SynthError(f"unknown {engine} voice {v!r}; {engine} voices here: {', '.join(offered)}")
    return [v for v in (voices or offered) if v not in exclude and engine not in exclude]


def engine_speakers(
    engine: str, n: int, seed: int, voices: Sequence[str] | None, exclude: Sequence[str], limit: bool
) -> list[Speaker]:
    """``make_speakers`` of an engine without variants: its voices at its SPEEDS and PITCHES."""
    mod = module(engine)
    names = resolve_names(engine, mod.list_voice_names(), voices, exclude)
    return seeded_speakers(engine, names, n, seed, mod.SPEEDS, mod.PITCHES, limit)


def main() -> None:
    """Print each engine and its voices, or why it cannot speak here (``make voices`` ends so)."""
    for name in ENGINES:
        reason = why_unavailable(name)
        if reason is None:
            voices = module(name).list_voice_names()
            print(f"voices: {name:8s} {len(voices):3d} voices: {', '.join(voices)}")
        else:
            print(f"voices: {name:8s} not available: {reason}")


if __name__ == "__main__":
    main()
