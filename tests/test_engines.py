"""Voice engines (kwspi.train.speech.engines): each installed engine says the keywords, MBROLA
is MBROLA, the catalogue names the engine, and an engine that is not installed is skipped.

Per-engine tests skip, with the reason, where `make voices` has not installed the engine;
the others fake their engines and need only espeak-ng."""

from __future__ import annotations

import csv
import logging
import shutil
import sys
import types

import numpy as np
import pytest
from click.testing import CliRunner

from kwspi import gsc
from kwspi.cli import main
from kwspi.train.speech import engines, espeak, synth
from kwspi.train.speech.engines import Speaker

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@pytest.fixture(autouse=True)
def _own_kokoro_cache(tmp_path, monkeypatch):
    # Kokoro caches what it says; tests must neither read nor fill the user's cache.
    monkeypatch.setenv("KWSPI_CACHE", str(tmp_path / "cache"))


def _skip_unless(name: str) -> None:
    reason = engines.why_unavailable(name)
    if reason is not None:
        pytest.skip(f"voice engine {name} not installed here ({reason}); `make voices` installs it")


# --- every engine says the keywords --------------------------------------------------------


@pytest.mark.parametrize("name", list(engines.ENGINES))
def test_engine_says_the_ten_keywords_audibly_at_16k(name):
    _skip_unless(name)
    mod = engines.module(name)
    voices = mod.list_voice_names()
    assert voices and len(set(voices)) == len(voices)
    speaker = mod.make_speakers(1, seed=0)[0]
    assert speaker.engine == name and speaker.voice in voices
    for word in gsc.KEYWORDS:
        if engines.cannot_say(speaker, word):
            continue
        x = engines.speak(word, speaker)
        assert x.dtype == np.float32 and x.ndim == 1, word
        # 16 kHz: a one-word utterance lasts a plausible time only at the rate it is read at.
        assert 0.15 < len(x) / 16000 < 2.0, (word, len(x))
        assert synth.active_seconds(x) >= synth.MIN_ACTIVE_S, f"{name}/{speaker.voice} silent on {word!r}"
        clip, status = synth.render_clip(word, speaker, synth.clip_rng(0, speaker, word, 0))
        assert status == "ok" and clip.shape == (16000,), word


@pytest.mark.parametrize("name", [n for n in engines.ENGINES if n != "espeak"])
def test_engine_speakers_are_seeded_distinct_and_keep_their_ids(name):
    _skip_unless(name)
    mod = engines.module(name)
    a = mod.make_speakers(6, seed=0, limit=True)
    assert a == mod.make_speakers(6, seed=0, limit=True) and a != mod.make_speakers(6, seed=1, limit=True)
    assert len({s.id for s in a}) == len(a) and all(s.variant == "" and s.transform == "" for s in a)
    lo, hi = mod.SPEEDS
    assert all(lo <= s.speed <= hi for s in a)


def test_rhvoice_never_offers_the_arctic_speakers():
    _skip_unless("rhvoice")
    from kwspi.train.speech import rhvoice

    # alan and slt are CMU ARCTIC speakers, which the voices kept for judging kwspi also use.
    assert not {"alan", "slt"} & set(rhvoice.list_voice_names())
    with pytest.raises(engines.SynthError, match="unknown rhvoice voice 'slt'"):
        rhvoice.make_speakers(1, voices=["slt"])


def test_kokoro_speaks_english_phonemes_and_caches_them(tmp_path):
    from kwspi.train.speech import kokoro

    # espeak-ng's IPA in Kokoro's symbols: diphthongs and affricates are single letters there.
    assert kokoro.to_kokoro("ɡˈoʊ") == "ɡˈO" and kokoro.to_kokoro("dʒˈʌdʒ tʃˈɜːtʃ") == "ʤˈʌʤ ʧˈɜɹʧ"
    assert kokoro.to_kokoro("stˈɑːp\n") == "stˈɑp" and kokoro.to_kokoro("ɹˈaɪt") == "ɹˈIt"
    assert "jf_tebukuro" not in kokoro.VOICES and "jf_tebukuro+jm_kumo" in kokoro.VOICES
    _skip_unless("kokoro")
    spk = Speaker("jf_alpha+jm_kumo", "", 100, 100, engine="kokoro")
    first = engines.speak("down", spk)
    cached = list((tmp_path / "cache" / "kokoro").rglob("*.npy"))
    assert len(cached) == 1
    np.save(cached[0], first * 0.5)  # what comes back now is the cache's, not a new run
    assert np.array_equal(engines.speak("down", spk), first * 0.5)
    assert not np.array_equal(engines.speak("down", Speaker("jm_kumo", "", 100, 100, engine="kokoro")), first)


# --- MBROLA is MBROLA --------------------------------------------------------------------


