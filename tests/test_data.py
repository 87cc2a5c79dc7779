import contextlib
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import make_gsc
from kwspi import clips, gsc
from kwspi.errors import DatasetError
from kwspi.features import FeatureConfig, clip_features
from kwspi.train import data
from kwspi.train.data import cache, example
from kwspi.train.speech.augment import AugmentConfig
from kwspi.wavio import read_wav, write_wav

SMALL_WORDS = gsc.KEYWORDS + ("bed", "cat", "dog")
SILENCE, UNKNOWN = gsc.LABELS.index(gsc.SILENCE), gsc.LABELS.index(gsc.UNKNOWN)


@pytest.fixture
def small(tmp_path) -> Path:
    """13 words x 12 speakers x 2 clips, hash-rule split: 192 training examples."""
    return make_gsc(tmp_path / "small", words=SMALL_WORDS, n_speakers=12, clips_per_speaker=2)


@pytest.fixture
def count_features(monkeypatch):
    """Counts calls of the MFCC function data.py uses (in this process)."""
    calls = []
    real = example.clip_features

    def counting(signal, cfg):
        calls.append(1)
        return real(signal, cfg)

    monkeypatch.setattr(example, "clip_features", counting)
    return calls


def load(root, split, **kw):
    kw.setdefault("cache_dir", Path(root).parent / "cache")
    kw.setdefault("workers", 1)
    return data.load_split(root, split, **kw)


def training_keyword_clips(root) -> list[Path]:
    return [e.path for e in gsc.build_split(root, "training") if e.label < len(gsc.KEYWORDS)]


# --- class balance and splits ------------------------------------------------------------


