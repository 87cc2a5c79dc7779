"""Synthetic streams (:mod:`kwspi.train.speech.stream`): content, timing, SNR, determinism and
bounded memory. The truth file and the scoring rule: test_evaluation_truth.py, test_evaluation_score.py."""

from __future__ import annotations

import os
import shutil
import tracemalloc
import wave

import numpy as np
import pytest
from click.testing import CliRunner

from kwspi import gsc
from kwspi.train.speech import stream, synth, texts
from kwspi.deploy.evaluation.truth import read_truth
from kwspi.train.speech.stream import StreamConfig
from kwspi.wavio import read_wav

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
RATE = stream.SAMPLE_RATE


# --- what is said -------------------------------------------------------


def test_phrases_hold_exactly_their_keyword_and_other_text_none():
    for kw, templates in texts.KEYWORD_PHRASES.items():
        for t in templates + texts.GENERIC_PHRASES:
            assert t.split().count("{kw}") == 1, t
            assert stream.keyword_tokens(t.replace("{kw}", kw), gsc.KEYWORDS) == [kw], t
    for text in texts.SENTENCES + texts.CONFUSABLE_SENTENCES + texts.CONFUSABLE_WORDS:
        assert stream.keyword_tokens(text, gsc.KEYWORDS) == [], text


def test_training_confusables_are_never_spoken_in_a_stream():
    said = (texts.SENTENCES + texts.CONFUSABLE_SENTENCES + texts.CONFUSABLE_WORDS + texts.GENERIC_PHRASES
            + tuple(p for ps in texts.KEYWORD_PHRASES.values() for p in ps))
    spoken = {word for text in said for word in text.lower().split()}
    training = set(texts.TRAINING_CONFUSABLES)
    assert len(training) == len(texts.TRAINING_CONFUSABLES) and not training & spoken
    assert not training & set(gsc.WORDS_V2)  # nor a GSC word, keyword or not


def test_config_errors_are_user_errors():
    with pytest.raises(stream.StreamError, match="too short"):
        StreamConfig(seconds=3).check()
    with pytest.raises(stream.StreamError, match="negative"):
        StreamConfig(negative=True, mix=(("keyword", 1.0),)).check()
    with pytest.raises(stream.StreamError, match="single"):
        StreamConfig(keywords=("lights on",)).check()
    with pytest.raises(stream.StreamError, match="text 'poems'"):
        StreamConfig(text="poems").check()


# --- building streams (espeak-ng) -----------------------------------------------------


@pytest.fixture(scope="module")
def blocks():
    """A 30 s stream at 10 dB SNR, as blocks (speech and noise tracks kept apart)."""
    config = StreamConfig(seconds=30, snr_db=10, seed=3)
    return config, list(stream.iter_blocks(config))


@needs_espeak
def test_blocks_tile_the_stream_and_keywords_keep_their_distance(blocks):
    config, bl = blocks
    assert sum(len(b.speech) for b in bl) == 30 * RATE
    assert all(len(b.speech) == len(b.noise) for b in bl)
    rows = [r for b in bl for r in b.rows]
    kws = [r for r in rows if r.label in gsc.KEYWORDS]
    assert len(kws) >= 6 and len(rows) > len(kws)
    assert all(config.lead_in_s <= r.start_s < r.end_s <= 30 - config.tail_s for r in rows)
    assert all(b.start_s - a.end_s >= config.keyword_gap_s - 1e-3 for a, b in zip(kws, kws[1:]))


@needs_espeak
def test_truth_rows_mark_where_the_words_sound(blocks):
    _, bl = blocks
    speech = np.concatenate([b.speech for b in bl]).astype(np.float64)
    rows = [r for b in bl for r in b.rows]
    inside = np.zeros(len(speech), bool)
    for r in rows:
        s, e = int(round(r.start_s * RATE)), int(round(r.end_s * RATE))
        inside[s:e] = True
        # Within 100 ms of each boundary the word sounds already (still): some 10 ms frame
        # there is within 55 dB of the word's loudest, speech_bounds' rule. Not closer: in a
        # phrase said in one go, the closure before a stop ("down | please") is silence that
        # belongs to the word after it.
        levels = synth.frame_levels(speech[s:e])
        assert levels[:10].max() > levels.max() - 55 and levels[-10:].max() > levels.max() - 55, r
    assert not np.any(speech[~inside]), "speech outside the rows of the truth file"


