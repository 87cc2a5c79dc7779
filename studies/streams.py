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

``make_stream`` writes such a stream as ``kwspi synth-stream --speakers --keywords --text``
would, with fewer speakers for Piper's one voice (20 speeds and pitches here) and only the
keywords that voice says right.
"""

from __future__ import annotations

from pathlib import Path

#: False alarms per hour the operating point of ``at_bar`` allows (the README's calibration target).
FA_BAR = 60.0
#: Speakers a stream deals over: synth-stream's 64, fewer for an engine that has fewer.
STREAM_SPEAKERS = {"piper": 20}
#: Engines of one voice: their stream says only the keywords that voice says right.
ONE_VOICE = {"piper": "joe"}


def make_stream(out: Path, engine: str, seconds: float, negative: bool, seed: int = 0, other_text: bool = False):
    """``kwspi synth-stream OUT --engines ENGINE --seconds S --seed SEED [--negative]``, with at
    most ``STREAM_SPEAKERS[engine]`` speakers; the truth CSV beside it. Kept when it exists.

    ``other_text``: sentences and confusable words from training's text (``--text training``,
    disjoint from what streams say) instead of the streams' own: a keyword-free stream whose
    text no model mined, when mining reads the streams' text."""
    from kwspi.train.speech.stream import StreamConfig, write_stream

    if out.exists() and out.with_suffix(".csv").exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    from kwspi.train.speech import engines

    wrong = engines.module(engine).CANNOT_SAY.get(ONE_VOICE.get(engine), ())
    config = StreamConfig(seconds=seconds, seed=seed, negative=negative, engines=(engine,),
                          text="training" if other_text else StreamConfig.text,
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


def operating_point(sweep: list[dict], bar: float, key: str = "fa_per_hour") -> dict | None:
    """From a row's ``sweep``: the lowest threshold with at most ``bar`` false alarms per hour
    on the keyword-free stream (``key``: ``other_fa_per_hour``, the other-text one), with the
    keyword stream's recall there; ``None`` when no threshold gets there."""
    for r in sorted(sweep, key=lambda r: r["threshold"]):
        if r.get(key, float("inf")) <= bar:
            return {"threshold": r["threshold"], "fa_per_hour": r[key], "recall": r["recall"]}
    return None


def recall_at(sweep: list[dict], bar: float, key: str = "fa_per_hour") -> float:
    """:func:`operating_point`'s recall, 0 when no threshold gets to ``bar``."""
    point = operating_point(sweep, bar, key)
    return (point["recall"] or 0.0) if point else 0.0


def score_streams(model_path: Path, neg: Path, pos: Path, bar: float = FA_BAR, other: Path | None = None) -> dict:
    """One model on one engine's two streams (see the module docstring), and with ``other`` a
    keyword-free stream of other text (``make_stream(other_text=True)``): ``other_fa_per_hour``."""
    from kwspi.deploy.model import LoadedModel

    model = LoadedModel.load(model_path)
    n, p = _evaluate(model, neg), _evaluate(model, pos)
    o = _evaluate(model, other) if other else None
    extra = {} if o is None else {"other": str(other), "other_fa_per_hour": round(o["fa_per_hour"], 1)}
    sweep = [{"threshold": a["threshold"], "fa_per_hour": round(a["fa_per_hour"], 1), "recall": b["recall"]}
             | ({} if o is None else {"other_fa_per_hour": round(o["sweep"]["rows"][i]["fa_per_hour"], 1)})
             for i, (a, b) in enumerate(zip(n["sweep"]["rows"], p["sweep"]["rows"]))]
    return {**extra, "neg": str(neg), "pos": str(pos), "neg_hours": round(n["hours"], 4),
            "keywords_spoken": p["keywords_spoken"], "thresholds": n["thresholds"],
            "fa_per_hour": round(n["fa_per_hour"], 1), "recall": p["recall"],
            "bar": bar, "at_bar": operating_point(sweep, bar), "sweep": sweep}


def pooled(scores: list[dict]) -> list[dict]:
    """:func:`score_streams` results of one model on several engines as one sweep: per threshold,
    recall weighted by each engine's keywords and false alarms by its hours of keyword-free talk,
    so :func:`recall_at` reads one recall for all of them (results/edition6.json's fold-stream
    figures)."""
    words = sum(s["keywords_spoken"] for s in scores)
    hours = sum(s["neg_hours"] for s in scores)
    rows = zip(*(s["sweep"] for s in scores))
    return [{"threshold": at[0]["threshold"],
             "fa_per_hour": round(sum(r["fa_per_hour"] * s["neg_hours"] for r, s in zip(at, scores)) / hours, 1),
             "recall": round(sum(r["recall"] * s["keywords_spoken"] for r, s in zip(at, scores)) / words, 3)}
            for at in rows]


def _fmt(x, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def bar_table(rows: list[dict], names: list[str], engines: list[str], bars=(60, 120, 300, 600),
              key: str = "fa_per_hour") -> str:
    """One line per ingredient: the recall at each false-alarm bar (the same bar on every model,
    so a recipe that fires less at its own threshold is not credited for the recall it gave
    up), the mean over folds of the seeds' mean, the worst fold in brackets, then each seed's
    mean over folds. ``key``: which keyword-free stream sets the bar (``other_fa_per_hour``:
    the one of other text)."""
    lines = ["| ingredient | " + " | ".join(f"recall at ≤ {b:g} FA/h" for b in bars) + " |",
             "|---" + "|---:" * len(bars) + "|"]
    for name in names:
        mine = [r for r in rows if r["ingredient"] == name and r.get("stream") and key in r["stream"]["sweep"][0]]
        if not mine:
            continue
        cells = []
        for b in bars:
            per = [[recall_at(r["stream"]["sweep"], b, key) for r in mine if r["held_out"] == e] for e in engines]
            per = [sum(v) / len(v) for v in per if v]
            seeds = sorted({r["seed"] for r in mine})
            each = [[recall_at(r["stream"]["sweep"], b, key) for r in mine if r["seed"] == s] for s in seeds]
            each = "/".join(f"{sum(v) / len(v):.2f}" for v in each)
            cells.append(f"{sum(per) / len(per):.2f} ({min(per):.2f}) · {each}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(rows: list[dict], names: list[str], engines: list[str], label: dict) -> str:
    """One line per ingredient: per held-out engine the false alarms per hour on its keyword-free
    stream (and on the one of other text, when scored), the recall on its keyword stream, and
    the recall at the bar, each a mean over seeds; then those over folds: the mean, and the
    worst fold (most false alarms, least recall)."""
    bar = next((r["stream"]["bar"] for r in rows if r.get("stream")), FA_BAR)
    figures = [("false alarms/hour (keyword-free stream)", lambda s: s["fa_per_hour"], ".0f", max)]
    if any(r.get("stream") and "other_fa_per_hour" in r["stream"] for r in rows):
        figures.append(("false alarms/hour (other text)", lambda s: s.get("other_fa_per_hour"), ".0f", max))
    figures += [("recall (keyword stream)", lambda s: s["recall"], ".2f", min),
                (f"recall at ≤ {bar:g} false alarms/hour", lambda s: (s["at_bar"] or {"recall": 0.0})["recall"],
                 ".2f", min)]
    head = ["ingredient"] + [label[e] for e in engines] + ["mean", "worst"]
    lines = ["Each cell: " + " · ".join(f[0] for f in figures) + "; means of seeds.", "",
             "| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    for name in names:
        mine = [r for r in rows if r["ingredient"] == name and r.get("stream")]
        if not mine:
            continue
        folds = {e: [mean(get(r["stream"]) for r in mine if r["held_out"] == e) for _, get, _, _ in figures]
                 for e in engines if any(r["held_out"] == e for r in mine)}
        cells = [" · ".join(_fmt(v, f[2]) for v, f in zip(folds[e], figures)) if e in folds else "–" for e in engines]
        vals = list(folds.values())
        for over in (None, "worst"):
            got = [[v[i] for v in vals if v[i] is not None] for i in range(len(figures))]
            cells.append(" · ".join(_fmt((mean(g) if over is None else f[3](g)) if g else None, f[2])
                                    for g, f in zip(got, figures)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python studies/streams.py DIR ENGINE:SECONDS... [--negative] [--seed N] [--text training]``:
    ``DIR/ENGINE.wav`` for each engine as :func:`make_stream` makes it (the Makefile's fold and
    mining streams), skipping those already there."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("specs", nargs="+", metavar="ENGINE:SECONDS")
    parser.add_argument("--negative", action="store_true", help="no keyword at all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text", choices=("evaluation", "training"), default="evaluation",
                        help="training: the text training data says (streams to mine)")
    args = parser.parse_args(argv)
    for spec in args.specs:
        engine, _, seconds = spec.partition(":")
        try:
            seconds = float(seconds)
        except ValueError:
            parser.error(f"{spec!r}: want ENGINE:SECONDS, say kokoro:120")
        out = args.out / f"{engine}.wav"
        made = make_stream(out, engine, seconds, args.negative, args.seed, args.text == "training")
        print(f"{out}: {'made' if made is not None else 'already there'}")


if __name__ == "__main__":
    main()
