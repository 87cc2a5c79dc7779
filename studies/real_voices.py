"""Real human voices: build the keyword test set and the negatives, and score a model on it.

    .venv/bin/python studies/real_voices.py build   # data/real-voices, data/real-negatives
    .venv/bin/python studies/real_voices.py score --model kwspi/models/default.onnx

``score --data data/real-negatives`` counts how often the other words are taken for a keyword.

The set holds four of the ten keywords only (yes, no, down, on), and ``kwspi eval`` refuses
a folder without clips for every keyword of the model, so ``score`` classifies each clip
itself, through the same loader and front end as ``kwspi eval`` (:func:`kwspi.clips.load_clip`,
:func:`kwspi.features.clip_features`), and breaks the result down by keyword, by voice pack
and by isolated/embedded. It prints a Markdown table and, with ``--json``, one JSON object.
It loads no torch: it runs where ``kwspi eval`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from kwspi import gsc
from kwspi.clips import load_clip
from kwspi.errors import KwspiError
from kwspi.features import clip_features
from kwspi.modelinfo import INPUT_NAME, open_session, resolve_model
from kwspi.train.speech import real


def groups_of(clip: dict) -> tuple[str, ...]:
    """The rows of the table a clip counts in."""
    return ("all", f"keyword:{clip['keyword']}", f"pack:{clip['pack']}",
            "isolated" if clip["isolated"] else "embedded" if clip["keyword"] != gsc.UNKNOWN else "negative")


def score(model, data) -> dict:
    """Per clip: what the model called it; and right/total by keyword, pack and isolation."""
    rows = real.read_catalogue(data)
    if not rows:
        raise KwspiError(f"{data}: no {real.CATALOGUE}; build it with `make real-voices`")
    session, info = open_session(resolve_model(model), threads=1)
    cfg = info.features
    X = np.stack([clip_features(load_clip(Path(data) / r["clip"], cfg.sample_rate, cfg.clip_samples)[0], cfg)
                  for r in rows])[:, None]
    logits = session.run(None, {INPUT_NAME: X})[0].astype(np.float64)
    post = np.exp(logits - logits.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    # A negatives folder has no keyword: every clip of it should be called _unknown_.
    clips = [dict(clip=r["clip"], keyword=r["keyword"] or gsc.UNKNOWN, pack=r["pack"], isolated=r["isolated"] == "1",
                  said=info.labels[int(p.argmax())], p_said=round(float(p.max()), 3),
                  p_keyword=round(float(p[info.labels.index(r["keyword"] or gsc.UNKNOWN)]), 3)) for r, p in zip(rows, post)]
    right, total = Counter(), Counter()
    for c in clips:
        for g in groups_of(c):
            total[g] += 1
            right[g] += c["said"] == c["keyword"]
    return dict(model=str(model or "bundled"), data=str(data), n=len(clips),
                speakers=len({r["speaker"] for r in rows}), right=dict(right), total=dict(total), clips=clips)


def markdown(report: dict) -> str:
    """One row per group: right of total, and what the model called the clips."""
    lines = ["| clips | right | of | called (argmax) |", "|---|---|---|---|"]
    for g in sorted(report["total"], key=lambda k: (k != "all", ":" not in k, k)):
        said = Counter(c["said"] for c in report["clips"] if g in groups_of(c))
        lines.append(f"| {g} | {report['right'].get(g, 0)} | {report['total'][g]} | "
                     + ", ".join(f"{w} {n}" for w, n in said.most_common()) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the keyword test set and the negatives from the installed packages")
    b.add_argument("--out", default="data/real-voices", type=Path)
    b.add_argument("--negatives", default="data/real-negatives", type=Path)
    s = sub.add_parser("score", help="score a model on the keyword test set")
    s.add_argument("--model", default=None, help="an ONNX model [default: the bundled one]")
    s.add_argument("--data", default="data/real-voices", type=Path)
    s.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            print(real.build_real_voices(args.out, args.negatives))
        else:
            report = score(args.model, args.data)
            print(json.dumps(report) if args.json else markdown(report))
    except KwspiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
