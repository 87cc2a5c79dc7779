"""Enrollment on voices the base model never heard (issue 13, "Measure").

For each voice (of an engine the base model did not train on): ``kwspi synth`` makes a few
speakers of it (the same voice at other speeds and pitches), 3 clips per word. The speaker
with the middle speed gives the takes (3 per keyword), its folder's first noise file the
room and, in a variant with ``speech=true``, its words of :data:`SPEECH_WORDS` said one after
another the user's other speech (``_unknown_/``; words the test never uses); the model is
adapted as ``kwspi enroll --clips`` does, once per ``--variant`` (an :class:`EnrollConfig`).
Both models are then scored on the other speakers' clips of that voice (other rates and
pitches), the ten keywords and the other words (as ``_unknown_``), clean and mixed at 10 dB
with noise the room never held: clip accuracy (argmax) and the keyword clips that reach the
threshold; ``kwspi eval-stream --sweep-thresholds`` counts their false alarms per hour on a
keyword-free stream of other voices' speech, so each can also be read at the other's rate.
Prints a markdown table and writes ``--out``.

Example:
    .venv/bin/python studies/enroll.py --base runs/enroll/base200/model.onnx \\
        --voices mbrola:mb-us1,mbrola:mb-us2,rhvoice:bdl,rhvoice:clb \\
        --negative runs/enroll/negative.wav --work runs/enroll/voices \\
        --variant takes: --variant takes+speech:speech=true
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
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
from kwspi.deploy.enroll import EnrollConfig, enroll  # noqa: E402
from kwspi.wavio import read_wav, write_wav  # noqa: E402

OTHER_WORDS = ("bed", "cat", "happy", "house", "tree")
#: Said by the takes' speaker, one after another, as the user's other speech (``--speech``).
SPEECH_WORDS = ("learn", "follow", "visual", "forward", "backward", "wow")
SNR_DB = 10.0


def kwspi(*args) -> str:
    cmd = [sys.executable, "-c", "from kwspi.cli import main; main(prog_name='kwspi')", *map(str, args)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def speakers(folder: Path) -> list[dict]:
    with open(folder / "speakers.csv") as f:
        return sorted(csv.DictReader(f), key=lambda r: int(r["speed"]))


def takes_folder(voice_dir: Path, speaker: str, out: Path, speech: bool) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    for word in gsc.KEYWORDS:
        (out / word).mkdir(parents=True)
        for clip in (voice_dir / word).glob(f"{speaker}_nohash_*.wav"):
            shutil.copy(clip, out / word / clip.name)
    (out / gsc.BACKGROUND_NOISE_DIR).mkdir()
    shutil.copy(gsc.noise_files(voice_dir)[0], out / gsc.BACKGROUND_NOISE_DIR)
    if speech:
        said = [read_wav(voice_dir / w / f"{speaker}_nohash_0.wav")[0] for w in SPEECH_WORDS
                if (voice_dir / w / f"{speaker}_nohash_0.wav").exists()]
        (out / gsc.UNKNOWN).mkdir()
        write_wav(out / gsc.UNKNOWN / "talk.wav", np.concatenate(said), 16000)
    return out


def parse_variant(spec: str) -> tuple[str, bool, EnrollConfig]:
    """``NAME:FIELD=VALUE,...``: an :class:`EnrollConfig` and ``speech=true|false``."""
    name, _, changes = spec.partition(":")
    fields = {}
    for change in filter(None, changes.split(",")):
        key, _, value = change.partition("=")
        fields[key] = json.loads(value)
    speech = bool(fields.pop("speech", False))
    return name, speech, EnrollConfig(**fields)


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


def posteriors(model: LoadedModel, features: list[np.ndarray]) -> np.ndarray:
    """``[n_clips, n_labels]``: each clip's posteriors, as the engine would score its window."""
    return np.stack([model.posteriors(f) for f in features])


def accuracy(model: LoadedModel, P: np.ndarray, said: list[str]) -> float:
    """Clips whose argmax is the label said."""
    return float(np.mean([model.info.labels[int(k)] == w for k, w in zip(P.argmax(1), said)]))


def detected(model: LoadedModel, P: np.ndarray, said: list[str], threshold: float | None = None) -> float:
    """Share of the keyword clips whose keyword's posterior reaches ``threshold`` (by default
    the model's threshold for it): what the thresholds let through, where ``accuracy`` is
    argmax alone. One-second clips, so no smoothing: a stand-in for a stream's recall."""
    labels = model.info.labels
    return float(np.mean([P[i, labels.index(w)] >= (model.info.threshold(w) if threshold is None else threshold)
                          for i, w in enumerate(said) if w in gsc.KEYWORDS]))


def stream_figures(model: Path, negative: Path) -> tuple[float, dict[float, float]]:
    """False alarms per hour on ``negative`` at the model's thresholds, and at each threshold
    of eval-stream's sweep (one threshold for every keyword)."""
    out = json.loads(kwspi("eval-stream", "--model", model, "--input", negative, "--truth",
                           negative.with_suffix(".csv"), "--sweep-thresholds", "--json"))
    return float(out["fa_per_hour"]), {float(r["threshold"]): float(r["fa_per_hour"]) for r in out["sweep"]["rows"]}


