"""What patience, smoothing and the refractory rule buy at equal recall (issue 12, item 3).

    E=mbrola,rhvoice,piper,kokoro   # engines the bundled model (espeak-ng only) never heard
    for speech in phrase joined; do  # phrases said in one go, and word by word
      d=data/decisions/$speech
      kwspi synth-stream $d/heldout-20db.wav --seconds 300 --snr-db 20 --engines $E --speech $speech --seed 11
      kwspi synth-stream $d/heldout-10db.wav --seconds 300 --snr-db 10 --engines $E --speech $speech --seed 12
      kwspi synth-stream $d/negative-15db.wav --seconds 1800 --snr-db 15 --negative --engines $E \\
          --speech $speech --seed 13
    done
    .venv/bin/python studies/decisions.py $(for d in data/decisions/*/; do
        echo --positives $d/heldout-20db.wav --positives $d/heldout-10db.wav --negatives $d/negative-15db.wav; done)

The network runs once per stream, through the listening engine (:func:`run_stream`: the same
front end, stride and model as ``kwspi listen``). Every decision setting (patience x
smoothing x refractory) is then replayed over those posteriors at a fine grid of thresholds
(one for every keyword) by :func:`replay_grid`: ``DecisionLogic``'s rule in numpy, all
thresholds at once (tests/test_study_decisions.py holds it to ``DecisionLogic``, detection
for detection). For each setting and each target recall, the table gives the highest
threshold whose recall on the positives reaches the target, and the false alarms per hour
on the negatives there: what each rule costs at *equal recall*, which comparing rules at one
threshold hides (patience and smoothing lower the scores that reach a threshold).

Targets are the recalls the model reaches as shipped (its own patience, the default smoothing
and refractory) at its own thresholds, at 0.5 and at 0.95 (or ``--recall``), so the script
runs unchanged on another model. Writes ``results/decisions.md`` (everything after its
``KEEP`` line is kept: the reading, written by hand) and ``results/decisions.json``.
Torch-free.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from kwspi.deploy.decision import DecisionConfig, Detection
from kwspi.deploy.engine import DEFAULT_STRIDE_MS
from kwspi.deploy.evaluation.score import score_detections
from kwspi.deploy.evaluation.stream import keywords_of, replay, run_stream, shown
from kwspi.deploy.evaluation.truth import read_truth
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.sources import WavSource
from kwspi.modelinfo import resolve_model

PATIENCE = (1, 2, 3, 4)
SMOOTHING_S = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
REFRACTORY_S = (0.0, 1.0, 2.0)
#: One threshold for every keyword; dense near 1, where a quiet model's scores live.
THRESHOLDS = tuple(sorted({float(t) for t in np.round(np.concatenate([np.arange(0.10, 0.985, 0.01),
                                                                     1 - np.geomspace(0.01, 1e-4, 21)]), 5)}))
#: Besides the model's own thresholds, the operating points compared: the recall the shipped
#: rule reaches at a loose and at a strict threshold, so the targets suit any model.
TARGET_AT_THRESHOLDS = (0.5, 0.95)
THIRDS = 3
TOP = 5  # settings listed per target besides the shipped one
GRID_REFRACTORY_S = 1.0  # the patience x smoothing grid is drawn at this refractory
KEEP = "<!-- KEEP: studies/decisions.py rewrites what is above this line and keeps what is below -->"


def smooth(p: np.ndarray, n: int) -> np.ndarray:
    """Mean of each row with the ``n - 1`` rows before it (fewer at the start), added oldest
    first as ``DecisionLogic``'s ``np.mean`` over its history adds them."""
    out = np.empty_like(p)
    for t in range(min(n - 1, len(p))):
        out[t] = np.mean(p[:t + 1], axis=0)
    if len(p) >= n:
        acc = p[:len(p) - n + 1].copy()
        for j in range(1, n):
            acc += p[j:len(p) - n + 1 + j]
        out[n - 1:] = acc / n
    return out