@pytest.mark.parametrize("split", gsc.SPLITS)
def test_class_balance_follows_the_paper(small, split):
    fs = load(small, split, aug=None)
    counts = Counter(fs.labels.tolist())
    k = sum(counts[i] for i in range(len(gsc.KEYWORDS)))
    assert k > 0 and all(counts[i] == k // 10 for i in range(len(gsc.KEYWORDS)))  # equal per word here
    assert counts[UNKNOWN] == k // 10 and counts[SILENCE] == k // 10
    assert set(counts) == set(range(12))
    assert fs.label_names == gsc.LABELS
    assert fs.labels.dtype == np.int64 and len(fs) == k + 2 * (k // 10)
    assert fs.features.shape == (len(fs), 1, 10, 49) and fs.features.dtype == np.float32
    unknown_words = {p.split("/")[0] for p, y in zip(fs.paths, fs.labels) if y == UNKNOWN}
    assert unknown_words <= {"bed", "cat", "dog"}
    assert all((p is None) == (y == SILENCE) for p, y in zip(fs.paths, fs.labels))


def test_v1_layout_splits_by_the_hash_rule(gsc_v1):
    clips = {}
    for split in gsc.SPLITS:
        fs = load(gsc_v1, split, aug=None)
        clips[split] = {p for p in fs.paths if p is not None}
        assert clips[split] and all(gsc.which_set(p) == split for p in clips[split])
    assert not (clips["training"] & clips["validation"] or clips["training"] & clips["testing"])
    assert len(clips["training"]) > 3 * len(clips["testing"])


def test_v2_layout_splits_by_the_list_files(gsc_v2):
    val = set((gsc_v2 / gsc.VALIDATION_LIST).read_text().split())
    test = set((gsc_v2 / gsc.TESTING_LIST).read_text().split())
    # The lists must win over the hash rule: move one clip from validation to testing.
    moved = sorted(p for p in val if p.split("/")[0] in gsc.KEYWORDS)[0]
    (gsc_v2 / gsc.VALIDATION_LIST).write_text("".join(f"{p}\n" for p in sorted(val - {moved})))
    (gsc_v2 / gsc.TESTING_LIST).write_text("".join(f"{p}\n" for p in sorted(test | {moved})))
    paths = {s: {p for p in load(gsc_v2, s, aug=None).paths if p} for s in gsc.SPLITS}
    assert paths["validation"] <= val - {moved}
    assert paths["testing"] <= test | {moved}
    assert moved in paths["testing"] and moved not in paths["validation"]
    assert not paths["training"] & (val | test)
    assert {p.split("/")[0] for p in paths["training"]} & {"backward", "follow", "forward", "learn", "visual"}


# --- the cache ---------------------------------------------------------------------------


def test_second_load_reads_the_cache_without_computing(small, count_features):
    first = load(small, "validation")
    n_first = len(count_features)
    assert n_first == len(first) and first.stats.computed == len(first) and first.stats.from_cache == 0
    second = load(small, "validation")
    assert len(count_features) == n_first  # not a single MFCC more
    assert second.stats.computed == 0 and second.stats.from_cache == 1
    assert np.array_equal(first.features, second.features)
    assert np.array_equal(first.labels, second.labels) and first.paths == second.paths


def test_augmented_views_are_cached_too(small, count_features):
    first = load(small, "training", views=3)
    assert first.stats.computed == 3 * len(first) == len(count_features)
    second = load(small, "training", views=3)
    assert len(count_features) == 3 * len(first) and second.stats.from_cache == 3
    for a, b in zip(first.views, second.views):
        assert np.array_equal(a, b)
    more = load(small, "training", views=5)  # only views 3 and 4 are new
    assert more.stats.computed == 2 * len(first) and more.stats.from_cache == 3
    assert np.array_equal(more.views[1], first.views[1])


def test_another_front_end_gets_another_cache_file(small):
    cache = small.parent / "cache"
    a = load(small, "testing", cache_dir=cache)
    cfg20 = FeatureConfig(n_mfcc=20)
    b = load(small, "testing", cfg=cfg20, cache_dir=cache)
    assert b.stats.computed == len(b) and b.features.shape == (len(a), 1, 20, 49)
    names = [p.name for p in cache.rglob("*.npy")]
    assert len(names) == 2
    assert any(FeatureConfig().hash() in n for n in names) and any(cfg20.hash() in n for n in names)
    again = load(small, "testing", cache_dir=cache)
    assert again.stats.computed == 0 and np.array_equal(again.features, a.features)


def test_cmvn_gets_its_own_cache_files(small):
    cache = small.parent / "cache"
    plain = load(small, "testing", cache_dir=cache)
    normalised = load(small, "testing", cfg=FeatureConfig(cmvn="meanvar"), cache_dir=cache)
    assert normalised.stats.computed == len(normalised) and len(list(cache.rglob("*.npy"))) == 2
    np.testing.assert_allclose(normalised.features.mean(axis=3), 0, atol=1e-5)
    again = load(small, "testing", cfg=FeatureConfig(cmvn="meanvar"), cache_dir=cache)
    assert again.stats.computed == 0 and np.array_equal(again.features, normalised.features)
    assert not np.array_equal(plain.features, normalised.features)


def test_cached_features_equal_the_front_end_on_the_file(small):
    fs = load(small, "testing")
    i = next(j for j, p in enumerate(fs.paths) if p is not None)
    x, _ = read_wav(small / fs.paths[i])
    assert np.allclose(fs.features[i, 0], clip_features(x, FeatureConfig()), atol=1e-5)
    j = fs.paths.index(None)
    assert np.array_equal(fs.features[j, 0], clip_features(np.zeros(16000, np.float32), FeatureConfig()))


def test_changing_the_folder_invalidates_the_cache(small):
    before = cache.dataset_fingerprint(small)
    load(small, "testing")
    clip = small / "yes" / "extra_nohash_0.wav"
    write_wav(clip, np.zeros(16000, np.float32), 16000)
    assert cache.dataset_fingerprint(small) != before
    assert load(small, "testing").stats.computed > 0
    clip.unlink()
    assert cache.dataset_fingerprint(small) == before


def test_default_cache_lives_in_the_data_folder_or_falls_back(small, tmp_path, monkeypatch):
    fs = data.load_split(small, "testing", workers=1)
    assert fs.stats.computed > 0
    assert list((small / cache.CACHE_DIR_NAME).rglob("testing-*.npy"))
    other = make_gsc(tmp_path / "other", words=SMALL_WORDS, n_speakers=6)
    (other / cache.CACHE_DIR_NAME).write_text("not a folder")  # the data folder's cache is unusable
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.resolve_cache_dir(other) == tmp_path / "xdg" / "kwspi"
    data.load_split(other, "testing", workers=1)
    assert list((tmp_path / "xdg" / "kwspi").rglob("testing-*.npy"))


def test_a_damaged_cache_file_is_recomputed_not_fatal(small):
    cache = small.parent / "cache"
    good = load(small, "testing")
    (npy,) = cache.rglob("*.npy")
    npy.write_bytes(b"\x93NUMPY garbage")
    again = load(small, "testing")
    assert again.stats.computed == len(good) and np.array_equal(again.features, good.features)
    assert not list(cache.rglob("*.tmp"))  # atomic writes leave no temporaries


# --- robust loading ----------------------------------------------------------------------


def test_bad_clips_are_skipped_resampled_padded_or_cut(small, caplog):
    garbage, truncated, low_rate, long, odd = training_keyword_clips(small)[:5]
    garbage.write_bytes(b"this is not audio " * 100)
    truncated.write_bytes(truncated.read_bytes()[:3000])
    t = np.arange(8000) / 8000
    write_wav(low_rate, 0.5 * np.sin(2 * np.pi * 440 * t[:4000]), 8000)  # 0.5 s at 8 kHz
    write_wav(long, np.full(24000, 0.1, np.float32), 16000)  # 1.5 s
    write_wav(odd, np.full(12345, 0.1, np.float32), 16000)
    n = len(gsc.build_split(small, "training"))
    with caplog.at_level(logging.INFO, logger="kwspi.train.data"):
        fs = load(small, "training", aug=None)
    s = fs.stats
    assert (s.examples, s.skipped, len(fs)) == (n, 2, n - 2)
    assert (s.resampled, s.resampled_from, s.cut) == (1, (8000,), 1)
    assert s.padded == 2  # the 8 kHz clip (8000 samples once resampled) and the odd one
    rel = {p.relative_to(small).as_posix() for p in (garbage, truncated)}
    assert not rel & set(fs.paths)
    assert any(r in s.skipped_examples[0] for r in rel)
    records = [r for r in caplog.records if r.name == "kwspi.train.data.dataset"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "2 unreadable" in records[0].message and "8000 Hz" in records[0].message


def test_load_clip_resamples_pads_and_cuts(tmp_path):
    t = np.arange(8000) / 8000
    write_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), 8000)
    wave, rate, n = clips.load_clip(tmp_path / "a.wav", 16000, 16000)
    assert (wave.dtype, wave.shape, rate, n) == (np.int16, (16000,), 8000, 16000)
    spectrum = np.abs(np.fft.rfft(wave.astype(float)))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=2)  # 1 kHz stays 1 kHz (1 Hz bins)
    write_wav(tmp_path / "b.wav", np.full(12345, 0.25, np.float32), 16000)
    wave, _, n = clips.load_clip(tmp_path / "b.wav", 16000, 16000)
    assert n == 12345 and np.all(wave[:12345] == 8192) and not wave[12345:].any()
    write_wav(tmp_path / "c.wav", np.full(20000, 0.25, np.float32), 16000)
    wave, _, n = clips.load_clip(tmp_path / "c.wav", 16000, 16000)
    assert n == 20000 and wave.shape == (16000,)


