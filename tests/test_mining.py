"""Hard-negative mining (:mod:`kwspi.deploy.evaluation.mining`, ``kwspi mine``): the windows a
model fires on in keyword-free audio, cut exactly, deterministic for a seed, never touching a
keyword the truth names, and written so that training reads them as ``_unknown_``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from deploy_fixtures import NOISE_RMS, RATE, burst, shared_centroid_model, write_wav
from kwspi import gsc
from kwspi.cli import main
from kwspi.deploy.evaluation.mining import (MANIFEST, MINED_WORD, MiningConfig, NegativeStream,
                                            Window, draw, mine, spread)
from kwspi.deploy.evaluation.truth import TruthRow, read_truth
from kwspi.deploy.model import LoadedModel
from kwspi.wavio import read_wav

LOW = {"default": 0.3}  # low enough that the near tones fire


def near_tone_stream(path, seconds=40.0, keyword_at=()):
    """Tones near the keywords' (500 Hz by "low"'s 400, 1700 Hz by "high"'s 2000) every 2.5 s,
    said by two voices in turn, and real "low" bursts at ``keyword_at``; the WAV and its truth
    rows, written beside it with engine and voice columns."""
    rng = np.random.default_rng(3)
    x = NOISE_RMS * rng.standard_normal(int(seconds * RATE))
    rows = []
    for n, t in enumerate(np.arange(1.0, seconds - 1.0, 2.5)):
        freq, word = (500.0, "hum") if n % 2 else (1700.0, "hiss")
        b = burst(freq)
        x[int(t * RATE):int(t * RATE) + len(b)] += b
        rows.append((TruthRow(word, round(t, 3), round(t + 0.4, 3)), ("fake", "v1" if n % 2 else "v2")))
    for t in keyword_at:
        b = burst(400.0)
        x[int(t * RATE):int(t * RATE) + len(b)] += b
        rows.append((TruthRow("low", t, t + 0.4), ("fake", "v1")))
    rows.sort(key=lambda r: r[0].start_s)
    write_wav(path, x.astype(np.float32))
    truth_csv = path.with_suffix(".csv")
    with open(truth_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "start_s", "end_s", "engine", "voice"])
        w.writerows([r.label, r.start_s, r.end_s, e, v] for r, (e, v) in rows)
    return path, [r for r, _ in rows]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return LoadedModel.load(shared_centroid_model(tmp_path_factory))


def manifest(out):
    with open(out / MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


def clips_of(out):
    return {p.name: p.read_bytes() for p in sorted((out / MINED_WORD).glob("*.wav"))}


def test_mining_is_deterministic_for_a_seed(model, tmp_path):
    wav, truth = near_tone_stream(tmp_path / "neg.wav")
    streams = [NegativeStream(wav, tuple(truth))]
    config = MiningConfig(max_clips=5, seed=7)
    first, windows = mine(model, streams, tmp_path / "a", config, LOW)
    assert windows > 5, "more windows than clips, or the draw is not tested"
    again, _ = mine(model, streams, tmp_path / "b", config, LOW)
    other, _ = mine(model, streams, tmp_path / "c", MiningConfig(max_clips=5, seed=8), LOW)
    assert len(first) == 5 and clips_of(tmp_path / "a") == clips_of(tmp_path / "b")
    assert manifest(tmp_path / "a") == manifest(tmp_path / "b")
    assert [c.end_s for c in other] != [c.end_s for c in first]


def test_clips_are_the_seconds_the_engine_heard_and_never_touch_a_keyword(model, tmp_path):
    keyword_at = (6.0, 16.0, 26.0)
    wav, truth = near_tone_stream(tmp_path / "neg.wav", keyword_at=keyword_at)
    blind, _ = mine(model, [NegativeStream(wav)], tmp_path / "blind", MiningConfig(min_score=0.2), LOW)
    touches = [c for c in blind if any(c.start_s < t + 0.4 and t < c.end_s for t in keyword_at)]
    assert touches, "without the truth the keyword bursts are mined, or the exclusion is not tested"

    clips, _ = mine(model, [NegativeStream(wav, tuple(truth))], tmp_path / "out", MiningConfig(min_score=0.2), LOW)
    assert clips
    stream, _ = read_wav(wav)
    for c in clips:
        assert not any(c.start_s < t + 0.4 and t < c.end_s for t in keyword_at), c
        x, rate = read_wav(tmp_path / "out" / c.clip)
        end = round(c.end_s * RATE)
        assert rate == RATE and len(x) == RATE and np.array_equal(x, stream[end - RATE:end])
        assert c.said in ("hum", "hiss", "(no speech)")
    ends = sorted(c.end_s for c in clips)
    assert min(np.diff(ends)) >= 0.5 - 1e-9  # spacing_s


def test_the_folder_trains_as_unknown_with_each_voice_a_speaker(model, tmp_path):
    wav, truth = near_tone_stream(tmp_path / "neg.wav")
    out = tmp_path / "out"
    clips, _ = mine(model, [NegativeStream(wav, tuple(read_truth(wav.with_suffix(".csv"))))], out, MiningConfig(), LOW)
    listed = [c.clip for c in clips]
    assert gsc.split_of_clips(out, listed)["training"] == listed  # empty lists: every clip trains
    assert MINED_WORD not in gsc.KEYWORDS and set(gsc.scan(out)) == {MINED_WORD}
    catalogue = gsc.read_catalogue(out)
    assert {r["voice"] for r in catalogue.values()} == {"v1", "v2"} and len(catalogue) == 2
    for c in clips:
        assert catalogue[gsc.speaker_of(c.clip)]["voice"] == c.voice
    with open(out / gsc.CATALOGUE, newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames) == gsc.SPEAKER_FIELDS  # synth's (test_transforms)


def test_two_rounds_on_the_same_streams_join_without_hiding_a_clip(model, tmp_path):
    # A second round mines the streams the first did; joined with ``kwspi combine`` (the first
    # folder's clip wins a name), no window of either round may be lost to a name clash.
    wav, truth = near_tone_stream(tmp_path / "neg.wav")
    streams = [NegativeStream(wav, tuple(truth))]
    first, _ = mine(model, streams, tmp_path / "r1", MiningConfig(max_clips=4, seed=1), LOW)
    second, _ = mine(model, streams, tmp_path / "r2", MiningConfig(max_clips=4, seed=2), LOW)
    ends = {c.end_s for c in first} | {c.end_s for c in second}
    assert {c.end_s for c in second} - {c.end_s for c in first}, "the rounds took the same windows"
    both = gsc.combine([tmp_path / "r1", tmp_path / "r2"], tmp_path / "both")
    joined = clips_of(both)
    assert len(joined) == len(ends)
    shared = {c.clip for c in first} & {c.clip for c in second}
    for name in shared:  # a window both rounds took: one name, the same second of audio
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes()


def test_spread_keeps_the_best_of_neighbours_and_draw_keeps_order():
    windows = [Window(0, 16000, "low", 0.5), Window(0, 17600, "low", 0.9), Window(0, 19200, "low", 0.6),
               Window(0, 40000, "high", 0.4), Window(1, 17600, "high", 0.3)]
    assert spread(windows, 0.5) == [windows[1], windows[3], windows[4]]
    assert spread(windows, 0.0) == windows
    drawn = draw(windows, 3, seed=1)
    assert len(drawn) == 3 and drawn == sorted(drawn, key=windows.index)
    assert draw(windows, 10, seed=1) == windows


def test_mine_command(model, tmp_path):
    wav, _ = near_tone_stream(tmp_path / "neg.wav")
    out = tmp_path / "out"
    args = ["mine", "--model", str(model.path), "--input", str(wav), "--out", str(out), "-t", "0.3", "--json"]
    result = CliRunner().invoke(main, args + ["--max", "4"])
    assert result.exit_code == 0, result.output
    reported = json.loads(result.stdout)
    assert reported["clips"] == 4 == len(clips_of(out)) and reported["windows"] >= 4
    result = CliRunner().invoke(main, args + ["--max", "2"])  # a rerun replaces the earlier clips
    assert result.exit_code == 0 and len(clips_of(out)) == 2 == len(manifest(out))

    params = {p.name: p.default for p in main.get_command(None, "mine").params}
    for name in ("max_clips", "seed", "min_score", "spacing_s"):
        assert params[name] == getattr(MiningConfig(), name), name
    bad = CliRunner().invoke(main, args + ["--truth", str(wav.with_suffix(".csv")), "--truth", "x.csv"])
    assert bad.exit_code == 2 and "--truth" in bad.output
    missing = CliRunner().invoke(main, ["mine", "--input", str(tmp_path / "nope.wav"), "--out", str(out)])
    assert missing.exit_code == 2 and "nope.wav" in missing.output


def test_mining_loads_no_torch():
    import subprocess
    import sys

    probe = "import sys, kwspi.deploy.evaluation.mining; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
