"""Streams of one voice engine as a yardstick beside clip accuracy (issue 12, item 2).

Clip accuracy says which keyword a one-second clip is; a device listens to connected speech,
where what matters is how often it fires when no keyword is said and how many keywords it
finds. Per engine there are two streams, ``NEG/ENGINE.wav`` (keyword-free sentences and
confusable words, ``kwspi synth-stream --negative``) and ``POS/ENGINE.wav`` (keywords alone
and in phrases among such sentences), each with its truth CSV beside it. A fold model is
scored on its held-out engine's two streams as ``kwspi eval-stream --sweep-thresholds`` does:

- ``fa_per_hour``: false alarms per hour on the keyword-free stream, at the model's threshold;
- ``recall``: keywords found in the keyword stream, at the model's threshold;
- ``at_bar``: the lowest threshold of the sweep whose false alarms per hour on the keyword-free
  stream are at most ``bar``, and the keyword stream's recall there (``None`` when no
  threshold of the sweep gets that low);
- ``sweep``: both per threshold of the sweep, for any other bar.

``make_stream`` writes such a stream through the library: ``kwspi synth-stream`` deals 64
speakers, more than Piper's one voice has (20 speeds and pitches at most here).
"""

from __future__ import annotations

from pathlib import Path

#: False alarms per hour the operating point of ``at_bar`` allows (the README's calibration target).
FA_BAR = 60.0
#: Speakers a stream deals over: synth-stream's 64, fewer for an engine that has fewer.
STREAM_SPEAKERS = {"piper": 20}
#: Engines of one voice: their stream says only the keywords that voice says right.
ONE_VOICE = {"piper": "joe"}


def make_stream(out: Path, engine: str, seconds: float, negative: bool, seed: int = 0):
    """``kwspi synth-stream OUT --engines ENGINE --seconds S --seed SEED [--negative]``, with at
    most ``STREAM_SPEAKERS[engine]`` speakers; the truth CSV beside it. Kept when it exists."""
    from kwspi.train.speech.stream import StreamConfig, write_stream

    if out.exists() and out.with_suffix(".csv").exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    from kwspi.train.speech import engines

    wrong = engines.module(engine).CANNOT_SAY.get(ONE_VOICE.get(engine), ())
    config = StreamConfig(seconds=seconds, seed=seed, negative=negative, engines=(engine,),
                          speakers=STREAM_SPEAKERS.get(engine, StreamConfig.speakers),
                          keywords=tuple(k for k in StreamConfig.keywords if k not in wrong))
    return write_stream(out, out.with_suffix(".csv"), config)


def stream_pair(neg: Path | None, pos: Path | None, engine: str) -> tuple[Path, Path] | None:
    """The engine's keyword-free and keyword streams, when both folders hold one."""
    if neg is None or pos is None:
        return None
    pair = (neg / f"{engine}.wav", pos / f"{engine}.wav")
    return pair if all(p.exists() and p.with_suffix(".csv").exists() for p in pair) else None


def _evaluate(model, wav: Path) -> dict:
    from kwspi.deploy.evaluation.stream import SWEEP_THRESHOLDS, evaluate_stream
    from kwspi.deploy.evaluation.truth import read_truth
    from kwspi.deploy.sources import WavSource

    return evaluate_stream(model, WavSource(wav), read_truth(wav.with_suffix(".csv")), grid=SWEEP_THRESHOLDS)


def operating_point(neg_rows: list[dict], pos_rows: list[dict], bar: float) -> dict | None:
    """The lowest threshold whose keyword-free false alarms per hour are at most ``bar``, with
    the keyword stream's recall there; rows are the two sweeps' (same grid)."""
    recall = {r["threshold"]: r["recall"] for r in pos_rows}
    for r in sorted(neg_rows, key=lambda r: r["threshold"]):
        if r["fa_per_hour"] <= bar:
            return {"threshold": r["threshold"], "fa_per_hour": round(r["fa_per_hour"], 1),
                    "recall": recall.get(r["threshold"])}
    return None


def recall_at(sweep: list[dict], bar: float) -> float:
    """From a row's ``sweep``: the keyword stream's recall at the lowest threshold with at most
    ``bar`` false alarms per hour on the keyword-free stream; 0 when no threshold gets there."""
    return next(((r["recall"] or 0.0) for r in sorted(sweep, key=lambda r: r["threshold"])
                 if r["fa_per_hour"] <= bar), 0.0)


