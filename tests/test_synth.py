"""``kwspi synth``: espeak-ng speech in Google Speech Commands' layout."""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kwspi import gsc
from kwspi.cli import main
from kwspi.train.speech import espeak, noise, synth
from kwspi.wavio import read_wav

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

WORDS = ("yes", "no", "up")
CONFIG = synth.SynthConfig(words=WORDS, speakers=12, seed=0, noise_seconds=2.0)
CLIP_NAME = re.compile(r"^[0-9a-f]{8}_nohash_\d+\.wav$")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _clips(root: Path) -> list[str]:
    return sorted(f"{p.parent.name}/{p.name}" for p in root.glob("*/*_nohash_*.wav") if not p.parent.name.startswith("_"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    summary = synth.synthesize_dataset(out, CONFIG, jobs=2)
    return out, summary


def _longest_zero_run(x: np.ndarray) -> int:
    edges = np.diff(np.concatenate([[0], (x == 0).astype(np.int8), [0]]))
    return int(np.max(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1), initial=0))


# --- the data set -----------------------------------------------------------------------


def test_layout_and_names(tiny):
    out, summary = tiny
    assert summary.written == 12 * 3 and summary.skipped_existing == 0 and summary.total_dropped == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(WORDS + (gsc.BACKGROUND_NOISE_DIR,))
    assert {p.name for p in out.iterdir() if p.is_file()} == {gsc.VALIDATION_LIST, gsc.TESTING_LIST, "speakers.csv"}
    ids = {s.id for s in espeak.make_speakers(12, 0)}
    for word in WORDS:
        names = [p.name for p in (out / word).iterdir()]
        assert all(CLIP_NAME.match(n) for n in names), names
        assert {n.split("_nohash_")[0] for n in names} == ids
    assert sorted(p.stem for p in (out / gsc.BACKGROUND_NOISE_DIR).glob("*.wav")) == sorted(noise.NOISES)
    assert gsc.scan(out).keys() == set(WORDS), "kwspi.gsc reads it as a GSC folder"


def test_every_clip_is_one_second_16k_mono_16bit_speech(tiny):
    out, _ = tiny
    for rel in _clips(out):
        with wave.open(str(out / rel)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 16000), rel
        x, _ = read_wav(out / rel)
        peak = float(np.max(np.abs(x)))
        assert 0.08 < peak <= 0.91, (rel, peak)  # PEAK 0.9 times a gain of -20..0 dB
        assert synth.active_seconds(x) >= synth.MIN_ACTIVE_S, rel
        assert _longest_zero_run(x) < 16, f"{rel}: digital silence (no noise floor)"
        assert synth.frame_levels(x).min() > -90.0, rel


def test_split_lists_follow_the_hash_rule(tiny):
    out, _ = tiny
    val = (out / gsc.VALIDATION_LIST).read_text().splitlines()
    test = (out / gsc.TESTING_LIST).read_text().splitlines()
    clips = _clips(out)
    assert sorted(val) == [c for c in clips if gsc.which_set(c) == "validation"]
    assert sorted(test) == [c for c in clips if gsc.which_set(c) == "testing"]
    assert val or test, "12 speakers at seed 0 should put someone outside training"
    # Speaker-level split: a speaker in a list has all its clips there, and only there.
    assert not {gsc.speaker_of(c) for c in val} & {gsc.speaker_of(c) for c in test}
    split = gsc.split_of_clips(out, clips)
    assert split["validation"] == sorted(val) and split["testing"] == sorted(test)
    for s in {gsc.speaker_of(c) for c in test}:
        assert {f"{w}/{s}_nohash_0.wav" for w in WORDS} <= set(test)


def test_speakers_csv(tiny):
    out, _ = tiny
    with open(out / "speakers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["speaker", "engine", "voice", "variant", "transform", "family", "speed", "pitch",
                             "split"]
    assert [r["speaker"] for r in rows] == sorted(s.id for s in espeak.make_speakers(12, 0))
    voices = {v.name for v in espeak.list_voices()}
    variants = set(espeak.list_variants()) | {""}
    for r in rows:
        spk = espeak.Speaker(r["voice"], r["variant"], int(r["speed"]), int(r["pitch"]))
        assert spk.id == r["speaker"]
        assert r["voice"] in voices and r["variant"] in variants
        assert (r["engine"], r["transform"], r["family"]) == ("espeak", "", r["voice"])
        assert 120 <= int(r["speed"]) <= 200 and 25 <= int(r["pitch"]) <= 75
        assert r["split"] == gsc.which_set(f"{r['speaker']}_nohash_0.wav")
    assert len({r["voice"] for r in rows}) == min(12, len(voices)), "speakers spread over the voices"


def test_same_seed_gives_identical_bytes_whatever_the_jobs(tiny, tmp_path):
    out, _ = tiny
    again = tmp_path / "again"
    synth.synthesize_dataset(again, CONFIG, jobs=1)
    assert _files(again) == _files(out)


def test_other_seed_differs(tmp_path):
    a = synth.synthesize_dataset(tmp_path / "a", synth.SynthConfig(words=("yes",), speakers=3, seed=5, noise_seconds=1.0))
    b = synth.synthesize_dataset(tmp_path / "b", synth.SynthConfig(words=("yes",), speakers=3, seed=6, noise_seconds=1.0))
    assert a.written == b.written == 3
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert set(k for k in fa if k.startswith("yes/")) != set(k for k in fb if k.startswith("yes/"))
    assert fa[f"{gsc.BACKGROUND_NOISE_DIR}/pink_noise.wav"] != fb[f"{gsc.BACKGROUND_NOISE_DIR}/pink_noise.wav"]


def test_same_speaker_other_seed_gives_other_clip():
    spk = espeak.make_speakers(1, 0)[0]
    a, _ = synth.render_clip("yes", spk, synth.clip_rng(0, spk, "yes", 0))
    b, _ = synth.render_clip("yes", spk, synth.clip_rng(1, spk, "yes", 0))
    c, _ = synth.render_clip("yes", spk, synth.clip_rng(0, spk, "yes", 1))
    a2, _ = synth.render_clip("yes", spk, synth.clip_rng(0, spk, "yes", 0))
    assert np.array_equal(a, a2)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_rerun_skips_existing_and_resumes(tmp_path):
    out = tmp_path / "d"
    cfg = synth.SynthConfig(words=("no", "up"), speakers=3, repeats=2, seed=1, noise_seconds=1.0)
    first = synth.synthesize_dataset(out, cfg)
    assert first.written == 3 * 2 * 2
    before = _files(out)
    ticks = []
    second = synth.synthesize_dataset(out, cfg, progress=ticks.append)
    assert (second.written, second.skipped_existing) == (0, 12)
    assert sum(ticks) == 12
    victim = out / _clips(out)[5]
    victim.unlink()
    third = synth.synthesize_dataset(out, cfg)
    assert (third.written, third.skipped_existing) == (1, 11)
    assert _files(out) == before, "the resumed clip is the same clip"


def test_lists_cover_clips_from_earlier_runs(tmp_path):
    out = tmp_path / "d"
    synth.synthesize_dataset(out, synth.SynthConfig(words=("yes",), speakers=20, seed=0, noise_seconds=1.0))
    synth.synthesize_dataset(out, synth.SynthConfig(words=("yes",), speakers=2, seed=0, noise_seconds=1.0))
    clips = _clips(out)
    assert len(clips) == 20
    listed = (out / gsc.VALIDATION_LIST).read_text().splitlines() + (out / gsc.TESTING_LIST).read_text().splitlines()
    assert sorted(listed) == sorted(c for c in clips if gsc.which_set(c) != "training")
    with open(out / "speakers.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 20


def test_silent_words_are_dropped_and_counted(tmp_path, monkeypatch):
    real = espeak.speak

    def mute_no(text, speaker=espeak.DEFAULT_SPEAKER, **kw):
        x = real(text, speaker, **kw)
        return x * 1e-4 if text == "no" else x  # like mbrola mb-us3 on some vowels

    monkeypatch.setattr(espeak, "speak", mute_no)
    s = synth.synthesize_dataset(tmp_path / "d", synth.SynthConfig(words=("yes", "no"), speakers=3, noise_seconds=1.0))
    assert (s.written, s.dropped) == (3, {"silent": 3})
    assert list((tmp_path / "d" / "no").iterdir()) == []
    assert "3 dropped (silent 3)" in str(s)


# --- one clip ---------------------------------------------------------------------------


def _fake_speak(burst_s: float, calls: list):
    def fake(text, speaker=espeak.DEFAULT_SPEAKER, *, speed=None, pitch=None, rate=16000):
        calls.append(speed)
        burst = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(burst_s * rate)) / rate)
        return np.concatenate([np.zeros(4000), burst, np.zeros(4000)]).astype(np.float32)

    return fake