@needs_espeak
def test_snr_is_as_asked(blocks):
    config, bl = blocks
    speech = np.concatenate([b.speech for b in bl]).astype(np.float64)
    noise = np.concatenate([b.noise for b in bl]).astype(np.float64)
    active = np.zeros(len(speech), bool)
    for r in (r for b in bl for r in b.rows):
        active[int(round(r.start_s * RATE)):int(round(r.end_s * RATE))] = True
    snr = 10 * np.log10(np.mean(speech[active] ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.5)
    # And as a listener would measure it on the mix: noise from the pauses, speech from the words.
    mixed = speech + noise
    p_noise = np.mean(mixed[~active] ** 2)
    assert 10 * np.log10(np.mean(mixed[active] ** 2) / p_noise - 1) == pytest.approx(10.0, abs=1.5)


@needs_espeak
def test_write_stream_is_deterministic_and_the_wav_is_16k_mono_16bit(tmp_path):
    config = StreamConfig(seconds=12, seed=5)
    a = stream.write_stream(tmp_path / "a.wav", tmp_path / "a.csv", config)
    stream.write_stream(tmp_path / "b.wav", tmp_path / "b.csv", config)
    stream.write_stream(tmp_path / "c.wav", tmp_path / "c.csv", StreamConfig(seconds=12, seed=6))
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert (tmp_path / "a.wav").read_bytes() != (tmp_path / "c.wav").read_bytes()
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (RATE, 1, 2, 12 * RATE)
    assert a.words == len(read_truth(tmp_path / "a.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.wav", "b.csv", "b.wav", "c.csv", "c.wav"]
    umask = os.umask(0)
    os.umask(umask)
    for name in ("a.wav", "a.csv"):  # as any new file: not mkstemp's 0600
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@needs_espeak
def test_negative_stream_has_no_keyword_and_memory_does_not_grow_with_length(tmp_path):
    def build(seconds):
        config = StreamConfig(seconds=seconds, seed=1, negative=True)
        return lambda: stream.write_stream(tmp_path / "n.wav", tmp_path / "n.csv", config)

    short = _peak_bytes(build(20))
    long = _peak_bytes(build(240))
    rows = read_truth(tmp_path / "n.csv")
    assert len(rows) > 200
    assert not [r for r in rows if r.label in gsc.KEYWORDS]
    assert {r.label for r in rows} & set(texts.CONFUSABLE_WORDS)
    full = 240 * RATE * 4  # the whole stream as float32: 15.4 MB
    assert long < full / 2, f"peak {long / 1e6:.1f} MB for a {full / 1e6:.1f} MB stream"
    assert long < 1.5 * short, f"peak {long / 1e6:.1f} MB for 240 s, {short / 1e6:.1f} MB for 20 s"


@needs_espeak
def test_synth_stream_command(tmp_path):
    from kwspi.train.speech.cli import synth_stream

    runner = CliRunner()
    result = runner.invoke(synth_stream, [str(tmp_path / "s.wav"), "--seconds", "8", "--seed", "2",
                                          "--exclude-voices", "en-029,en-gb-scotland"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.csv").read_text().startswith("label,start_s,end_s,engine,voice\n")
    assert read_wav(tmp_path / "s.wav")[0].shape == (8 * RATE,)
    assert "s.wav: 8.0 s" in result.output
    both = runner.invoke(synth_stream, [str(tmp_path / "x.wav"), "--voices", "en-us", "--exclude-voices", "en-gb"])
    assert both.exit_code == 2 and "not both" in both.output
    short = runner.invoke(synth_stream, [str(tmp_path / "x.wav"), "--seconds", "1"])
    assert short.exit_code == 2


@needs_espeak
def test_synth_stream_says_the_text_keywords_and_speakers_it_is_given(tmp_path):
    from kwspi.train.speech.cli import synth_stream

    result = CliRunner().invoke(synth_stream, [str(tmp_path / "t.wav"), "--seconds", "40", "--negative", "--text",
                                               "training", "--speakers", "3"])
    assert result.exit_code == 0, result.output
    rows = read_truth(tmp_path / "t.csv")
    training = {w for t in texts.CONTEXT_SENTENCES + texts.TRAINING_CONFUSABLES for w in t.lower().split()}
    evaluation = {w for t in texts.SENTENCES + texts.CONFUSABLE_WORDS + texts.CONFUSABLE_SENTENCES
                  for w in t.lower().split()}
    said = {r.label for r in rows}
    assert said <= training and said - evaluation
    assert len({r.voice for r in rows}) <= 3
    result = CliRunner().invoke(synth_stream, [str(tmp_path / "k.wav"), "--seconds", "30", "--keywords", "yes,no"])
    assert result.exit_code == 0, result.output
    assert {r.label for r in read_truth(tmp_path / "k.csv")} & set(gsc.KEYWORDS) == {"yes", "no"}


@needs_espeak
def test_phrase_speech_is_connected_timed_and_names_the_speaker(tmp_path):
    config = StreamConfig(seconds=25, seed=5, mix=(("phrase", 1.0),))
    a = stream.write_stream(tmp_path / "a.wav", tmp_path / "a.csv", config)
    stream.write_stream(tmp_path / "b.wav", tmp_path / "b.csv", config)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    rows = read_truth(a.truth)
    assert rows and all(r.engine == "espeak" and r.voice for r in rows)
    # Said in one go: a phrase's words follow each other with no gap (joined words have 40 ms or more).
    gaps = [b.start_s - a.end_s for a, b in zip(rows, rows[1:]) if b.start_s - a.end_s < 0.3]
    assert gaps and min(gaps) < 0.03
    assert all(b.start_s >= a.start_s for a, b in zip(rows, rows[1:]))
    joined = stream.write_stream(tmp_path / "j.wav", tmp_path / "j.csv", StreamConfig(seconds=25, seed=5,
                                                                                     mix=(("phrase", 1.0),),
                                                                                     speech="joined"))
    rows = read_truth(joined.truth)
    gaps = [b.start_s - a.end_s for a, b in zip(rows, rows[1:]) if b.start_s < a.end_s + 0.3]
    assert gaps and min(gaps) >= 0.039


def test_synth_stream_options_default_to_the_config():
    from kwspi.train.speech import cli

    params = {p.name: p for p in cli.synth_stream.params}
    assert params["speech"].default == StreamConfig().speech == "phrase"
    assert params["text"].default == StreamConfig().text and params["speakers"].default == StreamConfig().speakers
    assert params["transformed_share"].default == StreamConfig().transformed_share
    params = {p.name: p for p in cli.synth_context.params}
    from kwspi.train.speech.context import ContextConfig

    assert params["negatives"].default == ContextConfig().negatives
    with pytest.raises(stream.StreamError, match="speech 'spoken'"):
        StreamConfig(speech="spoken").check()
