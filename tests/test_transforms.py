"""New speakers from recorded ones (kwspi.train.speech.transforms): each transform does what it
says on a synthetic vowel, keeps length, rate and level, is the same for the same seed, and a
transformed voice is a speaker of its own in the catalogue.

The tests of vtl and pitch skip without pyworld, those of room without pyroomacoustics
(`make voices` installs both); the rest need neither, nor espeak-ng: a fake engine speaks.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import sys
import types

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import signal
from scipy.linalg import solve_toeplitz

from kwspi import gsc
from kwspi.cli import main
from kwspi.train.speech import effects, engines, synth, transforms
from kwspi.train.speech.engines import Speaker, SynthError
from kwspi.train.speech.transforms import Transform

SR = 16000
_MISSING_WORLD = transforms.unavailable(("vtl",))
_MISSING_ROOM = transforms.unavailable(("room",))
needs_world = pytest.mark.skipif(_MISSING_WORLD is not None, reason=f"{_MISSING_WORLD}")
needs_room = pytest.mark.skipif(_MISSING_ROOM is not None, reason=f"{_MISSING_ROOM}")


def vowel(f0: float = 120.0, seconds: float = 0.8, formants=((500, 80), (1500, 100), (2500, 120))) -> np.ndarray:
    """A vowel-like signal: a pulse train at ``f0`` through resonators at the formants."""
    n = int(seconds * SR)
    x = np.zeros(n)
    x[(np.arange(0, seconds, 1 / f0) * SR).astype(int)] = 1.0
    for f, bw in formants:
        r = np.exp(-np.pi * bw / SR)
        x = signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def f0_of(x: np.ndarray) -> float:
    """F0 by autocorrelation over the middle half, 60-400 Hz."""
    m = x[len(x) // 4: 3 * len(x) // 4].astype(np.float64)
    m -= m.mean()
    ac = np.correlate(m, m, "full")[len(m) - 1:]
    lo, hi = SR // 400, SR // 60
    return SR / (lo + int(np.argmax(ac[lo:hi])))


def formants(x: np.ndarray, order: int = 10) -> np.ndarray:
    """The first three formants (Hz) of the middle half, from the roots of an LPC fit."""
    m = x[len(x) // 4: 3 * len(x) // 4].astype(np.float64)
    m = np.append(m[0], m[1:] - 0.7 * m[:-1]) * np.hamming(len(m))  # pre-emphasis, window
    r = np.correlate(m, m, "full")[len(m) - 1: len(m) + order]
    roots = np.roots(np.concatenate([[1.0], -solve_toeplitz(r[:-1], r[1:])]))
    roots = roots[np.imag(roots) > 0]
    f, bw = np.angle(roots) * SR / (2 * np.pi), -np.log(np.abs(roots)) * SR / np.pi
    return np.sort(f[(bw < 500) & (f > 200)])[:3]


def folder_digest(out) -> str:
    """SHA-256 over a data set's clips, split lists and catalogue (not its generated noise)."""
    h = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.is_file() and "_background_noise_" not in p.parts:
            h.update(p.relative_to(out).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# --- specs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, parsed", [
    ("vtl0.9", Transform(vtl=0.9)),
    ("pitch-2", Transform(pitch=-2.0)),
    ("pitch+1.5", Transform(pitch=1.5)),
    ("vtl0.9+pitch-2", Transform(vtl=0.9, pitch=-2.0)),
    ("room17", Transform(room=17)),
    ("mic3", Transform(mic=3)),
    ("vtl1.15+pitch+3+room0+mic9999", Transform(vtl=1.15, pitch=3.0, room=0, mic=9999)),
    ("", Transform()),
])
def test_spec_is_read_and_written_back_the_same(spec, parsed):
    assert transforms.parse(spec) == parsed and parsed.spec == spec


@pytest.mark.parametrize("spec, message", [
    ("vtl0.90", "write it 'vtl0.9'"),
    ("pitch2", "write it 'pitch+2'"),
    ("room3+vtl1.1", "in the order vtl+pitch+room+mic"),
    ("vtl1.1+vtl0.9", "vtl given twice"),
    ("room1.5", "room takes a whole number"),
    ("vtl3", "vtl factor must be 0.5..2.0"),
    ("pitch+13", "pitch must be -12..12 semitones"),
    ("echo", "cannot read 'echo'"),
])
def test_bad_spec_is_a_one_line_error(spec, message):
    with pytest.raises(SynthError, match=re.escape(message)) as e:
        transforms.parse(spec)
    assert "\n" not in str(e.value)


