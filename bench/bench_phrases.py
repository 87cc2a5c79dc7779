"""Phrase speech per engine: seconds per phrase, and how well the keyword's times hold.

    .venv/bin/python bench/bench_phrases.py --speakers 3 --out results/phrase_times.json

For each engine installed here, ``--speakers`` of its speakers each say one keyword-in-context
phrase per keyword (:func:`kwspi.train.speech.context.keyword_words`, seeded) with
:func:`kwspi.train.speech.phrases.speak_phrase`, by the engine's own method, one at a time.
Per engine: ``method``, ``s_per_phrase``, ``words_per_phrase``, and for the keyword:

- ``kw_ratio_vs_alone``: median of (keyword's span in the phrase) / (keyword said alone,
  trimmed); near 1 when the times fit, 0.5-1 is usual (a word said alone is drawn out);
- ``kw_sounding``: share of phrases whose keyword span has a frame within 30 dB of the
  phrase's loudest (the time lies on speech).

Where the engine reports word events (espeak-ng, MBROLA), the same phrases are also timed by
``cuts`` (the method other engines use), and ``cuts_error_ms`` gives the median and 90th
percentile of |cut boundary - event boundary| over the keyword's start and end: how far the
cuts method is off where the truth is known. Kokoro is slow (a second or so a word): give it
fewer speakers. Prints one JSON object (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine  # noqa: E402

import numpy as np  # noqa: E402

from kwspi import gsc  # noqa: E402
from kwspi.train.speech import context, engines, phrases, synth  # noqa: E402


def phrases_of(speakers):
    for spk in speakers:
        for kw in gsc.KEYWORDS:
            if not engines.cannot_say(spk, kw):
                rng = np.random.default_rng([0, int(spk.id, 16), engines.key(kw)])
                yield spk, kw, context.keyword_words(kw, rng, 0.25)


def bench(name: str, n_speakers: int) -> dict:
    speakers = engines.make_speakers(n_speakers, 0, [name])
    todo = list(phrases_of(speakers))
    engines.speak("yes", speakers[0])  # load models and voices outside the timing
    method = phrases.method_of(name)
    spoken, seconds = [], 0.0
    for spk, kw, (words, at) in todo:
        t0 = time.perf_counter()
        p = phrases.speak_phrase(words, spk, np.random.default_rng(0))
        seconds += time.perf_counter() - t0
        spoken.append((spk, kw, words, at, p))
    ratios, sounding, errors = [], [], []
    for spk, kw, words, at, p in spoken:
        if p is None:
            continue
        s, e = p.spans[at]
        alone = engines.speak(kw, spk)
        a0, a1 = synth.speech_bounds(alone)
        ratios.append((e - s) / max(1, a1 - a0))
        levels = synth.frame_levels(np.asarray(p.audio, np.float64))
        span = levels[s // 160:max(s // 160 + 1, e // 160)]
        sounding.append(bool(span.size and span.max() > levels.max() - 30))
        if method == "events":
            c = phrases.speak_phrase(words, spk, np.random.default_rng(0), method="cuts")
            if c is not None:
                errors += [abs(c.spans[at][0] - s) / 16, abs(c.spans[at][1] - e) / 16]
    out = {"method": method, "phrases": len(todo), "silent": sum(p is None for *_, p in spoken),
           "s_per_phrase": round(seconds / len(todo), 3),
           "words_per_phrase": round(float(np.mean([len(w) for _, _, (w, _) in todo])), 2),
           "kw_ratio_vs_alone": round(float(np.median(ratios)), 2),
           "kw_sounding": round(float(np.mean(sounding)), 3)}
    if errors:
        out["cuts_error_ms"] = {"median": round(float(np.median(errors)), 1),
                                "p90": round(float(np.percentile(errors, 90)), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--engines", default=",".join(engines.ENGINES))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = {"machine": machine(), "speakers": args.speakers, "engines": {}}
    for name in engines.parse_engines(args.engines.split(",")):
        reason = engines.why_unavailable(name)
        result["engines"][name] = {"skipped": reason} if reason else bench(name, args.speakers)
        print(name, result["engines"][name], file=sys.stderr)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