def replay_grid(times: np.ndarray, scores: np.ndarray, thresholds, stride_s: float,
                config: DecisionConfig) -> list[list[tuple[int, int, float]]]:
    """Detections at every threshold of ``thresholds`` (each for all keywords), as
    ``DecisionLogic`` makes them: per threshold, ``(window, keyword column, smoothed score)``.

    ``scores`` are the keyword columns of the posteriors, ``[n_windows, n_keywords]``.
    """
    smoothed = smooth(scores, config.smoothing_windows(stride_s))
    th = np.asarray(thresholds, np.float64)[:, None]
    shape = (len(th), scores.shape[1])
    streak, armed, last = np.zeros(shape, np.int64), np.ones(shape, bool), np.full(shape, -np.inf)
    found = [[] for _ in th]
    candidates = np.flatnonzero((smoothed >= th.min()).any(axis=1))
    previous = -1
    for t in candidates:
        if t != previous + 1:  # windows in between were under every threshold: streaks broke, keywords rest
            streak[:] = 0
            armed |= times[t - 1] - last >= config.refractory_s - 1e-9
        previous = t
        over = smoothed[t] >= th
        streak = np.where(over, streak + 1, 0)
        armed |= ~over & (times[t] - last >= config.refractory_s - 1e-9)
        ready = (streak >= config.patience) & armed
        for row in np.flatnonzero(ready.any(axis=1)):
            k = int(np.argmax(np.where(ready[row], smoothed[t], -np.inf)))
            armed[row, k], last[row, k] = False, times[t]
            found[row].append((int(t), k, float(smoothed[t, k])))
    return found


def figures(model, runs_pos, truths, runs_neg, config, stride_ms) -> list[dict]:
    """Recall, false alarms per hour on the negatives (and on the positives) and median
    latency at each threshold, for one decision setting."""
    keywords = keywords_of(model)
    columns = [model.info.labels.index(k) for k in keywords]
    per = []
    for run in runs_pos + runs_neg:
        found = replay_grid(run.trace.times, run.trace.posteriors[:, columns], THRESHOLDS, stride_ms / 1000, config)
        per.append([[Detection(keywords[k], s, float(run.trace.times[t])) for t, k, s in row] for row in found])
    neg_hours = sum(r.seconds for r in runs_neg) / 3600
    pos_hours = sum(r.seconds for r in runs_pos) / 3600
    # The negatives end to end, cut in THIRDS equal spans: does a setting win in each of them?
    offsets = np.cumsum([0.0] + [r.seconds for r in runs_neg])
    rows = []
    for i, th in enumerate(THRESHOLDS):
        scores = [score_detections(per[j][i], truths[j], keywords) for j in range(len(runs_pos))]
        spoken = sum(s.n_keywords for s in scores)
        latency = [x for s in scores for x in s.latencies]
        alarms = np.array([offsets[j] + d.time for j in range(len(runs_neg)) for d in per[len(runs_pos) + j][i]])
        thirds = np.histogram(alarms, bins=THIRDS, range=(0, offsets[-1]))[0] / (neg_hours / THIRDS)
        hits = sum(len(s.hits) for s in scores)
        rows.append({"threshold": float(th), "recall": hits / spoken, "hits": hits, "false_alarms": len(alarms),
                     "fa_per_hour": len(alarms) / neg_hours, "fa_per_hour_thirds": thirds.tolist(),
                     "fa_per_hour_positives": sum(len(s.false_alarms) for s in scores) / pos_hours,
                     "latency_median_s": float(np.median(latency)) if latency else None})
    return rows


def at_recall(rows: list[dict], target: float) -> dict | None:
    """The operating point at recall ``target``: the highest threshold whose recall reaches it,
    with false alarms per hour interpolated linearly in recall towards the next threshold up
    (which falls short), so that no setting is charged for overshooting the target by the
    grid's step; ``None`` when no threshold reaches it."""
    rows = sorted(rows, key=lambda r: r["threshold"])
    fits = [i for i, r in enumerate(rows) if r["recall"] >= target - 1e-9]
    if not fits:
        return None
    i = fits[-1]
    hit = dict(rows[i])
    if i + 1 < len(rows) and hit["recall"] > target:
        short = rows[i + 1]
        f = (hit["recall"] - target) / (hit["recall"] - short["recall"])
        hit["fa_per_hour"] += f * (short["fa_per_hour"] - hit["fa_per_hour"])
        hit["fa_per_hour_thirds"] = [a + f * (b - a) for a, b in zip(hit["fa_per_hour_thirds"],
                                                                     short["fa_per_hour_thirds"])]
    return hit


