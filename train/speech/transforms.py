"""New speakers from recorded ones: vocal-tract length, pitch, a room and a microphone.

Each transform is a pure function of 16 kHz float32 audio (and, for the random ones, a seeded
generator) that returns audio of the same length and rate:

- :func:`vtl`: the spectral envelope (formants) warped by a factor along frequency, pitch kept
  (a shorter vocal tract, factor > 1, raises every formant by that factor);
- :func:`pitch`: F0 moved by semitones, the spectral envelope kept;
- :func:`room`: convolution with a shoebox room's impulse response (pyroomacoustics' image
  source method: random size, reverberation time, talker and microphone positions);
- :func:`mic`: a random band-limited microphone response (high-pass, low-pass, resonances).

``vtl`` and ``pitch`` analyse and resynthesise with WORLD (pyworld, MIT licence; not
praat-parselmouth, which is GPL-3 and so cannot sit beside an MIT project's code). Both are
optional: they are imported when a transform first runs, so ``import kwspi.train.speech``
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
import importlib.metadata
import re
import sys
import types
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kwspi.features import SAMPLE_RATE
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
# WORLD's frame period, ms: its default, fine enough for 16 kHz words.
_FRAME_MS = 5.0


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
            _load(NEEDS[k])
        except ImportError:
            return f"transform {k} needs {NEEDS[k]}: `make voices` or pip install 'kwspi[voices]'"
    return None


@functools.lru_cache(maxsize=None)
def _load(name: str):
    try:
        return __import__(name)
    except ModuleNotFoundError as e:
        if name != "pyworld" or e.name != "pkg_resources":
            raise
    # pyworld 0.3.5, the newest on PyPI, asks pkg_resources for its own version string and
    # nothing else; setuptools 81+ no longer ships pkg_resources. Lend it one that answers
    # from importlib.metadata for the length of the import, then take it back.
    shim = types.ModuleType("pkg_resources")
    shim.get_distribution = lambda dist: types.SimpleNamespace(version=importlib.metadata.version(dist))
    sys.modules["pkg_resources"] = shim
    try:
        return __import__(name)
    finally:
        if sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


# --- the transforms ------------------------------------------------------------------------


def vtl(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` with its formants (spectral envelope) moved by ``factor``, pitch kept."""
    return world(x, factor=factor)


def pitch(x: np.ndarray, semitones: float) -> np.ndarray:
    """``x`` with its F0 moved by ``semitones``, spectral envelope kept."""
    return world(x, semitones=semitones)


def world(x: np.ndarray, factor: float = 1.0, semitones: float = 0.0) -> np.ndarray:
    """Vocal-tract length and pitch in one WORLD analysis and resynthesis.

    F0 by DIO refined by StoneMask (a tenth of Harvest's time, and words are short and
    clean), envelope by CheapTrick, aperiodicity by D4C. The envelope and aperiodicity are
    resampled along frequency: bin ``k`` of the output takes the input's at ``k / factor``,
    so a peak at ``f`` moves to ``f * factor``; above the input's top (for factor < 1) the
    top bin is held. Unvoiced frames (F0 0) stay unvoiced. Same length and level as ``x``.
    """
    pw = _load("pyworld")
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    if not len(x64) or not np.any(x64):
        return np.asarray(x, np.float32).copy()
    f0, t = pw.dio(x64, SAMPLE_RATE, f0_floor=50.0, f0_ceil=600.0, frame_period=_FRAME_MS)
    f0 = pw.stonemask(x64, f0, t, SAMPLE_RATE)
    sp = pw.cheaptrick(x64, f0, t, SAMPLE_RATE)
    ap = pw.d4c(x64, f0, t, SAMPLE_RATE)
    if factor != 1.0:
        bins = np.arange(sp.shape[1], dtype=np.float64)
        src = np.minimum(bins / factor, bins[-1])
        sp = np.stack([np.interp(src, bins, row) for row in sp])
        ap = np.stack([np.interp(src, bins, row) for row in ap])
    f0 = f0 * 2.0 ** (semitones / 12.0)
    y = pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap),
                      SAMPLE_RATE, _FRAME_MS)
    return _same_level(_fit(y, len(x)), x)


@dataclass(frozen=True)
class RoomDraw:
    """The room :func:`room_ir` drew: metres, seconds."""

    size: tuple[float, float, float]
    rt60: float
    talker: tuple[float, float, float]
    mic: tuple[float, float, float]


