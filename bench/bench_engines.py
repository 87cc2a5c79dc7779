"""Clips per second of each voice engine, through the real clip path of `kwspi synth`.

    .venv/bin/python bench/bench_engines.py --speakers 4 --jobs 1

For each engine installed here, ``--speakers`` of its speakers each say the 10 keywords
(:func:`kwspi.train.speech.synth.render_clip`: jittered speed and pitch, trimming, levelling;
no WAV writing), one clip at a time with ``--jobs 1``. Baseline in the same run: espeak-ng,
so ``ratio_vs_espeak`` is the figure to trust on a shared machine. Kokoro is timed twice:
``cold`` into an empty output cache and ``cached`` again from it (a second data set with
the same speakers). Words an engine leaves out are not spoken and not counted. Prints one
JSON object.

    .venv/bin/python bench/bench_engines.py --engines espeak,mbrola --transforms all --jobs 1

adds ``transforms``: for each kind (vtl, pitch, room, mic) and for all four at once,
``--speakers`` transformed speakers of ``--transform-base`` (default MBROLA) through the same
clip path, each with its own spec, so a room's impulse response is computed once per speaker
inside the timing, as in a data set. ``ratio_vs_base`` divides by the base engine's figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine  # noqa: E402

import numpy as np  # noqa: E402

from kwspi import gsc  # noqa: E402
from kwspi.train.speech import engines, synth, transforms  # noqa: E402


def clips_per_s(name: str, n_speakers: int, jobs: int) -> dict:
    return _timed(engines.make_speakers(n_speakers, 0, [name]), jobs)


def transform_clips_per_s(kind: str, base: str, n_speakers: int, jobs: int) -> dict:
    bases = engines.make_speakers(n_speakers, 0, [base])
    kinds = transforms.KINDS if kind == "all" else (kind,)
    speakers = transforms.transformed_speakers(bases, n_speakers, kinds, 0, engines=(base,))
    engines.speak("yes", bases[0])  # the base engine's voices load outside the timing
    transforms.apply("vtl1.1+mic1", np.zeros(1600, np.float32))  # import the libraries outside the timing
    transforms._room_ir.cache_clear()  # each speaker's room is made inside the timing, as in a data set
    transforms._mic_sos.cache_clear()
    return _timed(speakers, jobs, warm=False)


def _timed(speakers, jobs: int, warm: bool = True) -> dict:
    todo = [(s, w) for s in speakers for w in gsc.KEYWORDS if not engines.cannot_say(s, w)]
    if warm:
        engines.speak("yes", speakers[0])  # load models and voices outside the timing

    def one(item):
        spk, word = item
        return synth.render_clip(word, spk, synth.clip_rng(0, spk, word, 0))[1]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        status = list(pool.map(one, todo))
    seconds = time.perf_counter() - t0
    return {"clips_per_s": round(len(todo) / seconds, 2), "clips": len(todo), "ok": status.count("ok"),
            "seconds": round(seconds, 2), "speakers": len(speakers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--engines", default=",".join(engines.ENGINES))
    parser.add_argument("--transforms", default="", help="kinds to time (vtl,pitch,room,mic or all); none by default")
    parser.add_argument("--transform-base", default="mbrola", help="the engine whose speakers are transformed")
    args = parser.parse_args()
    names = engines.usable(args.engines.split(","))
    out = {"machine": machine(), "jobs": args.jobs, "engines": {}}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["KWSPI_CACHE"] = cache  # Kokoro's cold figure starts from nothing
        for name in names:
            out["engines"][name] = clips_per_s(name, args.speakers, args.jobs)
            if name == "kokoro":
                out["engines"]["kokoro (cached)"] = clips_per_s(name, args.speakers, args.jobs)
    base = out["engines"].get("espeak", {}).get("clips_per_s")
    for fig in out["engines"].values():
        fig["ratio_vs_espeak"] = round(fig["clips_per_s"] / base, 3) if base else None
    kinds = transforms.parse_kinds(args.transforms.split(",")) if args.transforms else ()
    if kinds:
        plain = out["engines"].get(args.transform_base) or clips_per_s(args.transform_base, args.speakers, args.jobs)
        out["transforms"] = {"base": args.transform_base, "base_clips_per_s": plain["clips_per_s"]}
        for kind in kinds + (("all",) if len(kinds) == len(transforms.KINDS) else ()):
            fig = transform_clips_per_s(kind, args.transform_base, args.speakers, args.jobs)
            fig["ratio_vs_base"] = round(fig["clips_per_s"] / plain["clips_per_s"], 3)
            out["transforms"][kind] = fig
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
