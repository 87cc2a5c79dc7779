"""Real voices: the keyword test set and the negatives, built from a fake package layout.

The fake packages hold OGG Vorbis files as the real ones do (44.1 kHz, stereo for
hedgewars, mono for klettres), with tone bursts where the words would be, so where each
one-second window lands can be checked by where the bursts are.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from kwspi import gsc
from kwspi.errors import DatasetError
from kwspi.evaluate import split_features
from kwspi.features import SAMPLE_RATE, FeatureConfig
from kwspi.train.speech import real

soundfile = pytest.importorskip("soundfile", reason="reading OGG needs soundfile (pip install 'kwspi[train]')")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "studies"))
import real_voices  # noqa: E402

RATE = 44100
NAME = re.compile(r"^[a-z0-9-]+_nohash_\d+\.wav$")


def _bursts(seconds: float, bursts, freq: float = 300.0, channels: int = 1, floor: float = 0.0) -> np.ndarray:
    """``seconds`` of near-silence with tone bursts at ``(start_s, end_s)``."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = floor * np.random.default_rng(0).standard_normal(len(t))
    for a, b in bursts:
        on = (t >= a) & (t < b)
        x[on] += 0.5 * np.sin(2 * np.pi * freq * t[on])
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def _ogg(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), x, RATE, format="OGG", subtype="VORBIS")


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("pkgs")
    hw, kl = root / "hedgewars", root / "klettres"
    for pack, freq in (("British", 300.0), ("Pirate", 220.0)):
        _ogg(hw / pack / "Yessir.ogg", _bursts(1.6, [(0.1, 0.4), (0.7, 1.5)], freq, channels=2))
        _ogg(hw / pack / "Enemydown.ogg", _bursts(1.7, [(0.05, 0.5), (1.2, 1.6)], freq, channels=2))
        _ogg(hw / pack / "Comeonthen.ogg", _bursts(0.7, [(0.1, 0.6)], freq, channels=2))
        _ogg(hw / pack / "Hello.ogg", _bursts(2.5, [(0.1, 2.4)], freq, channels=2))
    # the same file in two packs, as Classic and Default share their Nooo (OGG streams carry a
    # random serial number, so the bytes are copied rather than encoded twice)
    _ogg(hw / "British" / "Nooo.ogg", _bursts(1.8, [(0.1, 1.7)], channels=2))
    shutil.copyfile(hw / "British" / "Nooo.ogg", hw / "Pirate" / "Nooo.ogg")
    _ogg(hw / "Default_es" / "Nooo.ogg", _bursts(1.0, [(0.2, 0.8)], channels=2))  # not English: left out
    # klettres: a hiss all through, the word in the second half of a two-second file
    _ogg(kl / "en" / "syllab" / "no.ogg", _bursts(2.0, [(1.1, 1.5)], floor=0.003))
    _ogg(kl / "en" / "alpha" / "A.ogg", _bursts(1.0, [(0.3, 0.7)], floor=0.003))
    return hw, kl