def rounded(row: dict | None) -> dict | None:
    """``row`` with its figures to 4 significant decimals, as the JSON keeps them."""
    if row is None:
        return None
    return {k: [round(x, 1) for x in v] if isinstance(v, list) else round(v, 4) if isinstance(v, float) else v
            for k, v in row.items()}


def shipped_recall(model, runs_pos, truths, stride_ms) -> float:
    """Recall with the model's own thresholds and patience, through ``Detector``."""
    keywords = keywords_of(model)
    scores = [score_detections(replay(run.trace, model, None, stride_ms), truth, keywords)
              for run, truth in zip(runs_pos, truths)]
    return sum(len(s.hits) for s in scores) / sum(s.n_keywords for s in scores)


def key(config: DecisionConfig) -> str:
    return f"p{config.patience} s{config.smoothing_s:g} r{config.refractory_s:g}"


def cell(row: dict | None) -> str:
    return "–" if row is None else f"{row['fa_per_hour']:.0f} ({row['threshold']:g})"


def markdown(report: dict, command: str) -> str:
    cfgs = report["settings"]
    shipped = report["shipped"]
    lines = [
        "# Decisions: patience, smoothing and refractory at equal recall",
        "",
        f"Model `{report['model']}`. **Data: {report['data']}**, never human speech, never GSC. "
        f"Positives: {report['keywords_spoken']} keywords in "
        f"{report['positive_minutes']:.0f} min ({', '.join(report['positives'])}); negatives: "
        f"{report['negative_minutes']:.0f} min without a keyword ({', '.join(report['negatives'])}). "
        f"Stride {report['stride_ms']} ms. One threshold for every keyword, swept over {len(THRESHOLDS)} values "
        f"from {THRESHOLDS[0]:g} to {THRESHOLDS[-1]:g}; at each target recall, each cell is the false alarms per "
        "hour on the negatives at the highest threshold whose recall on the positives reaches the target, with "
        "that threshold in brackets (– : no threshold reaches it).",
        "",
        f"As shipped (its own thresholds; {shipped}: patience, smoothing, refractory) the model finds "
        f"{report['shipped_recall']:.3f} of the keywords.",
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
    ]
    lines += ["", "Where the threshold that reaches a target overshoots it, false alarms per hour are interpolated "
              "linearly in recall towards the next threshold up, so no setting is charged for the grid's step "
              "(the curve of every setting is in the JSON). Counts are Poisson: a cell of n false alarms on the "
              f"negatives is uncertain by about 2 sqrt(n); {report['negative_minutes']:.0f} min of negatives make "
              f"one false alarm {60 / report['negative_minutes']:.1f} per hour."]
    for target in report["targets"]:
        t = str(target)
        ranked = sorted((c for c in cfgs if c["at"][t]), key=lambda c: c["at"][t]["fa_per_hour"])
        shown_rows = [c for c in cfgs if c["key"] == shipped] + [c for c in ranked if c["key"] != shipped][:TOP]
        lines += ["", f"## Recall {target:.3f}", "",
                  f"The shipped rule and the {TOP} settings with the fewest false alarms:", "",
                  "| setting | false alarms / hour | in each third of the negatives | threshold | latency median |",
                  "|---|---|---|---|---|"]
        for c in shown_rows:
            a = c["at"][t]
            lines.append(f"| {c['key']}{' (shipped)' if c['key'] == shipped else ''} | " + (
                "– | – | – | – |" if a is None else
                f"{a['fa_per_hour']:.0f} | {' / '.join(f'{x:.0f}' for x in a['fa_per_hour_thirds'])} | "
                f"{a['threshold']:g} | {a['latency_median_s']:.2f} s |"))
        mean = {r: np.mean([c["at"][t]["fa_per_hour"] for c in cfgs if c["refractory_s"] == r and c["at"][t]])
                for r in REFRACTORY_S}
        lines += ["", "Refractory " + " / ".join(f"{r:g}" for r in REFRACTORY_S) + " s: "
                  + " / ".join(f"{m:.0f}" for m in mean.values())
                  + " false alarms per hour, the mean over the patience x smoothing cells that reach the target.",
                  "", f"False alarms per hour (threshold), refractory {GRID_REFRACTORY_S:g} s:", "",
                  "| patience \\ smoothing | " + " | ".join(f"{x:g} s" for x in SMOOTHING_S) + " |",
                  "|---" * (len(SMOOTHING_S) + 1) + "|"]
        for patience in PATIENCE:
            row = [next(c for c in cfgs if c["key"] == key(DecisionConfig(x, GRID_REFRACTORY_S, patience)))["at"][t]
                   for x in SMOOTHING_S]
            lines.append(f"| {patience} | " + " | ".join(cell(r) for r in row) + " |")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="kwspi ONNX model [default: the bundled one]")
    ap.add_argument("--positives", type=Path, action="append", required=True,
                    help="stream with keywords; its truth CSV beside it (repeatable)")
    ap.add_argument("--negatives", type=Path, action="append", required=True,
                    help="stream without keywords (repeatable)")
    ap.add_argument("--data", default="synthetic speech of MBROLA, RHVoice, Piper and Kokoro; 10 and 20 dB with "
                    "keywords, 15 dB without",
                    help="what the streams are, for the report; say whether the model trained on their engines")
    ap.add_argument("--stride-ms", type=int, default=DEFAULT_STRIDE_MS)
    ap.add_argument("--recall", type=float, action="append",
                    help="a target recall (repeatable) [default: the shipped rule's at its thresholds, 0.5 and 0.95]")
    ap.add_argument("--out", type=Path, default=Path("results/decisions"),
                    help="writes OUT.md and OUT.json")
    args = ap.parse_args(argv)
    started = time.process_time()
    model = LoadedModel.load(resolve_model(args.model))
    truths = [read_truth(p.with_suffix(".csv")) for p in args.positives]
    runs_pos = [run_stream(model, WavSource(p), None, args.stride_ms) for p in args.positives]
    runs_neg = [run_stream(model, WavSource(p), None, args.stride_ms) for p in args.negatives]
    print(f"posteriors: {time.process_time() - started:.0f} s CPU", file=sys.stderr)
    shipped = shipped_recall(model, runs_pos, truths, args.stride_ms)
    settings = [DecisionConfig(s, r, p) for p, s, r in itertools.product(PATIENCE, SMOOTHING_S, REFRACTORY_S)]
    curves = {key(c): figures(model, runs_pos, truths, runs_neg, c, args.stride_ms) for c in settings}
    shipped_rule = DecisionConfig(patience=model.info.patience)
    default_curve = curves[key(shipped_rule)]
    loose_strict = {round(r["recall"], 3) for r in default_curve if r["threshold"] in TARGET_AT_THRESHOLDS}
    targets = args.recall or sorted(loose_strict | {round(shipped, 3)})
    report = {
        "model": str(shown(model.path)), "data": args.data, "stride_ms": args.stride_ms,
        "positives": [str(shown(p)) for p in args.positives], "negatives": [str(shown(p)) for p in args.negatives],
        "positive_minutes": sum(r.seconds for r in runs_pos) / 60,
        "negative_minutes": sum(r.seconds for r in runs_neg) / 60,
        "keywords_spoken": sum(sum(r.label in keywords_of(model) for r in t) for t in truths),
        "shipped": key(shipped_rule), "shipped_recall": shipped, "targets": targets, "thresholds": list(THRESHOLDS),
        "settings": [{"key": key(c), "patience": c.patience, "smoothing_s": c.smoothing_s,
                      "refractory_s": c.refractory_s,
                      # per threshold of "thresholds": keywords found, false alarms on the negatives
                      "curve": {k: [r[k] for r in curves[key(c)]] for k in ("hits", "false_alarms")},
                      "at": {str(t): rounded(at_recall(curves[key(c)], t)) for t in targets}} for c in settings],
        "cpu_seconds": round(time.process_time() - started, 1),
    }
    command = "python studies/decisions.py " + " ".join(
        ([f"--model {shown(args.model)}"] if args.model else []) + [f"--positives {shown(p)}" for p in args.positives]
        + [f"--negatives {shown(p)}" for p in args.negatives])
    md_path, json_path = args.out.with_suffix(".md"), args.out.with_suffix(".json")
    kept = md_path.read_text().split(KEEP, 1)[1] if md_path.exists() and KEEP in md_path.read_text() else "\n"
    md_path.write_text(markdown(report, command) + "\n" + KEEP + kept)
    json_path.write_text(json.dumps(report, separators=(",", ":")) + "\n")
    print(f"wrote {md_path} and {json_path} ({report['cpu_seconds']:.0f} s CPU)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
