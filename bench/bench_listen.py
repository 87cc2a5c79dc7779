"""Real-time factor of ``kwspi listen --input`` on a 3-minute stream, process start included.

The stream is espeak-ng speech (sentences with the GSC keywords in them, several voices)
over background noise, or noise with tone bursts where espeak-ng is missing. It is written
at 16 kHz and at 48 kHz (the second adds the resampler's cost). Each file is run ``--runs``
times as a fresh ``kwspi listen --input FILE --json`` process; the report gives the median
wall time, the child's CPU time (user + system), the real-time factor (wall / audio
seconds) and the start-up cost measured the same way on a 1.5 s file.

Model: as in bench_engine.py (``--model``, else bundled, else a cached paper-sized export).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_listen.py [--model PATH] [--runs 3]
"""

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import machine
from bench_engine import resolve_model
from kwspi.deploy.sources import Resampler
from kwspi.wavio import read_wav_bytes_lenient, write_wav

SECONDS = 180.0
SENTENCES = [
    "turn the lights on", "yes please", "no, not now", "go up the stairs", "look down", "turn left here",
    "then right", "switch it off", "stop the music", "the weather is nice today", "seven birds sat on a tree",
    "could you open the door", "go", "stop", "left", "right", "on", "off", "yes", "no",
]
VOICES = ["en", "en-us", "en-gb-x-rp", "en+f3", "en+m3"]


def speech_stream(seconds: float, rng) -> np.ndarray:
    """16 kHz float32: espeak-ng sentences with pauses, over pink-ish noise."""
    out, n = [], 0
    total = int(seconds * 16000)
    i = 0
    while n < total:
        text, voice = SENTENCES[i % len(SENTENCES)], VOICES[i % len(VOICES)]
        wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
        x, rate = read_wav_bytes_lenient(wav)
        x = Resampler(rate).process(x, last=True)
        pause = np.zeros(int(rng.uniform(0.5, 2.5) * 16000), dtype=np.float32)
        out += [0.5 * x / max(1e-6, np.abs(x).max()), pause]
        n += len(x) + len(pause)
        i += 1
    x = np.concatenate(out)[:total]
    noise = np.cumsum(rng.standard_normal(total)) * 0.002
    noise -= np.convolve(noise, np.ones(400) / 400, mode="same")  # drop the random walk's drift
    return (x + noise + 0.005 * rng.standard_normal(total)).astype(np.float32)


def tone_stream(seconds: float, rng) -> np.ndarray:
    total = int(seconds * 16000)
    x = 0.01 * rng.standard_normal(total)
    t = np.arange(int(0.4 * 16000)) / 16000
    for start in np.arange(0.5, seconds - 0.5, 2.0):
        i = int(start * 16000)
        x[i:i + len(t)] += 0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t)
    return x.astype(np.float32)


def kwspi_command() -> list[str]:
    script = Path(sys.executable).parent / "kwspi"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from kwspi.cli import main; main(prog_name='kwspi')"]


def run_once(model: Path, wav: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([*kwspi_command(), "listen", "--model", str(model), "--input", str(wav), "--json"],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise SystemExit(f"kwspi listen failed: {out.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "detections": len(out.stdout.splitlines())}


def measure(model: Path, wav: Path, seconds: float, runs: int) -> dict:
    got = [run_once(model, wav) for _ in range(runs)]
    wall = statistics.median(g["wall_s"] for g in got)
    cpu = statistics.median(g["cpu_s"] for g in got)
    return {"audio_s": seconds, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "rtf_wall": round(wall / seconds, 5), "rtf_cpu": round(cpu / seconds, 5),
            "runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in g.items()} for g in got]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    model = resolve_model(args.model)
    rng = np.random.default_rng(0)
    have_espeak = shutil.which("espeak-ng") is not None
    x = speech_stream(SECONDS, rng) if have_espeak else tone_stream(SECONDS, rng)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"16k": (Path(tmp) / "s16.wav", x, 16000),
                 "48k": (Path(tmp) / "s48.wav", Resampler(16000, 48000).process(x, last=True), 48000),
                 "startup_1.5s": (Path(tmp) / "short.wav", x[:24000], 16000)}
        for name, (path, samples, rate) in files.items():
            write_wav(path, samples, rate)
            results[name] = measure(model, path, len(samples) / rate, args.runs)
    print(json.dumps({
        "benchmark": "listen",
        "model": str(model),
        "stream": "espeak-ng sentences over noise" if have_espeak else "noise with tone bursts",
        "results": results,
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