@pytest.fixture(scope="module")
def built(packages, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    summary = real.build_real_voices(out / "kw", out / "neg", *packages)
    return out / "kw", out / "neg", summary


def _read16k(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (SAMPLE_RATE, 1, 2, SAMPLE_RATE)
        return np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32768.0


def _loud(x: np.ndarray, a: float, b: float) -> bool:
    seg = x[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)]
    return float(np.sqrt(np.mean(seg**2))) > 0.1


def test_keyword_folder_layout_names_and_format(built):
    kw, _, summary = built
    clips = sorted(f"{p.parent.name}/{p.name}" for p in kw.glob("*/*.wav"))
    assert clips == [
        "down/hw-british_nohash_0.wav", "down/hw-pirate_nohash_0.wav",
        "no/hw-british_nohash_0.wav", "no/klettres-en_nohash_0.wav",
        "on/hw-british_nohash_0.wav", "on/hw-pirate_nohash_0.wav",
        "yes/hw-british_nohash_0.wav", "yes/hw-pirate_nohash_0.wav",
    ]
    assert all(NAME.match(Path(c).name) for c in clips)
    for c in clips:
        _read16k(kw / c)
    assert sorted((kw / gsc.TESTING_LIST).read_text().split()) == clips
    assert summary.keyword_clips == {"down": 2, "no": 2, "on": 2, "yes": 2}
    assert summary.speakers == {"hw-british", "hw-pirate", "klettres-en"}


def test_catalogue_says_where_each_clip_came_from(built, packages):
    kw, _, _ = built
    rows = {r["clip"]: r for r in csv.DictReader(open(kw / real.CATALOGUE))}
    assert set(rows) == set((kw / gsc.TESTING_LIST).read_text().split())
    down = rows["down/hw-pirate_nohash_0.wav"]
    assert (down["package"], down["pack"], down["keyword"], down["isolated"], down["placement"], down["licence"]) == (
        "hedgewars-data", "Pirate", "down", "0", "end", "GFDL-1.3")
    assert down["original"] == str(packages[0] / "Pirate" / "Enemydown.ogg")
    no = rows["no/klettres-en_nohash_0.wav"]
    assert (no["package"], no["isolated"], no["licence"]) == ("klettres-data", "1", "GPL-2+")
    # the second pack's Nooo is the first's file: kept once, its copy named
    assert rows["no/hw-british_nohash_0.wav"]["also_in"] == "hedgewars-data:Pirate/Nooo.ogg"


def test_windows_hold_the_keyword(built):
    kw, _, _ = built
    # "enemy down": the window ends 50 ms after the last burst (1.2-1.6 s), so it holds all of
    # it and none of the first (0.05-0.5 s)
    down = _read16k(kw / "down/hw-british_nohash_0.wav")
    assert _loud(down, 0.6, 0.9) and not _loud(down, 0.0, 0.4)
    # "yes sir": the window starts 50 ms before the first burst, so "yes" is its first 0.3 s
    yes = _read16k(kw / "yes/hw-british_nohash_0.wav")
    assert _loud(yes, 0.06, 0.34) and not _loud(yes, 0.37, 0.63)
    # klettres' hiss is not sound: the word (1.1-1.5 s of a 2 s file) is centred, not cut off
    no = _read16k(kw / "no/klettres-en_nohash_0.wav")
    assert _loud(no, 0.35, 0.65) and not _loud(no, 0.0, 0.25)
    # a short phrase is centred whole
    on = _read16k(kw / "on/hw-pirate_nohash_0.wav")
    assert _loud(on, 0.3, 0.7) and not _loud(on, 0.0, 0.2)


def test_negatives_are_a_separate_folder_of_the_other_words(built):
    kw, neg, summary = built
    clips = sorted(f"{p.parent.name}/{p.name}" for p in neg.glob("*/*.wav"))
    # Hello (2.3 s of sound) gives three windows per pack: 0-1 s, 1-2 s, and the last second
    assert clips == ["a/klettres-en_nohash_0.wav"] + [
        f"hello/hw-{p}_nohash_{n}.wav" for p in ("british", "pirate") for n in range(3)]
    assert not set(p.parent.name for p in neg.glob("*/*.wav")) & set(gsc.KEYWORDS)
    assert not (neg / gsc.TESTING_LIST).exists()
    for c in clips:
        _read16k(neg / c)
    rows = real.read_catalogue(neg)
    assert [r["clip"] for r in rows] == clips and {r["keyword"] for r in rows} == {""}
    assert summary.negative_clips == 7


def test_eval_loader_takes_every_clip_of_the_test_set(built):
    kw, _, _ = built
    task = gsc.TaskSpec(keywords=("yes", "no", "down", "on"), silence_fraction=0)
    X, y = split_features(kw, "all", FeatureConfig(), task)
    assert len(y) == 8 and sorted(np.bincount(y).tolist()) == [2, 2, 2, 2]
    assert {e.path.name for e in gsc.build_split(kw, "testing", task)} == {p.name for p in kw.glob("*/*.wav")}


def test_rebuild_replaces_the_earlier_build(built, packages, tmp_path):
    kw, neg = tmp_path / "kw", tmp_path / "neg"
    real.build_real_voices(kw, neg, *packages)
    stale = kw / "yes" / "hw-british_nohash_0.wav"
    stale.write_bytes(b"junk")
    real.build_real_voices(kw, neg, *packages)
    assert stale.read_bytes() == (built[0] / "yes" / "hw-british_nohash_0.wav").read_bytes()
    assert sorted(p.name for p in kw.rglob("*") if p.is_file()) == sorted(p.name for p in built[0].rglob("*") if p.is_file())


def test_no_packages_is_a_one_line_error(tmp_path):
    with pytest.raises(DatasetError, match="make real-voices") as e:
        real.build_real_voices(tmp_path / "kw", tmp_path / "neg", tmp_path / "none", tmp_path / "none")
    assert "\n" not in str(e.value)


def test_score_breaks_down_by_keyword_and_isolation(built):
    kw, neg, _ = built
    report = real_voices.score(None, kw)
    assert report["n"] == 8 and report["speakers"] == 3
    assert report["total"]["keyword:no"] == 2 and report["total"]["isolated"] == 2
    assert report["total"]["embedded"] == 6
    assert sum(report["right"].get(f"keyword:{k}", 0) for k in ("yes", "no", "down", "on")) == report["right"].get("all", 0)
    assert "| keyword:down |" in real_voices.markdown(report)
    assert real_voices.score(None, neg)["total"] == {"all": 7, "keyword:_unknown_": 7, "pack:British": 3,
                                                     "pack:Pirate": 3, "pack:en": 1, "negative": 7}


# 1.5 s of sound at 0.3-1.8 s: "start" begins 50 ms before the onset, "end" ends 50 ms
# after the offset, "middle" is centred on the sound (speech_bounds adds 10 ms each side)
@pytest.mark.parametrize("placement,begin_s", [("start", 0.25), ("whole", 0.25), ("end", 0.85), ("middle", 0.55)])
def test_keyword_window_placement(placement, begin_s):
    x = np.zeros(int(2.4 * SAMPLE_RATE), np.float32)
    x[int(0.3 * SAMPLE_RATE):int(1.8 * SAMPLE_RATE)] = 0.5
    clip, begin = real.keyword_window(x, placement)
    assert begin / SAMPLE_RATE == pytest.approx(begin_s, abs=0.015)
    assert np.array_equal(clip, x[begin:begin + SAMPLE_RATE])


@pytest.mark.skipif(not (real.HEDGEWARS_ROOT / "British" / "Yessir.ogg").exists()
                    or not (real.KLETTRES_ROOT / "en" / "syllab" / "no.ogg").exists(),
                    reason="needs the Debian packages hedgewars-data and klettres-data (make real-voices)")
def test_real_packages(tmp_path):
    summary = real.build_real_voices(tmp_path / "kw", tmp_path / "neg")
    # 10 English packs x (Yessir, Nooo, Enemydown, Comeonthen) less Default's Nooo (Classic's
    # file), plus klettres' two English "no"s
    assert summary.keyword_clips == {"yes": 10, "no": 11, "down": 10, "on": 10}
    assert len(summary.speakers) == 12
    assert summary.negative_clips > 500
    rows = real.read_catalogue(tmp_path / "kw")
    assert {r["pack"] for r in rows} == set(real.ENGLISH_PACKS) | set(real.KLETTRES_ENGLISH)
    for r in rows[:3]:
        _read16k(tmp_path / "kw" / r["clip"])


def test_import_loads_no_torch():
    # The data side stays torch-free: soundfile and soxr load only when a file is read.
    probe = "import sys, kwspi.train.speech.real; print('torch' in sys.modules, 'soundfile' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
