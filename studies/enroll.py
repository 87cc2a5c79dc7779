"""Enrollment on voices the base model never heard (issue 13, "Measure").

For each voice (of an engine the base model did not train on): ``kwspi synth`` makes a few
speakers of it (the same voice at other speeds and pitches), 3 clips per word. The speaker
with the middle speed gives the takes (3 per keyword) and its folder's first noise file the
room; ``kwspi enroll --clips`` adapts the base model. Both models are then scored on the
other speakers' clips of that voice (other rates and pitches), the ten keywords and the
other words (as ``_unknown_``), clean and mixed at 10 dB with noise the room never held
(argmax over the labels: clip accuracy), and ``kwspi eval-stream`` counts their false alarms
per hour on a keyword-free stream of other voices' speech. Prints a markdown table and
writes ``results/enroll.json``.

Example:
    .venv/bin/python studies/enroll.py --base runs/enroll/base200/model.onnx \\
        --voices mbrola:mb-us1,mbrola:mb-us2,rhvoice:bdl,rhvoice:clb \\
        --negative runs/enroll/negative.wav --work runs/enroll/voices
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from kwspi import gsc  # noqa: E402
from kwspi.clips import load_clip  # noqa: E402
from kwspi.deploy.model import LoadedModel  # noqa: E402
from kwspi.features import clip_features  # noqa: E402
from kwspi.wavio import read_wav  # noqa: E402

OTHER_WORDS = ("bed", "cat", "happy", "house", "tree")
SNR_DB = 10.0


def kwspi(*args) -> str:
    cmd = [sys.executable, "-c", "from kwspi.cli import main; main(prog_name='kwspi')", *map(str, args)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def speakers(folder: Path) -> list[dict]:
    with open(folder / "speakers.csv") as f:
        return sorted(csv.DictReader(f), key=lambda r: int(r["speed"]))


def takes_folder(voice_dir: Path, speaker: str, out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    for word in gsc.KEYWORDS:
        (out / word).mkdir(parents=True)
        for clip in (voice_dir / word).glob(f"{speaker}_nohash_*.wav"):
            shutil.copy(clip, out / word / clip.name)
    (out / gsc.BACKGROUND_NOISE_DIR).mkdir()
    shutil.copy(gsc.noise_files(voice_dir)[0], out / gsc.BACKGROUND_NOISE_DIR)
    return out


def test_clips(voice_dir: Path, speaker: str) -> list[tuple[str, np.ndarray]]:
    """Every other speaker's clips of the keywords and the other words, clean and at 10 dB
    in the folder's last noise file (the room held the first)."""
    noise = read_wav(gsc.noise_files(voice_dir)[-1])[0].astype(np.float64)
    rng = np.random.default_rng(0)
    out = []
    for word in gsc.KEYWORDS + OTHER_WORDS:
        label = word if word in gsc.KEYWORDS else gsc.UNKNOWN
        for clip in sorted((voice_dir / word).glob("*.wav")):
            if clip.name.startswith(speaker):
                continue
            x = load_clip(clip, 16000, 16000)[0].astype(np.float64) / 32768
            start = int(rng.integers(0, len(noise) - len(x)))
            n = noise[start:start + len(x)]
            rms = np.sqrt(np.mean(x ** 2)) + 1e-9
            noisy = x + n * rms / (np.sqrt(np.mean(n ** 2)) + 1e-9) / 10 ** (SNR_DB / 20)
            out += [(label, x), (label, np.clip(noisy, -1, 1))]
    return out


def accuracy(model: LoadedModel, clips) -> float:
    labels = model.info.labels
    return float(np.mean([labels[int(model.posteriors(clip_features(x.astype(np.float32))).argmax())] == w
                          for w, x in clips]))


def fa_per_hour(model: Path, negative: Path) -> float:
    out = kwspi("eval-stream", "--model", model, "--input", negative, "--truth", negative.with_suffix(".csv"), "--json")
    return float(json.loads(out)["fa_per_hour"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--voices", required=True, help="engine:voice,...")
    parser.add_argument("--negative", type=Path, required=True, help="keyword-free stream WAV (CSV beside it)")
    parser.add_argument("--work", type=Path, default=Path("runs/enroll/voices"))
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("results/enroll.json"))
    args = parser.parse_args()
    base = LoadedModel.load(args.base)
    rows = [{"voice": "base", "fa_per_hour": fa_per_hour(args.base, args.negative)}]
    print(f"base: {rows[0]['fa_per_hour']:.2f} false alarms per hour", flush=True)
    for item in args.voices.split(","):
        engine, voice = item.split(":")
        folder = args.work / voice
        kwspi("synth", folder, "--engines", engine, "--voices", voice, "--speakers", args.speakers, "--repeats", 3,
              "--words", ",".join(gsc.KEYWORDS + OTHER_WORDS), "--noise-seconds", 20, "-j", 1)
        spk = speakers(folder)
        chosen = spk[len(spk) // 2]
        mine = args.work / f"{voice}.onnx"
        kwspi("enroll", "--model", args.base, "--clips", takes_folder(folder, chosen["speaker"], args.work / "takes"),
              "--out", mine)
        clips = test_clips(folder, chosen["speaker"])
        enrolled = LoadedModel.load(mine)
        row = {"voice": f"{engine}:{voice}", "takes_speed": int(chosen["speed"]),
               "test_speeds": sorted({int(s["speed"]) for s in spk} - {int(chosen["speed"])}), "test_clips": len(clips),
               "before": accuracy(base, clips), "after": accuracy(enrolled, clips),
               "held_out_takes": enrolled.info.enrollment["held_out_takes"],
               "thresholds": enrolled.info.thresholds, "fa_per_hour": fa_per_hour(mine, args.negative)}
        rows.append(row)
        print(f"{row['voice']}: {row['before']:.3f} -> {row['after']:.3f}, FA/h {row['fa_per_hour']:.2f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    voices = rows[1:]
    print("\n| voice | takes at speed | test speeds | test clips | accuracy before | after | FA/h after |")
    print("|---|---|---|---|---|---|---|")
    for r in voices:
        print(f"| {r['voice']} | {r['takes_speed']} | {', '.join(map(str, r['test_speeds']))} | {r['test_clips']} | "
              f"{r['before']:.1%} | {r['after']:.1%} | {r['fa_per_hour']:.1f} |")
    gain = np.mean([r["after"] - r["before"] for r in voices])
    print(f"\nmean gain {gain * 100:.1f} points; FA/h base {rows[0]['fa_per_hour']:.1f}, "
          f"enrolled mean {np.mean([r['fa_per_hour'] for r in voices]):.1f}")


if __name__ == "__main__":
    main()
