"""Real-time factor of ``kwspi listen --input`` on a 3-minute stream, process start included.

The stream is espeak-ng speech (sentences with the GSC keywords in them, several voices)
over background noise, or noise with tone bursts where espeak-ng is missing. It is written
at 16 kHz and at 48 kHz (the second adds the resampler's cost). Each file is run ``--runs``
times as a fresh ``kwspi listen --input FILE --json`` process; the report gives the median
wall time, the child's CPU time (user + system), the real-time factor (wall / audio
seconds) and the start-up cost measured the same way on a 1.5 s file.

Memory: each run's peak resident set (``ru_maxrss`` of that process alone), beside two
baselines from the same interpreter: ``python -c pass`` and ``import numpy, onnxruntime``;
the difference to the second is what kwspi, the front end and the model add. The 1.5 s and
180 s runs together show whether memory grows with the length of the stream.

Model: as in bench_engine.py (``--model``, else bundled, else a cached paper-sized export).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_listen.py [--model PATH] [--runs 3]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import machine
from _modelfile import model_file
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


# Runs one command and writes its own wall time, CPU time and peak RSS as JSON to argv[1].
# Why a launcher: Linux carries a process's peak RSS across exec, and a child forked from
# this benchmark starts as a copy of it (numpy, kwspi: ~50 MB), so its ru_maxrss could
# never read lower than that. Forked from a bare `python -S` instead, the inherited part is
# smaller than any process measured here (all of them are Pythons).
LAUNCHER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"wall_s": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
               "peak_rss_mb": ru.ru_maxrss / 1024, "exit": os.waitstatus_to_exitcode(status)}, f)
"""


def run_child(argv: list[str]) -> dict:
    """Run one process to its end: wall time, CPU time (user + system), peak resident memory."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "rusage.json"
        out = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(result), *argv],
                             capture_output=True, text=True)
        got = json.loads(result.read_text()) if result.exists() else {"exit": out.returncode}
    if got.pop("exit"):
        raise SystemExit(f"{argv[0]} failed: {out.stderr.strip()}")
    return {**got, "stdout_lines": len(out.stdout.splitlines())}


def run_once(model: Path, wav: Path) -> dict:
    got = run_child([*kwspi_command(), "listen", "--model", str(model), "--input", str(wav), "--json"])
    got["detections"] = got.pop("stdout_lines")
    return got


def summary(got: list[dict]) -> dict:
    """Medians over runs, plus each run rounded."""
    keys = ("wall_s", "cpu_s", "peak_rss_mb")
    return {**{k: round(statistics.median(g[k] for g in got), 3) for k in keys},
            "runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in g.items()} for g in got]}


def measure(model: Path, wav: Path, seconds: float, runs: int) -> dict:
    s = summary([run_once(model, wav) for _ in range(runs)])
    return {"audio_s": seconds, **s, "rtf_wall": round(s["wall_s"] / seconds, 5),
            "rtf_cpu": round(s["cpu_s"] / seconds, 5)}


def memory_baselines(runs: int) -> dict:
    """Peak RSS of the same interpreter doing nothing, and importing what listen must import.

    ``listen`` minus ``onnxruntime`` is what kwspi, its front end (scipy,
    python_speech_features), the loaded model and the stream buffers add.
    """
    code = {"python": "pass", "onnxruntime": "import numpy, onnxruntime"}
    return {name: summary([run_child([sys.executable, "-c", c]) for _ in range(runs)]) for name, c in code.items()}


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
    base = memory_baselines(args.runs)
    memory = {"peak_rss_mb": {"python": base["python"]["peak_rss_mb"],
                              "python_numpy_onnxruntime": base["onnxruntime"]["peak_rss_mb"],
                              **{f"listen_{name}": r["peak_rss_mb"] for name, r in results.items()}},
              "listen_16k_over_onnxruntime_mb": round(results["16k"]["peak_rss_mb"]
                                                      - base["onnxruntime"]["peak_rss_mb"], 1),
              "baselines": base}
    print(json.dumps({
        "benchmark": "listen",
        "model": model_file(model),
        "stream": "espeak-ng sentences over noise" if have_espeak else "noise with tone bursts",
        "results": results,
        "memory": memory,
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