def at_fa(model: LoadedModel, P: np.ndarray, said: list[str], sweep: dict[float, float],
          fa: float) -> tuple[float, float]:
    """``(threshold, detected)`` at the lowest swept threshold with at most ``fa`` false alarms
    per hour: how much of the voice the model hears at another model's false-alarm rate."""
    t = min((t for t, f in sweep.items() if f <= fa), default=max(sweep))
    return t, detected(model, P, said, t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--voices", required=True, help="engine:voice,...")
    parser.add_argument("--negative", type=Path, required=True, help="keyword-free stream WAV (CSV beside it)")
    parser.add_argument("--work", type=Path, default=Path("runs/enroll/voices"))
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:FIELD=VALUE,... of EnrollConfig, and speech=true for the user's other speech; "
                             "repeatable [default: default:]")
    parser.add_argument("--out", type=Path, default=Path("results/enroll.json"))
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variant or ["default:"]]
    base = LoadedModel.load(args.base)
    base_fa, base_sweep = stream_figures(args.base, args.negative)
    rows = [{"voice": "base", "fa_per_hour": base_fa, "sweep": base_sweep}]
    print(f"base: {rows[0]['fa_per_hour']:.2f} false alarms per hour", flush=True)
    for item in args.voices.split(","):
        engine, voice = item.split(":")
        folder = args.work / voice
        kwspi("synth", folder, "--engines", engine, "--voices", voice, "--speakers", args.speakers, "--repeats", 3,
              "--words", ",".join(gsc.KEYWORDS + OTHER_WORDS + SPEECH_WORDS), "--noise-seconds", 20, "-j", 1)
        spk = speakers(folder)
        chosen = spk[len(spk) // 2]
        clips = test_clips(folder, chosen["speaker"])
        said = [w for w, _ in clips]
        features = [clip_features(x.astype(np.float32)) for _, x in clips]
        P0 = posteriors(base, features)
        before, found = accuracy(base, P0, said), detected(base, P0, said)
        for name, speech, cfg in variants:
            mine = args.work / f"{voice}-{args.base.stem}-{name}.onnx"
            takes = takes_folder(folder, chosen["speaker"], args.work / "takes", speech)
            mine.write_bytes(enroll(args.base, takes, cfg))
            enrolled = LoadedModel.load(mine)
            P = posteriors(enrolled, features)
            row = {"voice": f"{engine}:{voice}", "variant": name, "speech": speech, "config": dataclasses.asdict(cfg),
                   "takes_speed": int(chosen["speed"]),
                   "test_speeds": sorted({int(s["speed"]) for s in spk} - {int(chosen["speed"])}),
                   "test_clips": len(clips), "before": before, "after": accuracy(enrolled, P, said),
                   "detected_before": found, "detected_after": detected(enrolled, P, said),
                   "held_out_takes": enrolled.info.enrollment["held_out_takes"],
                   "thresholds": enrolled.info.thresholds}
            row["fa_per_hour"], sweep = stream_figures(mine, args.negative)
            # the same false-alarm rate for both: each model at the threshold that keeps to the other's
            row["at_base_fa"] = dict(zip(("threshold", "detected"), at_fa(enrolled, P, said, sweep, base_fa)))
            row["base_at_its_fa"] = dict(zip(("threshold", "detected"),
                                             at_fa(base, P0, said, base_sweep, row["fa_per_hour"])))
            rows.append(row)
            print(f"{row['voice']} {name}: {row['before']:.3f} -> {row['after']:.3f}, detected {found:.3f} -> "
                  f"{row['detected_after']:.3f}, FA/h {row['fa_per_hour']:.2f}; at the base's FA/h it detects "
                  f"{row['at_base_fa']['detected']:.3f}, the base at its FA/h {row['base_at_its_fa']['detected']:.3f}",
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print("\n| voice | variant | takes at speed | test speeds | test clips | accuracy before | after "
          "| detected before | after | FA/h after | detected at the base's FA/h | the base at this FA/h |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows[1:]:
        print(f"| {r['voice']} | {r['variant']} | {r['takes_speed']} | {', '.join(map(str, r['test_speeds']))} | "
              f"{r['test_clips']} | {r['before']:.1%} | {r['after']:.1%} | {r['detected_before']:.1%} | "
              f"{r['detected_after']:.1%} | {r['fa_per_hour']:.1f} | {r['at_base_fa']['detected']:.1%} "
              f"(t={r['at_base_fa']['threshold']:g}) | {r['base_at_its_fa']['detected']:.1%} "
              f"(t={r['base_at_its_fa']['threshold']:g}) |")
    print(f"\nbase FA/h {rows[0]['fa_per_hour']:.1f}")
    for name, _, _ in variants:
        mine = [r for r in rows[1:] if r["variant"] == name]
        print(f"{name}: mean gain {np.mean([r['after'] - r['before'] for r in mine]) * 100:.1f} points, "
              f"detected {np.mean([r['detected_before'] for r in mine]):.1%} -> "
              f"{np.mean([r['detected_after'] for r in mine]):.1%}, FA/h mean {np.mean([r['fa_per_hour'] for r in mine]):.1f}; "
              f"at the base's FA/h detected {np.mean([r['at_base_fa']['detected'] for r in mine]):.1%}, "
              f"the base at the enrolled FA/h {np.mean([r['base_at_its_fa']['detected'] for r in mine]):.1%}")


if __name__ == "__main__":
    main()