def test_draw_is_seeded_in_range_and_names_only_the_kinds_asked():
    def many(kinds, seed):
        rng = np.random.default_rng(seed)
        return [transforms.draw(kinds, rng) for _ in range(200)]

    both = many(("vtl", "pitch"), 0)
    assert both == many(("vtl", "pitch"), 0) and both != many(("vtl", "pitch"), 1)
    parsed = [transforms.parse(s) for s in both]
    assert all(t.kinds == ("vtl", "pitch") for t in parsed)
    assert all(0.85 <= t.vtl <= 1.2 and abs(t.vtl - 1) >= 0.03 for t in parsed)
    assert all(-5 <= t.pitch <= 5 and t.pitch != 0 and 2 * t.pitch == int(2 * t.pitch) for t in parsed)
    assert {t.vtl < 1 for t in parsed} == {True, False} and {t.pitch < 0 for t in parsed} == {True, False}
    # Asking for fewer kinds leaves the others' values as they were.
    assert [transforms.parse(s).vtl for s in many(("vtl",), 0)] == [t.vtl for t in parsed]
    assert transforms.parse(transforms.draw(("room", "mic"), np.random.default_rng(0))).kinds == ("room", "mic")


def test_transform_names():
    assert transforms.parse_kinds(["mic", "vtl"]) == ("vtl", "mic")
    assert transforms.parse_kinds(["all"]) == transforms.KINDS
    with pytest.raises(SynthError, match="unknown transform 'echo'; transforms: vtl, pitch, room, mic"):
        transforms.parse_kinds(["vtl", "echo"])


# --- the transforms --------------------------------------------------------------------------


@needs_world
@pytest.mark.parametrize("factor", [0.87, 1.15])
def test_vtl_moves_the_formants_by_the_factor_and_keeps_the_pitch(factor):
    x = vowel()
    assert formants(x) == pytest.approx([500, 1500, 2500], rel=0.02)  # the yardstick reads true
    y = effects.vtl(x, factor)
    assert y.dtype == np.float32 and len(y) == len(x)
    assert formants(y) / formants(x) == pytest.approx([factor] * 3, rel=0.04)
    assert f0_of(y) == pytest.approx(f0_of(x), rel=0.02)
    assert rms(y) == pytest.approx(rms(x), rel=1e-3)


@needs_world
@pytest.mark.parametrize("semitones", [-4.0, 3.0])
def test_pitch_moves_f0_and_keeps_the_envelope(semitones):
    x = vowel()
    y = effects.pitch(x, semitones)
    assert y.dtype == np.float32 and len(y) == len(x)
    assert f0_of(y) / f0_of(x) == pytest.approx(2 ** (semitones / 12), rel=0.02)
    assert formants(y) == pytest.approx(formants(x), rel=0.03)


@needs_world
def test_world_is_deterministic_and_passes_silence():
    x = vowel()
    assert np.array_equal(effects.world(x, 1.1, -2), effects.world(x, 1.1, -2))
    assert not np.any(effects.vtl(np.zeros(800, np.float32), 1.1))


@needs_room
def test_room_adds_a_decaying_tail_and_keeps_length_and_level():
    x = np.zeros(SR, np.float32)
    x[100] = 1.0
    y = effects.room(x, np.random.default_rng(5))
    assert y.dtype == np.float32 and len(y) == len(x)
    assert np.array_equal(y, effects.room(x, np.random.default_rng(5)))
    assert not np.array_equal(y, effects.room(x, np.random.default_rng(6)))
    assert rms(y) == pytest.approx(rms(x), rel=1e-3)
    peak = int(np.argmax(np.abs(y)))
    energy = [float(np.sum(np.square(y[peak + a: peak + b], dtype=np.float64))) for a, b in
              [(800, 1600), (1600, 2400), (2400, 3200)]]  # 50-100, 100-150, 150-200 ms after the direct sound
    assert energy[0] > energy[1] > energy[2] > 0  # reverberation, dying away
    assert np.sum(np.square(y[peak + 800:], dtype=np.float64)) > 1e-4 * np.sum(np.square(y, dtype=np.float64))


@needs_room
def test_room_reverberation_time_is_the_one_drawn():
    for seed in range(3):
        d = effects.draw_room(np.random.default_rng(seed))
        assert 0.15 <= d.rt60 <= 0.6 and all(0.5 <= t <= s - 0.5 for t, s in zip(d.talker[:2], d.size))
        h = effects.room_ir(np.random.default_rng(seed))
        edc = 10 * np.log10(np.cumsum(h[::-1] ** 2)[::-1] / np.sum(h ** 2))
        # T20 (Schroeder): time from -5 to -25 dB, times three.
        t20 = 3 * (np.argmax(edc < -25) - np.argmax(edc < -5)) / SR
        assert t20 == pytest.approx(d.rt60, rel=0.35), (t20, d.rt60)


