"""New speakers from recorded ones: vocal-tract length, pitch, a room and a microphone.

A transform changes a recorded voice into a new speaker: its formants (``vtl``, a shorter or
longer vocal tract), its F0 (``pitch``), the room it is heard in (``room``) and the microphone
(``mic``). The signal processing is :mod:`kwspi.train.speech.effects`; this module names a
transform by a spec, makes transformed speakers and applies a spec to audio (:func:`apply`).
The libraries are imported when a transform first runs, so ``import kwspi.train.speech``
stays cheap, and :func:`unavailable` says which one is missing.

A transformed speaker is named by a *spec*, one string that fixes the transform::

    spec      := step ("+" step)*            at most one step of each kind, in the order below
    step      := "vtl" FACTOR                formants x FACTOR, 0.5..2 (drawn: 0.85..1.2)
               | "pitch" SEMITONES           F0 x 2^(SEMITONES/12), -12..12 (drawn: -5..5)
               | "room" INDEX                the room seeded by INDEX, 0..9999
               | "mic" INDEX                 the microphone seeded by INDEX, 0..9999
    FACTOR    := decimal, e.g. 0.9, 1.15
    SEMITONES := signed decimal, e.g. -2, +3.5

e.g. ``vtl0.9+pitch-2``, ``room17``, ``vtl1.1+pitch+1.5+room3+mic42``. The order is the path
sound takes (a voice, then the room it is spoken in, then the microphone), and a spec is
written in it so that one transform has one name: the name is part of the speaker's id.
:func:`parse` is the one place specs are read; :func:`draw` makes one at random for the
kinds asked for. The room or microphone of ``roomN`` / ``micN`` comes from a generator seeded
by the step's text, so a spec means the same audio everywhere.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kwspi.features import SAMPLE_RATE
from kwspi.train.speech import effects
from kwspi.train.speech.engines import RECORDED, Speaker, SynthError, key

#: The kinds of transform, in the order a spec lists them (and the sound meets them).
KINDS = ("vtl", "pitch", "room", "mic")
#: The library each kind needs (its import name).
NEEDS = {"vtl": "pyworld", "pitch": "pyworld", "room": "pyroomacoustics", "mic": "scipy"}
#: Ranges :func:`draw` picks from: formant factor, semitones.
VTL_RANGE = (0.85, 1.2)
PITCH_RANGE = (-5.0, 5.0)
# What a spec may say (wider than what is drawn, for a hand-written spec).
_VTL_BOUNDS, _PITCH_BOUNDS, _INDEX_MAX = (0.5, 2.0), (-12.0, 12.0), 9999
#: Seconds of silence :func:`apply_padded` adds before a room, so its reverberation tail is
#: not cut off where the engine's output ends (RT60 is at most 0.6 s: -40 dB by 0.4 s). More
#: would push long words past the clip's second, and the clip's trim cuts the rest anyway.
ROOM_TAIL_S = 0.4

_STEP = re.compile(r"^(vtl|pitch|room|mic)([+-]?\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Transform:
    """A parsed spec: ``None`` for a kind it leaves out."""

    vtl: float | None = None
    pitch: float | None = None
    room: int | None = None
    mic: int | None = None

    @property
    def spec(self) -> str:
        """The one name of this transform (``""`` for none)."""
        parts = []
        if self.vtl is not None:
            parts.append(f"vtl{_num(self.vtl)}")
        if self.pitch is not None:
            parts.append(f"pitch{'+' if self.pitch > 0 else ''}{_num(self.pitch)}")
        if self.room is not None:
            parts.append(f"room{self.room}")
        if self.mic is not None:
            parts.append(f"mic{self.mic}")
        return "+".join(parts)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if getattr(self, k) is not None)


def _num(v: float) -> str:
    # Shortest decimal: 0.9 not 0.90, 2 not 2.0, so a spec has one spelling.
    return f"{v:.3f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def parse(spec: str) -> Transform:
    """The :class:`Transform` a spec names (grammar in the module docstring).

    :class:`SynthError` (one line) for anything else, so a hand-written spec that would name
    a second spelling of the same transform, and with it a second speaker id, is refused.
    """
    spec = spec.strip()
    if not spec:
        return Transform()
    found: dict[str, float] = {}
    # "+" joins steps and is also a pitch's sign ("pitch+2"): split only where a kind follows.
    for step in re.split(r"\+(?=[a-z])", spec):
        m = _STEP.match(step)
        if not m:
            raise SynthError(f"transform {spec!r}: cannot read {step!r}; steps: vtl0.9, pitch-2, room3, mic7")
        kind, value = m.group(1), float(m.group(2))
        if kind in found:
            raise SynthError(f"transform {spec!r}: {kind} given twice")
        if found and KINDS.index(kind) < max(KINDS.index(k) for k in found):
            raise SynthError(f"transform {spec!r}: steps go in the order {'+'.join(KINDS)}")
        found[kind] = value
    t = Transform(
        vtl=found.get("vtl"), pitch=found.get("pitch"),
        room=_index(spec, "room", found.get("room")), mic=_index(spec, "mic", found.get("mic")),
    )
    if t.vtl is not None and not _VTL_BOUNDS[0] <= t.vtl <= _VTL_BOUNDS[1]:
        raise SynthError(f"transform {spec!r}: vtl factor must be {_VTL_BOUNDS[0]}..{_VTL_BOUNDS[1]}")
    if t.pitch is not None and not _PITCH_BOUNDS[0] <= t.pitch <= _PITCH_BOUNDS[1]:
        raise SynthError(f"transform {spec!r}: pitch must be {_PITCH_BOUNDS[0]:g}..{_PITCH_BOUNDS[1]:g} semitones")
    if t.spec != spec:
        raise SynthError(f"transform {spec!r}: write it {t.spec!r} (one spelling per transform)")
    return t


def _index(spec: str, kind: str, value: float | None) -> int | None:
    if value is None:
        return None
    if value != int(value) or not 0 <= value <= _INDEX_MAX:
        raise SynthError(f"transform {spec!r}: {kind} takes a whole number 0..{_INDEX_MAX}")
    return int(value)


def parse_kinds(names) -> tuple[str, ...]:
    """Kinds for :func:`draw` from ``--transforms`` names, in :data:`KINDS` order; ``all``
    stands for every kind. :class:`SynthError` for an unknown name."""
    out = set()
    for n in names or ():
        n = n.strip().lower()
        for k in KINDS if n == "all" else (n,):
            if k not in KINDS:
                raise SynthError(f"unknown transform {k!r}; transforms: {', '.join(KINDS)} (or all)")
            out.add(k)
    return tuple(k for k in KINDS if k in out)


def draw(kinds, rng: np.random.Generator) -> str:
    """A random spec with one step of each kind in ``kinds``: a vtl factor in
    :data:`VTL_RANGE` (to 0.01, at least 0.03 from 1), a pitch in :data:`PITCH_RANGE` (to
    0.5 semitone, never 0), a room and a microphone index."""
    # Every kind is drawn, in one order, so one kind's value never depends on the others asked.
    factor = round(float(rng.uniform(*VTL_RANGE)), 2)
    while abs(factor - 1.0) < 0.03:  # a barely moved voice would be its base under a new name
        factor = round(float(rng.uniform(*VTL_RANGE)), 2)
    steps = np.arange(PITCH_RANGE[0], PITCH_RANGE[1] + 0.25, 0.5)
    semitones = float(rng.choice(steps[steps != 0]))
    room_i, mic_i = (int(v) for v in rng.integers(_INDEX_MAX + 1, size=2))
    values = {"vtl": factor, "pitch": semitones, "room": room_i, "mic": mic_i}
    return Transform(**{k: values[k] for k in KINDS if k in kinds}).spec


def transformed_speakers(
    bases: Sequence[Speaker], n: int, kinds: Sequence[str], seed: int, engines: Sequence[str] = RECORDED
) -> list[Speaker]:
    """``n`` new speakers: transformed versions of the speakers in ``bases`` whose engine is
    among ``engines``, dealt over them in turn, each with a spec :func:`draw` makes for
    ``kinds`` from a generator seeded by ``(seed, base, round)``.

    A transformed speaker keeps its base's engine, voice, speed and pitch; its id comes from
    the base's canonical string plus the spec, so GSC's hash puts it in a split of its own.
    :class:`SynthError` when no base can be transformed or a library is missing.
    """
    if n <= 0:
        return []
    kinds = parse_kinds(kinds)
    if not kinds:
        raise SynthError("no transform to make speakers with; transforms: " + ", ".join(KINDS))
    reason = unavailable(kinds)
    if reason:
        raise SynthError(reason)
    pool = [b for b in bases if b.engine in engines and not b.transform]
    if not pool:
        raise SynthError(f"--transforms: no speaker of {', '.join(engines)} to transform; give one of those "
                         "engines in --engines")
    seen = {b.id for b in bases}
    out, i = [], 0
    while len(out) < n:
        base = pool[i % len(pool)]
        spec = draw(kinds, np.random.default_rng([seed, key(base.canonical), i // len(pool)]))
        spk = dataclasses.replace(base, transform=spec)
        if spk.id not in seen:  # a repeat only for a tiny spec space (one kind, few bases)
            seen.add(spk.id)
            out.append(spk)
        i += 1
        if i > 100 * n + len(pool):
            raise SynthError(f"cannot make {n} distinct transformed speakers from {len(pool)} voices")
    return out


def unavailable(kinds) -> str | None:
    """Why a kind among ``kinds`` cannot run here (its library is not installed), or ``None``."""
    for k in kinds:
        try:
            effects.load(NEEDS[k])
        except ImportError:
            return f"transform {k} needs {NEEDS[k]}: `make voices` or pip install 'kwspi[voices]'"
    return None


# --- a spec on audio -----------------------------------------------------------------------


def apply(spec: str | Transform, x: np.ndarray) -> np.ndarray:
    """``x`` transformed as ``spec`` says: same length, 16 kHz float32, same RMS level.

    vtl and pitch share one WORLD pass; the room's impulse response and the microphone's
    filter come from generators seeded by their step's text and are kept per spec.
    """
    t = parse(spec) if isinstance(spec, str) else spec
    y = np.asarray(x, np.float32)
    if t.vtl is not None or t.pitch is not None:
        y = effects.world(y, factor=t.vtl or 1.0, semitones=t.pitch or 0.0)
    if t.room is not None:
        y = effects.convolve(y, _room_ir(t.room))
    if t.mic is not None:
        y = effects.filtered(y, _mic_sos(t.mic))
    return np.asarray(y, np.float32)


def apply_padded(spec: str, x: np.ndarray) -> np.ndarray:
    """:func:`apply`, with :data:`ROOM_TAIL_S` of silence added first when there is a room,
    so a word's reverberation rings out instead of stopping where the engine's output did."""
    t = parse(spec)
    if t.room is not None:
        x = np.concatenate([np.asarray(x, np.float32), np.zeros(int(ROOM_TAIL_S * SAMPLE_RATE), np.float32)])
    return apply(t, x)


def step_rng(step: str) -> np.random.Generator:
    """The generator of a room or microphone step (``"room17"``): the same everywhere."""
    return np.random.default_rng(key(f"kwspi-transform:{step}"))


@functools.lru_cache(maxsize=256)
def _room_ir(index: int) -> np.ndarray:
    # Kept: a speaker's every clip is in its room, and the image sources take most of the time.
    return effects.room_ir(step_rng(f"room{index}"))


@functools.lru_cache(maxsize=256)
def _mic_sos(index: int) -> np.ndarray:
    return effects.mic_sos(step_rng(f"mic{index}"))


