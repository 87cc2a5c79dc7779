"""Phrases said in one go (kwspi.train.speech.phrases): per installed engine the word times
are ordered, inside the audio and on the keyword's sound; an engine without timing falls
back to joined words with one log line."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kwspi.train.speech import engines, espeak, phrases, synth


@pytest.fixture(autouse=True)
def _own_kokoro_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KWSPI_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("name", list(engines.ENGINES))
def test_phrase_word_times_are_sane(name):
    reason = engines.why_unavailable(name)
    if reason is not None:
        pytest.skip(f"voice engine {name} not installed here ({reason})")
    speaker = engines.make_speakers(1, 0, [name])[0]
    kw = next(w for w in ("yes", "down", "right", "stop") if not engines.cannot_say(speaker, w))
    words = ["I", "think", kw, "for", "me"]
    p = phrases.speak_phrase(words, speaker, np.random.default_rng(0))
    assert p is not None and p.words == tuple(words) and len(p.spans) == len(words)
    assert p.method == phrases.method_of(name) != "joined"
    starts = [s for s, _ in p.spans]
    assert starts == sorted(starts) and all(0 <= s < e <= len(p.audio) for s, e in p.spans)
    # The keyword's span lies on its sound: loud frames inside, and about as long as the
    # keyword said alone (a word said alone is drawn out; in a phrase it is shorter).
    levels = synth.frame_levels(np.asarray(p.audio, np.float64))
    s, e = p.spans[2]
    assert levels[s // 160:e // 160].max() > levels.max() - 20
    a0, a1 = synth.speech_bounds(engines.speak(kw, speaker))
    assert 0.3 < (e - s) / (a1 - a0) < 1.6, ((e - s) / 16000, (a1 - a0) / 16000)


def test_events_are_the_command_lines_audio():
    speaker = engines.Speaker("en-gb", "f3", 150, 40)
    audio, starts = espeak.speak_timed("turn the lights on", speaker)
    cli = espeak.speak("turn the lights on", speaker)
    n = min(len(audio), len(cli))
    assert np.max(np.abs(audio[:n] - cli[:n])) < 1e-3  # the same voice, variant included
    assert starts[0] == 0 and all(b > a for a, b in zip(starts, starts[1:]))


def test_a_word_run_into_the_one_before_shares_its_span():
    x = np.zeros(16000, np.float32)
    x[1600:4800] = 0.3
    x[6400:12800] = 0.3
    spans = phrases.spans_from_starts(x, [0, 5600, None])
    assert spans[0] == (1440, 4960) and spans[1] == spans[2] == (6240, 12960)


def test_an_engine_without_timing_falls_back_to_joined_words_once(monkeypatch, caplog):
    monkeypatch.setattr(espeak, "timed_unavailable", lambda: "no libespeak-ng here")
    phrases._method.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            assert phrases.method_of("espeak") == "joined"
            assert phrases.method_of("espeak") == "joined"
        assert [r.getMessage() for r in caplog.records].count(
            "phrases of espeak are spoken word by word and joined: no libespeak-ng here") == 1
        p = phrases.speak_phrase(["go", "home"], engines.Speaker("en-us"), np.random.default_rng(0))
        assert p.method == "joined" and p.spans[1][0] - p.spans[0][1] >= 0.04 * 16000 - 1
    finally:
        phrases._method.cache_clear()
