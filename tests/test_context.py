"""Keyword-in-context clips (kwspi.train.speech.context): the keyword lies whole inside its
window, the negatives hold no keyword, the catalogue is synth's, and a seed fixes the files."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from kwspi import gsc
from kwspi.train.speech import context, engines, stream, texts
from kwspi.train.speech.context import NEGATIVE_FOLDER, ContextConfig
from kwspi.train.speech.engines import Speaker, SynthError
from kwspi.train.speech.synth import CLIP_SAMPLES, SynthConfig

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
KEYWORDS = ("yes", "stop", "left")


def _speakers():
    out = [Speaker("en-us", "", 150, 50), Speaker("en-gb", "f2", 190, 30)]
    if engines.why_unavailable("mbrola") is None:
        out.append(engines.module("mbrola").make_speakers(1, seed=0)[0])
    return out


def test_context_texts_hold_no_keyword_and_are_not_the_streams():
    for text in texts.CONTEXT_BEFORE + texts.CONTEXT_AFTER + texts.CONTEXT_SENTENCES:
        assert not stream.keyword_tokens(text, gsc.KEYWORDS), text
    assert not set(texts.CONTEXT_SENTENCES) & set(texts.SENTENCES + texts.CONFUSABLE_SENTENCES)


@pytest.mark.parametrize("n", range(4))
def test_the_keyword_lies_whole_inside_its_window(n):
    config = ContextConfig(voices=SynthConfig(words=KEYWORDS))
    margin = int(config.margin_s * 16000)
    starts = []
    for spk in _speakers():
        for kw in KEYWORDS:
            clip, status = context.positive_clip(kw, spk, np.random.default_rng([n, engines.key(kw)]), config)
            assert status == "ok", (spk, kw)
            assert clip.audio.shape == (CLIP_SAMPLES,) and clip.audio.dtype == np.float32
            (_, s, e), = [r for r in clip.rows if r[0] == kw]
            assert margin <= s < e <= CLIP_SAMPLES - margin, (spk, kw, s, e)
            # The window's loudest part is speech, and some of it is the keyword.
            assert np.max(np.abs(clip.audio[s:e])) > 0.1 * np.max(np.abs(clip.audio))
            starts.append(s)
    assert len(set(starts)) > len(starts) // 2  # the keyword moves about the window


def test_keyword_phrases_have_context_on_at_least_one_side():
    rng = np.random.default_rng(0)
    sides = set()
    for _ in range(200):
        words, at = context.keyword_words("go", rng, 0.25)
        assert words[at] == "go" and len(words) > 1
        sides.add((at > 0, at < len(words) - 1))
    assert sides == {(True, True), (True, False), (False, True)}


def test_negative_windows_hold_speech_and_no_keyword():
    config = ContextConfig(voices=SynthConfig(words=KEYWORDS))
    for i, spk in enumerate(_speakers()):
        clip, status = context.negative_clip(spk, np.random.default_rng(i), config)
        assert status == "ok"
        assert clip.rows and not [r for r in clip.rows if r[0] in gsc.KEYWORDS]
        spoken = sum(e - s for _, s, e in clip.rows)
        assert spoken > CLIP_SAMPLES // 2, spoken  # mostly speech, by the word times


def _small(tmp_path, name, **kw):
    config = ContextConfig(voices=SynthConfig(words=("yes", "no"), speakers=3, noise_seconds=1.0, **kw),
                           negatives=2)
    summary = context.synthesize_context(tmp_path / name, config, jobs=2)
    return tmp_path / name, summary


def test_same_seed_same_files_and_synths_catalogue(tmp_path):
    a, summary = _small(tmp_path, "a")
    b, _ = _small(tmp_path, "b")
    c, _ = _small(tmp_path, "c", seed=1)
    clips = sorted(p.relative_to(a) for p in a.glob("*/*.wav") if not p.parent.name.startswith("_"))
    assert summary.written == len(clips) == 3 * (2 + 2)
    assert {p.parent.name for p in clips} == {"yes", "no", NEGATIVE_FOLDER}
    assert all(p.name.endswith(("_nohash_c0.wav", "_nohash_c1.wav")) for p in clips)
    for p in clips:
        assert (a / p).read_bytes() == (b / p).read_bytes(), p
    assert sorted(p.relative_to(c) for p in c.glob("*/*.wav")) != sorted(p.relative_to(a) for p in a.glob("*/*.wav"))
    with open(a / gsc.CATALOGUE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["speaker"] for r in rows} == {p.name.split("_nohash_")[0] for p in clips}
    assert all(r["engine"] == "espeak" and r["voice"] and "transform" in r for r in rows)
    # Clips are split by their speaker, as synth's.
    listed = (a / gsc.VALIDATION_LIST).read_text().split() + (a / gsc.TESTING_LIST).read_text().split()
    assert all(gsc.which_set(x) != "training" for x in listed)
    assert all(x.split("/")[1].startswith(tuple(r["speaker"] for r in rows if r["split"] != "training"))
               for x in listed)


def test_a_phrase_is_no_keyword():
    with pytest.raises(SynthError, match="single words"):
        context.check_keywords(["lights on"])