def test_mic_colours_the_spectrum_but_keeps_length_and_level():
    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    y = effects.mic(x, np.random.default_rng(1))
    assert y.dtype == np.float32 and len(y) == len(x) and rms(y) == pytest.approx(rms(x), rel=1e-3)
    assert np.array_equal(y, effects.mic(x, np.random.default_rng(1)))
    f, px = signal.welch(x, SR, nperseg=512)
    _, py = signal.welch(y, SR, nperseg=512)
    gain = 10 * np.log10(py / px)
    # Band-limited: the lowest and highest bands lose far more than the middle.
    mid = (f > 500) & (f < 3000)
    assert gain[f < 50].max() < gain[mid].mean() - 6 and gain[f > 7900].max() < gain[mid].mean() - 6
    other = effects.mic(x, np.random.default_rng(2))
    assert np.abs(10 * np.log10(signal.welch(other, SR, nperseg=512)[1] / py)).max() > 2  # another microphone


@needs_world
@needs_room
def test_apply_is_the_same_everywhere_for_a_spec_and_keeps_length():
    x = vowel(seconds=0.5)
    spec = "vtl1.1+pitch-2+room3+mic42"
    y = transforms.apply(spec, x)
    transforms._room_ir.cache_clear()
    transforms._mic_sos.cache_clear()
    assert np.array_equal(y, transforms.apply(spec, x)) and len(y) == len(x) and y.dtype == np.float32
    assert not np.array_equal(y, transforms.apply("vtl1.1+pitch-2+room4+mic42", x))
    # Before a room, silence is added so the reverberation rings out; no room, no padding.
    assert len(transforms.apply_padded("room3", x)) == len(x) + int(transforms.ROOM_TAIL_S * SR)
    assert len(transforms.apply_padded("mic3", x)) == len(x)


# --- transformed speakers --------------------------------------------------------------------


def _fake_engine(name: str) -> types.ModuleType:
    """An engine that says every word as the same vowel, a little longer the slower it speaks."""
    mod = types.ModuleType(f"kwspi_test_transform_engine_{name}")
    mod.SPEEDS, mod.PITCHES, mod.SPEED_FLOOR, mod.PITCH_BOUNDS = (90, 110), (100, 100), 50, (100, 100)
    mod.CANNOT_SAY = {}
    mod.unavailable = lambda: None
    mod.list_voice_names = lambda: ("alto", "bass")
    mod.spoken = []

    def make_speakers(n, seed=0, voices=None, exclude=(), limit=False):
        names = engines.resolve_names(name, mod.list_voice_names(), voices, exclude)
        return engines.seeded_speakers(name, names, n, seed, mod.SPEEDS, mod.PITCHES, limit)

    def speak(text, speaker, *, speed=None, pitch=None):
        mod.spoken.append(speaker)
        return vowel(f0=100.0 if speaker.voice == "bass" else 200.0, seconds=0.4 * 100 / (speed or speaker.speed))

    mod.make_speakers, mod.speak = make_speakers, speak
    return mod


@pytest.fixture
def fake(monkeypatch):
    mod = _fake_engine("fake")
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(engines.ENGINES, "fake", mod.__name__)
    engines.why_unavailable.cache_clear()
    yield mod
    engines.why_unavailable.cache_clear()


def test_transformed_speaker_is_its_base_plus_the_spec():
    base = [Speaker("joe", "", 100, 100, engine="piper"), Speaker("mb-us1", "", 150, 40, engine="mbrola"),
            Speaker("en-us", "f3", 160, 50)]
    new = transforms.transformed_speakers(base, 6, ["mic"], seed=0)
    assert new == transforms.transformed_speakers(base, 6, ["mic"], seed=0)
    assert new != transforms.transformed_speakers(base, 6, ["mic"], seed=1)
    assert [s.engine for s in new] == ["piper", "mbrola"] * 3  # espeak-ng is not transformed by default
    for s in new:
        b = Speaker(s.voice, s.variant, s.speed, s.pitch, s.engine)
        assert b in base and s.canonical == f"{b.canonical}/{s.transform}" and s.family == b.family
        assert transforms.parse(s.transform).kinds == ("mic",)
    assert len({s.id for s in new + base}) == len(new) + len(base)
    assert transforms.transformed_speakers(base, 2, ["mic"], 0, engines=("espeak",))[0].engine == "espeak"
    with pytest.raises(SynthError, match="no speaker of mbrola, rhvoice, piper, kokoro to transform"):
        transforms.transformed_speakers(base[2:], 1, ["mic"], seed=0)


