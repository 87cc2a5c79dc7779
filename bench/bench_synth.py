"""Synthesis speed of `kwspi synth`: clips per second into a fresh temporary folder.

    .venv/bin/python bench/bench_synth.py --speakers 20 --jobs 2

Prints one JSON object. The default is 20 speakers x the 35 GSC words = 700 clips; the
noise files are made 1 s long so that the figure is the clips' alone. Baseline in the same
run: bare `espeak-ng --stdout WORD` calls, one at a time (the engine alone, no resampling,
placement or writing), so `ratio_vs_bare_espeak` says what the pipeline and its jobs add.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

from kwspi.train.speech import espeak, synth


def bare_espeak_clips_per_s(words) -> float:
    t0 = time.perf_counter()
    for word in words:
        subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", word], capture_output=True, check=True)
    return len(words) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = synth.SynthConfig(speakers=args.speakers, seed=args.seed, noise_seconds=1.0)
    espeak.make_speakers(args.speakers, args.seed)  # voice listing and probing: not per clip
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = synth.synthesize_dataset(tmp, config, jobs=args.jobs)
        seconds = time.perf_counter() - t0
    clips = summary.written + summary.total_dropped
    bare = bare_espeak_clips_per_s(config.words[:20])
    print(json.dumps({
        "clips_per_s": round(clips / seconds, 1),
        "jobs": args.jobs,
        "clips": clips,
        "written": summary.written,
        "dropped": summary.dropped,
        "seconds": round(seconds, 2),
        "bare_espeak_clips_per_s": round(bare, 1),
        "ratio_vs_bare_espeak": round(clips / seconds / bare, 2),
        "cpus": os.cpu_count(),
        "espeak_ng": espeak.espeak_version().split(":")[1].split()[0],
        "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