def score_streams(model_path: Path, neg: Path, pos: Path, bar: float = FA_BAR) -> dict:
    """One model on one engine's two streams (see the module docstring)."""
    from kwspi.deploy.model import LoadedModel

    model = LoadedModel.load(model_path)
    n, p = _evaluate(model, neg), _evaluate(model, pos)
    return {"neg": str(neg), "pos": str(pos), "neg_hours": round(n["hours"], 4),
            "keywords_spoken": p["keywords_spoken"], "thresholds": n["thresholds"],
            "fa_per_hour": round(n["fa_per_hour"], 1), "recall": p["recall"],
            "bar": bar, "at_bar": operating_point(n["sweep"]["rows"], p["sweep"]["rows"], bar),
            "sweep": [{"threshold": a["threshold"], "fa_per_hour": round(a["fa_per_hour"], 1), "recall": b["recall"]}
                      for a, b in zip(n["sweep"]["rows"], p["sweep"]["rows"])]}


def _fmt(x, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def bar_table(rows: list[dict], names: list[str], engines: list[str], bars=(60, 120, 300, 600)) -> str:
    """One line per ingredient: the recall at each false-alarm bar (the same bar on every model,
    so a recipe that fires less at its own threshold is not credited for the recall it gave
    up), the mean over folds of the seeds' mean, the worst fold in brackets, then each seed's
    mean over folds."""
    lines = ["| ingredient | " + " | ".join(f"recall at ≤ {b:g} FA/h" for b in bars) + " |",
             "|---" + "|---:" * len(bars) + "|"]
    for name in names:
        mine = [r for r in rows if r["ingredient"] == name and r.get("stream")]
        if not mine:
            continue
        cells = []
        for b in bars:
            per = [[recall_at(r["stream"]["sweep"], b) for r in mine if r["held_out"] == e] for e in engines]
            per = [sum(v) / len(v) for v in per if v]
            seeds = sorted({r["seed"] for r in mine})
            each = [[recall_at(r["stream"]["sweep"], b) for r in mine if r["seed"] == s] for s in seeds]
            each = "/".join(f"{sum(v) / len(v):.2f}" for v in each)
            cells.append(f"{sum(per) / len(per):.2f} ({min(per):.2f}) · {each}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(rows: list[dict], names: list[str], engines: list[str], label: dict) -> str:
    """One line per ingredient: per held-out engine the false alarms per hour on its keyword-free
    stream, the recall on its keyword stream, and the recall at the bar, each a mean over seeds;
    then those three over folds: the mean, and the worst fold (most false alarms, least recall)."""
    bar = next((r["stream"]["bar"] for r in rows if r.get("stream")), FA_BAR)
    head = ["ingredient"] + [label[e] for e in engines] + ["mean", "worst"]
    lines = [f"Each cell: false alarms/hour (keyword-free stream) · recall (keyword stream) · recall at "
             f"≤ {bar:g} false alarms/hour; means of seeds.", "",
             "| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    for name in names:
        mine = [r for r in rows if r["ingredient"] == name and r.get("stream")]
        if not mine:
            continue
        folds = {}
        for e in engines:
            got = [r["stream"] for r in mine if r["held_out"] == e]
            if got:
                folds[e] = (mean(s["fa_per_hour"] for s in got), mean(s["recall"] for s in got),
                            mean((s["at_bar"] or {"recall": 0.0})["recall"] for s in got))
        cells = [" · ".join((_fmt(f[0], ".0f"), _fmt(f[1], ".2f"), _fmt(f[2], ".2f"))) if (f := folds.get(e))
                 else "–" for e in engines]
        if folds:
            vals = list(folds.values())
            cells.append(" · ".join((_fmt(mean(v[0] for v in vals), ".0f"), _fmt(mean(v[1] for v in vals), ".2f"),
                                     _fmt(mean(v[2] for v in vals), ".2f"))))
            cells.append(" · ".join((_fmt(max(v[0] for v in vals), ".0f"), _fmt(min(v[1] for v in vals), ".2f"),
                                     _fmt(min(v[2] for v in vals), ".2f"))))
        else:
            cells += ["–", "–"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
