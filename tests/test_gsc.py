import hashlib
from collections import Counter

import pytest

from conftest import make_gsc
from kwspi import gsc
from kwspi.errors import DatasetError


def test_hash_rule_matches_values_computed_by_hand():
    # The rule keeps the low 27 bits (the last 7 hex
    # digits, masked) and scales them to [0, 100]. The paper notes give 22.7 and 36.5.
    for name, expected in [("pink_noise.wav", 22.7), ("white_noise.wav", 36.5)]:
        digest = hashlib.sha1(name.encode()).hexdigest()  # no _nohash_: the whole name
        low_bits = int(digest[-7:], 16) & (2**27 - 1)
        assert gsc.split_percentage(name) == pytest.approx(low_bits * 100 / (2**27 - 1))
        assert gsc.split_percentage(name) == pytest.approx(expected, abs=0.05)
        assert gsc.which_set(name) == "training"


def test_hash_rule_ignores_everything_after_nohash():
    a = gsc.which_set("yes/0a7c2a8d_nohash_0.wav")
    assert a == gsc.which_set("no/0a7c2a8d_nohash_4.wav")
    assert gsc.speaker_of("right/0a7c2a8d_nohash_12.wav") == "0a7c2a8d"


def test_hash_rule_proportions():
    counts = Counter(gsc.which_set(f"{i:08x}_nohash_0.wav") for i in range(20000))
    assert counts["validation"] / 20000 == pytest.approx(0.10, abs=0.01)
    assert counts["testing"] / 20000 == pytest.approx(0.10, abs=0.01)


def test_v1_layout_uses_the_hash_rule(gsc_v1):
    words = gsc.scan(gsc_v1)
    assert sorted(words) == sorted(gsc.WORDS_V1)
    clips = [c for cs in words.values() for c in cs]
    splits = gsc.split_of_clips(gsc_v1, clips)
    for split, members in splits.items():
        assert members and all(gsc.which_set(c) == split for c in members)


def test_v2_layout_uses_the_list_files(gsc_v2):
    clips = [c for cs in gsc.scan(gsc_v2).values() for c in cs]
    # Move one training clip into the testing list: the lists, not the hash, must decide.
    moved = next(c for c in clips if gsc.which_set(c) == "training")
    with open(gsc_v2 / gsc.TESTING_LIST, "a") as f:
        f.write(moved + "\n")
    splits = gsc.split_of_clips(gsc_v2, clips)
    assert moved in splits["testing"]
    assert set(splits["validation"]) == set((gsc_v2 / gsc.VALIDATION_LIST).read_text().split())


def test_only_a_testing_list_is_enough(gsc_v2):
    (gsc_v2 / gsc.VALIDATION_LIST).unlink()
    test = gsc.build_split(gsc_v2, "testing")
    assert test and not gsc.build_split(gsc_v2, "validation")


def test_class_balance_follows_the_paper(gsc_v1):
    for split in gsc.SPLITS:
        examples = gsc.build_split(gsc_v1, split, seed=3)
        counts = Counter(e.label for e in examples)
        k = sum(counts[i] for i in range(10))
        assert k > 0 and all(counts[i] > 0 for i in range(10))
        assert counts[gsc.LABELS.index(gsc.UNKNOWN)] == k // 10
        assert counts[gsc.LABELS.index(gsc.SILENCE)] == k // 10
        silence = [e for e in examples if e.label == gsc.LABELS.index(gsc.SILENCE)]
        assert all(e.path is None for e in silence)
        unknown = [e for e in examples if e.label == gsc.LABELS.index(gsc.UNKNOWN)]
        assert all(e.path.parent.name not in gsc.KEYWORDS for e in unknown)


def test_unknown_sampling_is_seeded(gsc_v1):
    a = gsc.build_split(gsc_v1, "training", seed=1)
    assert a == gsc.build_split(gsc_v1, "training", seed=1)
    assert a != gsc.build_split(gsc_v1, "training", seed=2)


def test_custom_keywords(gsc_v1):
    task = gsc.TaskSpec(keywords=("marvin", "sheila"))
    examples = gsc.build_split(gsc_v1, "training", task)
    assert task.labels == ("marvin", "sheila", gsc.SILENCE, gsc.UNKNOWN)
    assert {e.label for e in examples} == {0, 1, 3} or {e.label for e in examples} == {0, 1, 2, 3}