def draw_room(rng: np.random.Generator) -> RoomDraw:
    """A random room, small office to hall: 3-9 x 2.5-7 x 2.4-4 m, RT60 0.15-0.6 s, talker and
    microphone at least 0.5 m from the walls and 0.5-3 m apart at 0.8-1.9 m height."""
    size = (rng.uniform(3.0, 9.0), rng.uniform(2.5, 7.0), rng.uniform(2.4, 4.0))
    rt60 = rng.uniform(0.15, 0.6)
    lo, hi = np.array([0.5, 0.5, 0.8]), np.array([size[0] - 0.5, size[1] - 0.5, 1.9])
    talker = rng.uniform(lo, hi)
    for _ in range(100):
        mic = rng.uniform(lo, hi)
        if 0.5 <= np.linalg.norm(mic - talker) <= 3.0:
            break
    return RoomDraw(tuple(map(float, size)), float(rt60), tuple(map(float, talker)), tuple(map(float, mic)))


def room_ir(rng: np.random.Generator) -> np.ndarray:
    """The impulse response, from talker to microphone, of a room drawn by :func:`draw_room`.

    Image-source model (pyroomacoustics ``ShoeBox``) with one absorption for every wall and
    the reflection order that Sabine's formula gives for the drawn RT60 (a lower order would
    end the tail early: capped at 17, a 0.6 s room decays in 0.4 s). The largest rooms take
    about 0.4 s, once per speaker (:func:`apply` keeps each).
    """
    pra = _load("pyroomacoustics")
    d = draw_room(rng)
    absorption, order = pra.inverse_sabine(d.rt60, list(d.size))
    r = pra.ShoeBox(list(d.size), fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=order)
    r.add_source(list(d.talker))
    r.add_microphone(list(d.mic))
    r.compute_rir()
    return np.asarray(r.rir[0][0], np.float64)


def room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` as heard in a random room (:func:`room_ir`): same length and level, so
    reverberation past the end is cut (:func:`apply_padded` leaves room for it)."""
    return _convolve(x, room_ir(rng))


def mic_sos(rng: np.random.Generator) -> np.ndarray:
    """Second-order sections of a random microphone: a high-pass at 70-300 Hz (order 1-2,
    the small capsule's bass loss), a low-pass at 3.5-7.5 kHz (order 2-4, from a phone's
    band to a good USB microphone's) and 1-3 resonances of -6..+8 dB at 1-6 kHz (capsule
    and housing), Q 1-4."""
    from scipy import signal

    nyq = SAMPLE_RATE / 2
    parts = [
        signal.butter(int(rng.integers(1, 3)), rng.uniform(70.0, 300.0) / nyq, "highpass", output="sos"),
        signal.butter(int(rng.integers(2, 5)), rng.uniform(3500.0, 7500.0) / nyq, "lowpass", output="sos"),
    ]
    for _ in range(int(rng.integers(1, 4))):
        parts.append(_peaking(rng.uniform(1000.0, 6000.0), rng.uniform(-6.0, 8.0), rng.uniform(1.0, 4.0)))
    return np.concatenate(parts)


def mic(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` through a random microphone (:func:`mic_sos`): causal, same length and level."""
    from scipy import signal

    y = signal.sosfilt(mic_sos(rng), np.asarray(x, np.float64))
    return _same_level(y, x)


def _peaking(f0: float, gain_db: float, q: float) -> np.ndarray:
    # RBJ's audio-EQ cookbook peaking filter, as one second-order section.
    a = 10.0 ** (gain_db / 40.0)
    w = 2.0 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w) / (2.0 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


# --- a spec on audio -----------------------------------------------------------------------


def apply(spec: str | Transform, x: np.ndarray) -> np.ndarray:
    """``x`` transformed as ``spec`` says: same length, 16 kHz float32, same RMS level.

    vtl and pitch share one WORLD pass; the room's impulse response and the microphone's
    filter come from generators seeded by their step's text and are kept per spec.
    """
    t = parse(spec) if isinstance(spec, str) else spec
    y = np.asarray(x, np.float32)
    if t.vtl is not None or t.pitch is not None:
        y = world(y, factor=t.vtl or 1.0, semitones=t.pitch or 0.0)
    if t.room is not None:
        y = _convolve(y, _room_ir(t.room))
    if t.mic is not None:
        from scipy import signal

        y = _same_level(signal.sosfilt(_mic_sos(t.mic), np.asarray(y, np.float64)), y)
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
    return room_ir(step_rng(f"room{index}"))


@functools.lru_cache(maxsize=256)
def _mic_sos(index: int) -> np.ndarray:
    return mic_sos(step_rng(f"mic{index}"))


def _convolve(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    from scipy import signal

    y = signal.fftconvolve(np.asarray(x, np.float64), ir)[: len(x)]
    return _same_level(y, x)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    # WORLD's output is a frame's worth longer or shorter than its input.
    return y[:n] if len(y) >= n else np.concatenate([y, np.zeros(n - len(y))])


def _same_level(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``y`` scaled to ``x``'s RMS, as float32: a transform changes timbre, not loudness."""
    rx = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    ry = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0
    return np.asarray(y * (rx / ry) if ry > 0 else y, np.float32)