def test_mbrola_voices_are_mbrola_without_a_variant():
    _skip_unless("mbrola")
    from kwspi.train.speech import mbrola

    if "mb-us1" not in mbrola.list_voice_names():
        pytest.skip("mbrola-us1 not installed here; `make voices` installs it")
    # mb-us1's diphone database is 16 kHz; espeak-ng's own formant voices write 22,050 Hz. A
    # variant silently falls back to the formant voice: the bug MBROLA speakers had.
    assert mbrola.native_rate("mb-us1") == 16000
    assert mbrola.native_rate("mb-us1+f3") == 22050
    speakers = mbrola.make_speakers(40, seed=0)
    assert {s.variant for s in speakers} == {""} and {s.engine for s in speakers} == {"mbrola"}
    assert len({s.voice for s in speakers}) == min(40, len(mbrola.list_voice_names()))
    assert all(mbrola.native_rate(v) in (16000, 22050) for v in {s.voice for s in speakers})
    with pytest.raises(engines.SynthError, match="formant voice"):
        mbrola.speak("yes", Speaker("mb-us1", "f3", 150, 50, engine="mbrola"))
    # Same voice string as before engines existed: MBROLA speakers keep their ids.
    assert Speaker("mb-us1", "", 150, 50, engine="mbrola").id == Speaker("mb-us1", "", 150, 50).id


@needs_espeak
def test_espeak_engine_never_offers_mbrola_voices_even_when_they_speak(monkeypatch):
    espeak.list_voices.cache_clear()
    monkeypatch.setattr(espeak, "_speaks", lambda voice: True)
    try:
        assert not [v for v in espeak.list_voice_names() if v.startswith("mb-")]
        assert not [s for s in espeak.make_speakers(40, seed=0) if s.voice.startswith("mb-")]
        with pytest.raises(engines.SynthError, match="'mb-us1' is an MBROLA voice: give --engines mbrola"):
            espeak.make_speakers(2, voices=["mb-us1"])
        assert espeak.make_speakers(5, exclude_voices=["mbrola"]) == espeak.make_speakers(5)
    finally:
        espeak.list_voices.cache_clear()


# --- speakers and the catalogue, with fake engines -----------------------------------------


def _fake_engine(name: str, *, missing: str | None = None, cannot_say=None) -> types.ModuleType:
    """An engine module that speaks through espeak-ng's en-us at its own gain."""
    mod = types.ModuleType(f"kwspi_test_engine_{name}")
    mod.SPEEDS, mod.PITCHES, mod.SPEED_FLOOR, mod.PITCH_BOUNDS = (90, 110), (100, 100), 50, (100, 100)
    mod.CANNOT_SAY = cannot_say or {}
    mod.unavailable = lambda: missing
    mod.list_voice_names = lambda: ("alto", "bass")

    def make_speakers(n, seed=0, voices=None, exclude=(), limit=False):
        names = engines.resolve_names(name, mod.list_voice_names(), voices, exclude)
        return engines.seeded_speakers(name, names, n, seed, mod.SPEEDS, mod.PITCHES, limit)

    def speak(text, speaker, *, speed=None, pitch=None):
        if missing:
            raise AssertionError("a missing engine must never be asked to speak")
        return 0.5 * espeak.speak(text, Speaker("en-us", "", 2 * (speed or speaker.speed), 50))

    mod.make_speakers, mod.speak = make_speakers, speak
    return mod


@pytest.fixture
def fake_engines(monkeypatch):
    def add(name, **kw):
        mod = _fake_engine(name, **kw)
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
        monkeypatch.setitem(engines.ENGINES, name, mod.__name__)
        return mod

    engines.why_unavailable.cache_clear()
    engines._skip_once.cache_clear()
    yield add
    engines.why_unavailable.cache_clear()
    engines._skip_once.cache_clear()


def test_speaker_ids_keep_the_espeak_form_and_name_other_engines():
    assert Speaker("en-us", "f3", 150, 50).canonical == "en-us+f3/150/50"
    assert Speaker("mb-us1", "", 150, 50, engine="mbrola").canonical == "mb-us1/150/50"
    joe = Speaker("joe", "", 100, 100, engine="piper")
    assert joe.canonical == "piper:joe/100/100" and joe.family == "piper"
    assert Speaker("joe", "", 100, 100, engine="piper", transform="vtl1.1").canonical == "piper:joe/100/100/vtl1.1"
    assert Speaker("en-gb", "m3").family == "en-gb" and Speaker("mb-en1", engine="mbrola").family == "mbrola"