def test_default_data_set_has_no_transformed_speaker(fake):
    plain = synth.SynthConfig(speakers=6, engines=("fake",))
    assert synth.make_speakers(plain) == engines.make_speakers(6, 0, ["fake"])
    assert all(s.transform == "" for s in synth.make_speakers(plain))


# Computed with the code before transforms existed (commit 30d319b) and after: the same. It moves
# only if the clip path, the catalogue or numpy's generators change, never with --transforms.
_DIGEST_WITHOUT_TRANSFORMS = "b563d4c0e59eae5e85d46b232fb8b68075f4b8c6bb5c3cb9e64cc82af45e179b"


def test_data_set_without_transforms_is_byte_for_byte_what_it_was(tmp_path, fake):
    config = synth.SynthConfig(words=("yes", "no"), speakers=4, engines=("fake",), noise_seconds=1.0)
    synth.synthesize_dataset(tmp_path / "d", config, jobs=2)
    assert folder_digest(tmp_path / "d") == _DIGEST_WITHOUT_TRANSFORMS


def test_a_share_of_the_speakers_are_transformed_recorded_voices(fake):
    config = synth.SynthConfig(speakers=8, engines=("fake",), transforms=("mic",), transformed_share=0.25,
                               transform_engines=("fake",))
    speakers = synth.make_speakers(config)
    assert len(speakers) == 8 and len({s.id for s in speakers}) == 8
    plain = [s for s in speakers if not s.transform]
    assert plain == engines.make_speakers(6, 0, ["fake"])
    assert [s.transform.startswith("mic") for s in speakers] == [False] * 6 + [True] * 2
    with pytest.raises(SynthError, match="transformed share must be between 0 and 1"):
        synth.make_speakers(synth.SynthConfig(speakers=8, engines=("fake",), transforms=("mic",),
                                              transformed_share=1.0, transform_engines=("fake",)))


def test_transformed_speaker_speaks_its_base_voice_then_the_transform(fake):
    spk = Speaker("alto", "", 100, 100, engine="fake", transform="mic7")
    y = engines.speak("yes", spk)
    assert fake.spoken[-1] == Speaker("alto", "", 100, 100, engine="fake")  # the engine sees its own voice
    x = fake.speak("yes", fake.spoken[-1])
    assert np.array_equal(y, transforms.apply("mic7", x))
    assert np.array_equal(engines.speak("yes", fake.spoken[-1]), x)  # no transform: the engine's audio as is


def test_catalogue_row_of_a_transformed_speaker(tmp_path, fake):
    config = synth.SynthConfig(words=("yes", "no"), speakers=4, engines=("fake",), transforms=("mic",),
                               transformed_share=0.5, transform_engines=("fake",), noise_seconds=1.0)
    summary = synth.synthesize_dataset(tmp_path / "d", config, jobs=2)
    assert summary.written == 8
    with open(tmp_path / "d" / "speakers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(gsc.SPEAKER_FIELDS)
    assert sorted(bool(r["transform"]) for r in rows) == [False, False, True, True]
    for r in rows:
        spk = Speaker(r["voice"], r["variant"], int(r["speed"]), int(r["pitch"]), r["engine"], r["transform"])
        assert spk.id == r["speaker"] and (tmp_path / "d" / "yes" / f"{spk.id}_nohash_0.wav").exists()
    # The same speakers again: identical bytes (the microphone is fixed by the spec).
    again = synth.synthesize_dataset(tmp_path / "e", config, jobs=1)
    assert again.written == 8
    for p in sorted((tmp_path / "d" / "yes").iterdir()):
        assert p.read_bytes() == (tmp_path / "e" / "yes" / p.name).read_bytes()


def test_missing_library_is_a_one_line_error(monkeypatch):
    real = effects.load

    def no_world(name):
        if name in ("pyworld", "pyroomacoustics"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name)

    monkeypatch.setattr(effects, "load", no_world)
    assert transforms.unavailable(["mic", "vtl"]) == \
        "transform vtl needs pyworld: `make voices` or pip install 'kwspi[voices]'"
    with pytest.raises(SynthError, match="transform room needs pyroomacoustics"):
        transforms.transformed_speakers([Speaker("joe", engine="piper")], 1, ["room"], 0)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
@pytest.mark.parametrize("extra, message", [
    (["--transforms", "echo"], "unknown transform 'echo'; transforms: vtl, pitch, room, mic (or all)"),
    (["--transforms", "mic", "--speakers", "4"], "--transforms: no speaker of mbrola, rhvoice, piper, kokoro"),
    (["--transforms", "mic", "--transformed-share", "1"], "--transformed-share"),
])
def test_cli_transform_errors_are_one_line(tmp_path, extra, message):
    result = CliRunner().invoke(main, ["synth", str(tmp_path / "d"), "--engines", "espeak", *extra])
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output