def test_fresh_mode_also_skips_bad_clips(small):
    training_keyword_clips(small)[0].write_bytes(b"garbage")
    fs = load(small, "training", views=None)
    assert fs.stats.skipped == 1
    assert fs.features_for_epoch(3).shape == (len(fs), 1, 10, 49)  # every example computes without error


def test_a_split_with_no_readable_clip_is_an_error(small):
    for p in small.glob("*/*.wav"):
        if not p.parent.name.startswith("_"):
            p.write_bytes(b"junk")
    with pytest.raises(DatasetError, match="could be read"):
        load(small, "testing")


def test_missing_noise_folder_trains_without_noise(small, caplog):
    for p in (small / gsc.BACKGROUND_NOISE_DIR).iterdir():
        p.unlink()
    with caplog.at_level(logging.WARNING, logger="kwspi.train.data"):
        fs = load(small, "training", views=2)
    assert any("no background noise" in r.message for r in caplog.records)
    silence = fs.labels == SILENCE
    assert np.all(fs.views[0][silence] == fs.views[0][silence][0])  # shifted zeros stay zeros


# --- augmented views ---------------------------------------------------------------------


def test_views_are_deterministic_and_differ(small, tmp_path):
    a = load(small, "training", views=3, cache_dir=tmp_path / "a")
    b = load(small, "training", views=3, cache_dir=tmp_path / "b")
    for va, vb in zip(a.views, b.views):
        assert np.array_equal(va, vb)
    for i in range(3):
        for j in range(i + 1, 3):
            differ = np.any(a.views[i] != a.views[j], axis=(1, 2, 3))
            assert differ.mean() > 0.9
    other_seed = load(small, "training", views=1, seed=1, cache_dir=tmp_path / "c")
    kw = a.labels < len(gsc.KEYWORDS)  # the same keyword clips under either seed
    assert not np.array_equal(a.views[0][kw], other_seed.views[0][other_seed.labels < len(gsc.KEYWORDS)])


