"""What each voice engine says for the keywords, heard by an automatic recogniser.

For every installed engine (or those given), every voice at the slowest, middle and fastest
of its speeds (middle pitch) says each keyword; pocketsphinx (``pip install pocketsphinx``;
its bundled US English model) picks the most likely of the 35 GSC words, and the active
speech is measured. Prints JSON: per engine, voice and keyword, what was heard at each
speed, the seconds of audible speech, and ``leave_out``: heard as another word, or as
nothing, at every speed. The engines' ``CANNOT_SAY`` tables are those (espeak-ng's
excepted: the recogniser misses its formant voices on most words, so it judges nothing
there). Engines' exclusions are ignored here, so a rerun re-judges them.

    python bench/check_keywords.py --engines mbrola,rhvoice,piper,kokoro > keywords.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from kwspi import gsc
from kwspi.train.speech import engines, synth
from kwspi.train.speech.engines import Speaker


def recogniser():
    from pocketsphinx import Decoder

    d = Decoder(loglevel="FATAL")
    d.add_jsgf_string("words", "#JSGF V1.0;\ngrammar w;\npublic <w> = " + " | ".join(gsc.WORDS_V2) + " ;\n")
    d.activate_search("words")

    def hear(x: np.ndarray) -> str:
        x = 0.5 * x / (np.max(np.abs(x)) + 1e-9)
        pad = np.zeros(3200)
        pcm = (np.concatenate([pad, x, pad]) * 32767).astype(np.int16)
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        return d.hyp().hypstr if d.hyp() else ""

    return hear


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default=",".join(engines.ENGINES))
    args = ap.parse_args()
    hear = recogniser()
    out = {}
    for name in engines.usable(args.engines.split(",")):
        mod = engines.module(name)
        speeds = (mod.SPEEDS[0], sum(mod.SPEEDS) // 2, mod.SPEEDS[1])
        pitch = sum(mod.PITCHES) // 2
        res = out[name] = {}
        for voice in mod.list_voice_names():
            res[voice] = {}
            for w in gsc.KEYWORDS:
                xs = [engines.speak(w, Speaker(voice, "", s, pitch, engine=name)) for s in speeds]
                heard = [hear(x) for x in xs]
                res[voice][w] = {"heard": heard, "active_s": [round(synth.active_seconds(x), 2) for x in xs],
                                 "leave_out": all(h != w for h in heard)}
            print(name, voice, " ".join(f"{w}:{'/'.join(h or '-' for h in r['heard'])}{'*' if r['leave_out'] else ''}"
                                        for w, r in res[voice].items()), file=sys.stderr)
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