def test_bad_folders_are_reported(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        gsc.scan(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no word folders"):
        gsc.scan(tmp_path)
    (tmp_path / "yes").mkdir()
    (tmp_path / "yes" / "a_nohash_0.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match="no clips for keyword"):
        gsc.build_split(tmp_path, "training")
    # Measuring every clip of a folder needs only some of the keywords, but at least one.
    assert [e.label for e in gsc.build_split(tmp_path, gsc.ALL)] == [0]
    (tmp_path / "yes" / "a_nohash_0.wav").rename(tmp_path / "yes" / "b.txt")
    (tmp_path / "bed").mkdir()
    (tmp_path / "bed" / "a_nohash_0.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match="no clips for keyword"):
        gsc.build_split(tmp_path, gsc.ALL)


def test_catalogue_rows_from_before_engines_get_one(tmp_path):
    assert gsc.read_catalogue(tmp_path) == {}
    (tmp_path / gsc.CATALOGUE).write_text("speaker,voice,variant\naaaa1111,en-us,f1\nbbbb2222,mb-us1,\n")
    rows = gsc.read_catalogue(tmp_path)
    assert {k: (r["engine"], r["transform"]) for k, r in rows.items()} == {
        "aaaa1111": ("espeak", ""), "bbbb2222": ("mbrola", "")}


def _pool(root, prefix, words, n_speakers):
    pool = make_gsc(root, words=words, n_speakers=n_speakers, layout="v2")
    for wav in pool.glob("*/*.wav"):  # distinct speakers, as engines' hashed ids are
        wav.rename(wav.with_name(prefix + wav.name))
    (pool / gsc.TESTING_LIST).write_text(f"yes/{prefix}x_nohash_0.wav\n")
    (pool / gsc.CATALOGUE).write_text(f"speaker,engine\n{prefix}x,{prefix}\n")
    return pool


def test_combine_links_every_pool_and_merges_lists_and_catalogues(tmp_path):
    a = _pool(tmp_path / "a", "a", ("yes", "bed"), 6)
    b = _pool(tmp_path / "b", "b", ("yes",), 4)
    dst = gsc.combine([a, b], tmp_path / "mix")
    n = len(list(a.glob("[!_]*/*.wav"))) + len(list(b.glob("[!_]*/*.wav")))
    assert len(list(dst.glob("[!_]*/*.wav"))) == n
    assert all(p.is_symlink() for p in dst.glob("*/*.wav"))
    assert (dst / gsc.TESTING_LIST).read_text() == "yes/ax_nohash_0.wav\nyes/bx_nohash_0.wav\n"
    # Rows read as kwspi.gsc.read_catalogue reads them: a transform column, empty, for old files.
    assert (dst / gsc.CATALOGUE).read_text() == "speaker,engine,transform\nax,a,\nbx,b,\n"
    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*")}
    gsc.combine([a, b], dst)  # a rerun changes nothing, so the feature cache stays valid
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*")} == before
    gsc.combine([a], dst)  # and a smaller mix drops the other pool's clips
    assert len(list(dst.glob("[!_]*/*.wav"))) == len(list(a.glob("[!_]*/*.wav")))
    gsc.combine([b], dst)  # and the folders of words it no longer holds
    assert sorted(p.name for p in dst.iterdir() if p.is_dir()) == sorted(p.name for p in b.iterdir() if p.is_dir())


def test_combine_keeps_one_row_per_speaker_and_every_column(tmp_path):
    # A pool of transformed voices also holds the plain speakers they were made from.
    a = _pool(tmp_path / "a", "a", ("yes",), 3)
    b = _pool(tmp_path / "b", "a", ("yes",), 3)
    (b / gsc.CATALOGUE).write_text("speaker,engine,transform\nax,a,\nay,a,vtl\n")
    dst = gsc.combine([a, b], tmp_path / "mix")
    assert (dst / gsc.CATALOGUE).read_text() == "speaker,engine,transform\nax,a,\nay,a,vtl\n"
    assert len(list(dst.glob("[!_]*/*.wav"))) == len(list(a.glob("[!_]*/*.wav")))
    assert all(p.resolve().is_relative_to(a.resolve()) for p in dst.glob("yes/*.wav"))


def test_kwspi_combine_command(tmp_path):
    from click.testing import CliRunner

    from kwspi.cli import main

    a = _pool(tmp_path / "a", "a", ("yes",), 3)
    b = _pool(tmp_path / "b", "b", ("yes",), 3)
    result = CliRunner().invoke(main, ["combine", str(tmp_path / "mix"), str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{tmp_path / 'mix'}: {len(list(tmp_path.glob('[ab]/yes/*.wav')))} clips from 2 folders"
    result = CliRunner().invoke(main, ["combine", str(a), str(a), str(b)])
    assert result.exit_code == 2 and "cannot be one of the SOURCES" in result.output