def test_epoch_e_uses_view_e_mod_views(small):
    fs = load(small, "training", views=3)
    assert fs.features_for_epoch(4) is fs.views[1]
    assert fs.features_for_epoch(5) is fs.views[2]


def test_training_views_are_augmented_and_eval_is_not(small):
    plain = load(small, "training", aug=None)
    aug = load(small, "training", views=2)
    assert plain.paths == aug.paths and len(plain.views) == 1 and len(aug.views) == 2
    assert np.any(aug.views[0] != plain.features, axis=(1, 2, 3)).mean() > 0.9
    silence = aug.labels == SILENCE
    noisy = np.any(aug.views[0][silence] != plain.features[silence], axis=(1, 2, 3))
    assert 0.5 < noisy.mean() < 1.0  # silence gets noise with p = 0.8
    test_plain = load(small, "testing", aug=None)
    test_aug = load(small, "testing", aug=AugmentConfig(), views=4)
    assert len(test_aug.views) == 1 and np.array_equal(test_aug.features, test_plain.features)


def test_fresh_mode_computes_each_epoch_and_matches_cached_views(small):
    cached = load(small, "training", views=2)
    fresh = load(small, "training", views=None)
    assert load(small, "training", views=0).fresh is not None
    assert fresh.views == () and fresh.fresh is not None and fresh.paths == cached.paths
    for epoch in (0, 1):
        assert np.array_equal(fresh.features_for_epoch(epoch), cached.views[epoch])
    third = fresh.features_for_epoch(2)[0]
    assert not np.array_equal(third, cached.views[0][0]) and not np.array_equal(third, cached.views[1][0])


def test_a_pool_gives_the_same_features_as_one_process(small, tmp_path):
    one = load(small, "training", views=2, workers=1, cache_dir=tmp_path / "one")
    two = load(small, "training", views=2, workers=2, cache_dir=tmp_path / "two")
    assert two.stats.computed == one.stats.computed
    for a, b in zip(one.views, two.views):
        assert np.array_equal(a, b)


def test_progress_is_reported_through_the_callback(small):
    calls = []

    @contextlib.contextmanager
    def progress(label, total):
        calls.append((label, total, []))
        yield lambda n, status=None: calls[-1][2].append(n)

    fs = load(small, "testing", progress=progress)
    assert [(label, total, sum(steps)) for label, total, steps in calls] == [("features testing", len(fs), len(fs))]