def test_clip_holds_the_whole_word_at_a_random_place(monkeypatch):
    calls = []
    monkeypatch.setattr(espeak, "speak", _fake_speak(0.5, calls))
    spk = espeak.DEFAULT_SPEAKER
    starts = set()
    for n in range(8):
        clip, status = synth.render_clip("yes", spk, synth.clip_rng(0, spk, "yes", n))
        assert status == "ok" and clip.shape == (16000,) and clip.dtype == np.float32
        loud = np.flatnonzero(np.abs(clip) > 0.2 * np.max(np.abs(clip)))
        assert 7900 <= loud[-1] - loud[0] <= 8300, "the whole burst (0.5 s) is inside the second"
        assert 0.08 < np.max(np.abs(clip)) <= 0.91
        starts.add(loud[0] // 400)
    assert len(starts) >= 4, "placement varies from clip to clip"


def test_too_long_word_is_respoken_faster_then_dropped(monkeypatch):
    calls = []
    monkeypatch.setattr(espeak, "speak", _fake_speak(1.5, calls))
    clip, status = synth.render_clip("backward", espeak.Speaker("en-us", "", 150, 50), np.random.default_rng(0))
    assert (clip, status) == (None, "too_long")
    assert len(calls) == 3 and calls[0] < calls[1] < calls[2]


# --- voices, variants, speakers -----------------------------------------------------------


def test_voice_table_parser_handles_long_names_spaces_and_languages():
    text = (
        "Pty Language       Age/Gender VoiceName          File                 Other Languages\n"
        " 5  variant         --/M      Half-LifeAnnouncementSystem !v/announcer         \n"
        " 5  variant         --/M      Mr_Serious         !v/Mr serious        \n"
        " 5  variant         --/M      Storm              !v/Storm             (en-us 5)\n"
        " 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)\n"
        " 5  en-us           --/F      us-mbrola-1        mb/mb-us1            (en 8)\n"
        " 3  en-uk           --/M      english-mb-en1     mb/mb-en1            (en-gb 3)(en 2)\n"
    )
    files = [r[4] for r in espeak._parse_voice_table(text)]
    assert files == ["!v/announcer", "!v/Mr serious", "!v/Storm", "gmw/en", "mb/mb-us1", "mb/mb-en1"]


def test_list_voices_and_variants():
    voices = espeak.list_voices()
    names = [v.name for v in voices]
    assert {"en-us", "en-gb"} <= set(names) and names == sorted(names)
    variants = espeak.list_variants()
    assert {"f3", "m1", "klatt", "whisper", "Alex"} <= set(variants)
    assert not any(" " in v for v in variants) and "Mr" not in variants
    assert len(variants) > 50


def test_every_listed_voice_speaks():
    # mbrola voices are listed by espeak-ng even when mbrola is missing; only those that
    # produce audio may be offered.
    for v in espeak.list_voices():
        x = espeak.speak("yes", espeak.Speaker(v.name))
        assert synth.active_seconds(x) >= synth.MIN_ACTIVE_S, v.name


def test_speaker_id_is_stable_and_canonical():
    spk = espeak.Speaker("en-us", "f3", 150, 50)
    assert spk.espeak_voice == "en-us+f3" and spk.canonical == "en-us+f3/150/50"
    assert spk.id == hashlib.sha1(b"en-us+f3/150/50").hexdigest()[:8]
    assert espeak.Speaker("mb-us1", "", 150, 50).family == "mbrola"
    assert espeak.Speaker("en-gb-scotland", "m3").family == "en-gb-scotland"


def test_make_speakers_is_seeded_distinct_and_extends():
    a = espeak.make_speakers(30, seed=0)
    assert a == espeak.make_speakers(30, seed=0)
    assert a[:10] == espeak.make_speakers(10, seed=0), "more speakers extend the set"
    assert len({s.id for s in a}) == 30
    assert a != espeak.make_speakers(30, seed=1)
    few = espeak.make_speakers(5, seed=0, voices=["en-us"], variants=["none", "f1"])
    assert {s.voice for s in few} == {"en-us"} and {s.variant for s in few} == {"", "f1"}
    assert len({s.id for s in few}) == 5
    assert "en-us" not in {s.voice for s in espeak.make_speakers(20, exclude_voices=["en-us"])}


def test_unknown_variant_and_voice_are_clear_errors():
    with pytest.raises(espeak.SynthError, match=r"unknown espeak-ng variant 'F3'.*did you mean .*f3"):
        espeak.make_speakers(3, variants=["F3"])
    with pytest.raises(espeak.SynthError, match=r"unknown espeak-ng voice 'en-xx'; English voices here: .*en-us"):
        espeak.make_speakers(3, voices=["en-xx"])
    with pytest.raises(espeak.SynthError, match="word"):
        synth.check_words(["_silence_"])


def test_mbrola_voice_is_not_espeak_ngs(monkeypatch):
    # MBROLA is its own engine (tests/test_engines.py): espeak-ng's voices are the same on a
    # machine with MBROLA installed and one without, so this data set is too.
    espeak.list_voices.cache_clear()
    monkeypatch.setattr(espeak, "_speaks", lambda voice: voice in ("mb-us1", "mb-en1"))
    try:
        assert {v.name for v in espeak.list_voices(include_mbrola=True)} >= {"mb-us1", "mb-en1"}
        assert not any(v.is_mbrola for v in espeak.list_voices())
        with pytest.raises(espeak.SynthError, match="is an MBROLA voice: give --engines mbrola"):
            espeak.make_speakers(2, voices=["mb-us2"])
    finally:
        espeak.list_voices.cache_clear()


def test_espeak_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(espeak.SynthError, match="apt-get install espeak-ng"):
        synth.synthesize_dataset(tmp_path / "out", synth.SynthConfig(words=("yes",), speakers=1))


def test_output_path_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(espeak.SynthError, match="is a file"):
        synth.synthesize_dataset(f, synth.SynthConfig(words=("yes",), speakers=1))


def test_speak_sentence():
    x = espeak.speak("turn the lights on in the kitchen please")
    assert x.dtype == np.float32 and x.ndim == 1
    assert 1.2 < len(x) / 16000 < 5.0
    assert synth.active_seconds(x) > 1.0


def test_read_words(tmp_path):
    f = tmp_path / "words.txt"
    f.write_text("Yes\n# a comment\nno, up  # trailing\n\nlights   on\nyes\n")
    assert synth.read_words(str(f)) == ("yes", "no", "up", "lights on")
    assert synth.read_words("go,stop") == ("go", "stop")
    assert synth.folder_name("lights on") == "lights_on"
    with pytest.raises(espeak.SynthError, match="no such words file"):
        synth.read_words(str(tmp_path / "missing.txt"))


# --- the command ----------------------------------------------------------------------


def test_cli_help_has_example():
    result = CliRunner().invoke(main, ["synth", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "kwspi synth data/synth --speakers 60 --seed 0" in result.output


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "cli"
    args = ["synth", str(out), "--speakers", "3", "--words", "yes,lights on", "--noise-seconds", "1", "--jobs", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "6 clips written, 0 already there, 0 dropped" in result.output
    assert len(list((out / "lights_on").glob("*.wav"))) == 3
    assert (out / gsc.TESTING_LIST).exists() and (out / "speakers.csv").exists()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 clips written, 6 already there" in again.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--variants", "f1,nosuch"], "unknown espeak-ng variant 'nosuch'"),
        (["--voices", "en-xx"], "unknown espeak-ng voice 'en-xx'"),
        (["--words", "yes,_x"], "cannot be used"),
    ],
)
def test_cli_user_errors_are_one_line(tmp_path, extra, message):
    result = CliRunner().invoke(main, ["synth", str(tmp_path / "o"), *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists(), "nothing written before the options are checked"


def test_cli_output_is_a_file(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    result = CliRunner().invoke(main, ["synth", str(f)])
    assert result.exit_code == 2 and "is a file" in result.output