@needs_espeak
def test_speakers_are_dealt_over_engines_and_extend(fake_engines):
    fake_engines("fake")
    a = engines.make_speakers(9, seed=0, engines=["espeak", "fake"])
    assert [s.engine for s in a[:4]] == ["espeak", "fake", "espeak", "fake"]
    assert engines.make_speakers(5, seed=0, engines=["espeak", "fake"]) == a[:5]
    assert engines.make_speakers(9, seed=0, engines=["espeak"]) == espeak.make_speakers(9, seed=0)
    only = engines.make_speakers(3, seed=0, engines=["espeak", "fake"], voices=["bass", "en-us"])
    assert {(s.engine, s.voice) for s in only} == {("espeak", "en-us"), ("fake", "bass")}
    # A one-voice engine with few distinct speakers drops out of the deal when it runs dry.
    many = engines.make_speakers(60, seed=0, engines=["fake", "espeak"])
    assert sum(s.engine == "fake" for s in many) == 2 * (21 // 2) and len({s.id for s in many}) == 60
    with pytest.raises(engines.SynthError, match="unknown voice 'tenor' for engines espeak, fake"):
        engines.make_speakers(2, engines=["espeak", "fake"], voices=["tenor"])
    kept = engines.make_speakers(8, seed=0, engines=["espeak", "fake"], exclude_voices=["bass", "en-us", "mb-us3"])
    assert {s.voice for s in kept if s.engine == "fake"} == {"alto"} and "en-us" not in {s.voice for s in kept}
    assert {s.engine for s in engines.make_speakers(4, engines=["espeak", "fake"], exclude_voices=["fake"])} == {
        "espeak"}
    with pytest.raises(engines.SynthError, match="'tenor' is no voice of engines espeak, fake"):
        engines.make_speakers(2, engines=["espeak", "fake"], exclude_voices=["tenor"])


@needs_espeak
def test_catalogue_names_engine_voice_and_transform(tmp_path, fake_engines):
    fake_engines("fake", cannot_say={"bass": frozenset({"no"})})
    config = synth.SynthConfig(words=("yes", "no"), speakers=6, engines=("espeak", "fake"), noise_seconds=1.0)
    summary = synth.synthesize_dataset(tmp_path / "d", config, jobs=2)
    with open(tmp_path / "d" / "speakers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["speaker", "engine", "voice", "variant", "transform", "family", "speed", "pitch",
                             "split"]
    assert sorted(r["engine"] for r in rows) == ["espeak"] * 3 + ["fake"] * 3
    for r in rows:
        spk = Speaker(r["voice"], r["variant"], int(r["speed"]), int(r["pitch"]), r["engine"], r["transform"])
        assert spk.id == r["speaker"] and r["transform"] == "" and r["family"] == spk.family
    # The fake engine's bass cannot say "no": those clips are left out, counted, never written.
    basses = [r["speaker"] for r in rows if r["voice"] == "bass"]
    assert summary.dropped == {"left_out": len(basses)} and summary.written == 12 - len(basses)
    assert not [p for p in (tmp_path / "d" / "no").iterdir() if p.name.split("_")[0] in basses]


@needs_espeak
def test_missing_engine_is_skipped_with_one_log_line(tmp_path, fake_engines, caplog):
    fake_engines("ghost", missing="ghost-tts is not installed")
    config = synth.SynthConfig(words=("yes",), speakers=3, engines=("espeak", "ghost"), noise_seconds=1.0)
    with caplog.at_level(logging.WARNING, logger=engines.__name__):
        summary = synth.synthesize_dataset(tmp_path / "d", config, jobs=1)
        synth.synthesize_dataset(tmp_path / "d", config, jobs=1)
    assert summary.written == 3
    skips = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skips == ["voice engine ghost skipped: ghost-tts is not installed; `make voices` installs it"]
    with open(tmp_path / "d" / "speakers.csv", newline="") as f:
        assert {r["engine"] for r in csv.DictReader(f)} == {"espeak"}
    with pytest.raises(engines.SynthError, match="no voice engine can speak here .*ghost-tts is not installed"):
        engines.make_speakers(2, engines=["ghost"])


@needs_espeak
def test_stream_speakers_come_from_every_engine_and_skip_what_they_cannot_say(fake_engines):
    from kwspi.train.speech import stream

    fake_engines("fake", cannot_say={"*": frozenset({"yes"})})
    config = stream.StreamConfig(seconds=20.0, seed=1, engines=("espeak", "fake"), speakers=4,
                                 keywords=("yes", "no"), mix=(("keyword", 1.0),))
    heard = []
    real = engines.speak
    engines_speak = lambda text, speaker, **kw: heard.append((speaker.engine, text)) or real(text, speaker, **kw)  # noqa: E731
    try:
        engines.speak = engines_speak
        rows = [r for b in stream.iter_blocks(config) for r in b.rows]
    finally:
        engines.speak = real
    assert {e for e, _ in heard} == {"espeak", "fake"}
    assert ("fake", "yes") not in heard and {r.label for r in rows} == {"yes", "no"}


@needs_espeak
def test_cli_engines_option(tmp_path, fake_engines):
    fake_engines("ghost", missing="ghost-tts is not installed")
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["synth", str(out), "--speakers", "2", "--words", "yes", "--noise-seconds", "1",
                                       "--engines", "espeak,ghost"])
    assert result.exit_code == 0, result.output
    assert "2 clips written" in result.output
    bad = CliRunner().invoke(main, ["synth", str(tmp_path / "b"), "--engines", "espeak,festivalish"])
    assert bad.exit_code == 2 and "unknown voice engine 'festivalish'; engines: espeak, mbrola" in bad.output
    assert engines.parse_engines(["piper", "all"]) == ("piper",) + tuple(n for n in engines.ENGINES if n != "piper")
    assert "Traceback" not in bad.output and not (tmp_path / "b").exists()
