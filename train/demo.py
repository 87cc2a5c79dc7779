"""``kwspi demo``: the product on a synthesized stream, detections beside what was said.

Builds a stream of keywords and sentences over noise (:mod:`kwspi.train.speech.stream`), runs the
real command, ``kwspi listen --input STREAM --json --hook kwspi.train.demo_hook:on_detect``,
in a subprocess, and prints each detection beside the truth, the keywords missed, and recall
and false alarms under :func:`~kwspi.deploy.evaluation.score.score_detections`'s rule.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from kwspi.errors import KwspiError
from kwspi.deploy.decision import Detection
from kwspi.deploy.evaluation.score import StreamScore, score_detections, window_words
from kwspi.train.speech import espeak, stream
from kwspi.deploy.evaluation.truth import TruthRow, read_truth

#: The demo's espeak-ng voice families (espeak-ng is always installed). The bundled model's
#: first two editions never heard them; the third trains on every engine and every espeak-ng
#: family, so for it these are new speakers (voice, variant, speed, pitch) of known families:
#: an engine it never heard would have to be one kwspi keeps out of its data altogether.
DEMO_VOICES = ("en-029", "en-gb-scotland")
DEMO_HOOK = "kwspi.train.demo_hook:on_detect"
#: Gap (seconds) below which two spoken words belong to one utterance; words of an event are
#: at most 0.12 s apart, events at least 0.5 s.
UTTERANCE_GAP_S = 0.3
LISTEN_TIMEOUT_S = 600.0


class DemoError(KwspiError):
    """The demo could not run: no model, or ``kwspi listen`` failed."""


@dataclass(frozen=True)
class DemoConfig:
    """What ``kwspi demo`` does; times in seconds, SNR in dB."""

    out_dir: Path = Path("demo-out")
    seconds: float = 45.0
    seed: int = 0
    snr_db: float = 20.0
    model: Path | None = None  # None: the bundled model
    voices: tuple[str, ...] | None = DEMO_VOICES
    mix: tuple[tuple[str, float], ...] = stream.EVERYDAY_MIX
    hook: str = DEMO_HOOK


def run_demo(config: DemoConfig, echo: Callable[[str], None] = print) -> StreamScore:
    """Synthesize, listen, compare; every line of the report goes to ``echo``."""
    model = _model(config.model)
    espeak.resolve_voices(config.voices)
    out = Path(config.out_dir)
    if out.exists() and not out.is_dir():
        raise DemoError(f"{out}: is a file; give a folder for the demo's files")
    out.mkdir(parents=True, exist_ok=True)
    wav, csv_path = out / "stream.wav", out / "stream.csv"
    stream_config = stream.StreamConfig(seconds=config.seconds, snr_db=config.snr_db, seed=config.seed,
                                        voices=config.voices, mix=config.mix)
    echo(f"synthesizing {config.seconds:g} s of speech over noise at {config.snr_db:g} dB SNR "
         f"(voices: {', '.join(config.voices) if config.voices else 'all'})")
    summary = stream.write_stream(wav, csv_path, stream_config)
    echo(f"  {summary}")
    cmd = listen_command(wav, model, config.hook)
    echo("$ kwspi " + " ".join(cmd[cmd.index("listen"):]))
    lines, log_lines = run_listen(cmd)
    (out / "detections.jsonl").write_text("".join(line + "\n" for line in lines))
    for line in log_lines:
        echo(f"  {line}")
    truth = read_truth(csv_path)
    score = score_detections([Detection.from_json(json.loads(line)) for line in lines], truth,
                             stream_config.keywords)
    echo("")
    for line in report_lines(score, truth, config.seconds):
        echo(line)
    return score


def _model(path: Path | None) -> Path:
    from kwspi.modelinfo import resolve_model

    model = resolve_model(path)
    if not model.is_file():
        what = "the bundled model" if path is None else "the model"
        raise DemoError(f"{what} {model} is missing; pass --model PATH")
    return model


def listen_command(wav: Path, model: Path, hook: str) -> list[str]:
    """The ``kwspi listen`` command line, run by this interpreter's installed ``kwspi``."""
    script = Path(sys.executable).with_name("kwspi")
    # Without the console script (an uninstalled checkout), call the same entry point.
    head = [str(script)] if script.is_file() else [sys.executable, "-c", "from kwspi.cli import main; main()"]
    return head + ["listen", "--input", str(wav), "--json", "--hook", hook, "--model", str(model)]


def run_listen(cmd: Sequence[str]) -> tuple[list[str], list[str]]:
    """Run ``kwspi listen``; its stdout lines (JSON detections) and stderr lines (hook, logs)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=LISTEN_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DemoError(f"kwspi listen took more than {LISTEN_TIMEOUT_S:g} s") from None
    errors = proc.stderr.splitlines()
    if proc.returncode != 0:
        raise DemoError(f"kwspi listen failed (exit status {proc.returncode}): "
                        f"{errors[-1] if errors else 'no message'}")
    return [line for line in proc.stdout.splitlines() if line.strip()], errors


# --- the report -----------------------------------------------------------------------


def report_lines(score: StreamScore, truth: Sequence[TruthRow], seconds: float) -> list[str]:
    """The detections table, the missed keywords and a one-line summary."""
    matched = {id(d): row for d, row in score.hits}
    detections = sorted([d for d, _ in score.hits] + list(score.false_alarms), key=lambda d: d.time)
    lines = [f"{'time s':>7}  {'heard':<7} {'score':>5}  {'result':<12} {'said':<18} in the window that fired"]
    for d in detections:
        row = matched.get(id(d))
        said = f"{row.label} {row.start_s:.2f}-{row.end_s:.2f}" if row else "-"
        result = "hit" if row else "FALSE ALARM"
        lines.append(f"{d.time:7.2f}  {d.label:<7} {d.score:5.2f}  {result:<12} {said:<18} "
                     f"\"{' '.join(r.label for r in window_words(truth, d.time))}\"")
    if not detections:
        lines.append("  (no detections)")
    lines.append("")
    lines.append(f"missed: {len(score.misses)}")
    for row in score.misses:
        lines.append(f"  {row.label:<7} at {row.start_s:.2f}-{row.end_s:.2f} s in "
                     f"\"{' '.join(r.label for r in utterance(truth, row))}\"")
    lines.append("")
    lines.append(summary_line(score, seconds))
    return lines


def summary_line(score: StreamScore, seconds: float) -> str:
    recall = f"{score.recall:.0%}" if score.n_keywords else "n/a"
    n_fa = len(score.false_alarms)
    return (f"recall {len(score.hits)}/{score.n_keywords} keywords ({recall}), "
            f"{n_fa} false alarm{'' if n_fa == 1 else 's'} in {seconds:g} s of audio")


def utterance(truth: Sequence[TruthRow], row: TruthRow) -> list[TruthRow]:
    """The run of words around ``row`` with gaps under :data:`UTTERANCE_GAP_S` (its sentence)."""
    rows = sorted(truth, key=lambda r: r.start_s)
    i = rows.index(row)
    lo, hi = i, i
    while lo > 0 and rows[lo].start_s - rows[lo - 1].end_s < UTTERANCE_GAP_S:
        lo -= 1
    while hi + 1 < len(rows) and rows[hi + 1].start_s - rows[hi].end_s < UTTERANCE_GAP_S:
        hi += 1
    return rows[lo:hi + 1]
