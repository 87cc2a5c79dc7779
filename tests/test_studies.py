"""The studies' speaker subset: the training speakers asked for, every test clip, stable."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import make_gsc
from kwspi import gsc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "studies"))
import common  # noqa: E402


def test_subset_keeps_n_training_speakers_and_every_test_clip(tmp_path):
    src = make_gsc(tmp_path / "src", words=gsc.KEYWORDS + ("bed",), n_speakers=12, layout="v2")
    dst = common.make_subset(src, tmp_path / "subset", train_speakers=3)

    clips = [c for cs in gsc.scan(dst).values() for c in cs]
    splits = gsc.split_of_clips(dst, clips)
    assert len({gsc.speaker_of(c) for c in splits["training"]}) == 3
    assert splits["validation"] == []
    src_clips = [c for cs in gsc.scan(src).values() for c in cs]
    assert sorted(splits["testing"]) == sorted(gsc.split_of_clips(src, src_clips)["testing"])
    assert gsc.noise_files(dst)

    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*")}
    common.make_subset(src, dst, train_speakers=3)  # a rerun leaves the folder (and its cache key) alone
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*")} == before


def test_holds_down_to_stops_at_the_first_width_that_falls_off():
    import quant_bits

    acc = {None: 95.0, 8: 95.0, 7: 94.5, 6: 93.0, 5: 94.8, 4: 10.0}
    assert quant_bits.holds_down_to(acc, 1.0) == 7  # 5 bits recovers, but 6 already fell off
    assert quant_bits.holds_down_to(acc, 100.0) == 4
    assert quant_bits.holds_down_to({None: 95.0, 8: 80.0}, 1.0) is None


def test_subset_ignores_words_added_to_the_source_later(tmp_path):
    src = make_gsc(tmp_path / "src", words=gsc.KEYWORDS + ("bed",), n_speakers=12, layout="v2")
    dst = common.make_subset(src, tmp_path / "subset", train_speakers=3)
    before = sorted(p.relative_to(dst) for p in dst.rglob("*.wav"))
    extra = make_gsc(tmp_path / "extra", words=("awful",), n_speakers=12, layout="v2")
    (src / "awful").symlink_to(extra / "awful")
    (dst / "stray").mkdir()
    (dst / "stray" / "x.wav").symlink_to(next((extra / "awful").glob("*.wav")))

    common.make_subset(src, dst, train_speakers=3)
    assert sorted(p.relative_to(dst) for p in dst.rglob("*.wav")) == before
    assert not (dst / "stray").exists()
