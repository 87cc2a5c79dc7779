"""Voices never trained on: the leave-one-engine-out yardstick and a first diversity curve
(issue 11, items 5 and 6).

One GSC-layout pool per voice engine (``kwspi synth --engines E``, the same words for all),
then the same small net (``kwspi train``, one config per row) on several mixes of pools:

- **baseline**: espeak-ng alone, today's training data;
- **folds**: every engine but one (espeak-ng is never held out: it is what every model has);
- **curve**: espeak-ng, + MBROLA, + RHVoice; its last steps, + Piper and + Kokoro, are the
  folds without Kokoro and without Piper, so the curve costs two more trainings.

Every int8 model is scored on every clip of each engine it never trained on (``kwspi eval
--split all``: the keyword clips, a tenth as many other words, a tenth silence; the figure
here counts the spoken clips only, from eval's ``per_engine``) and on the real-voice test
set (``studies/real_voices.py score``, 41 clips) when ``data/real-voices`` exists. The
steps run through the sweep's runner, so a rerun skips finished runs. It writes
``results/voices.json`` and prints the two tables; ``results/voices.md`` holds them with
the reading that numbers this noisy need, written by hand.

Example:
    .venv/bin/python studies/voices.py --seeds 0,1

(Past ~350 lines: the pools, the three kinds of mix, the scoring and the two tables are one
study read top to bottom; nothing here is used elsewhere.)
"""

from __future__ import annotations

import os

# One thread: the machine's cores are shared. Set before numpy loads (via kwspi).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from kwspi import gsc  # noqa: E402
from kwspi.atomic import write_text  # noqa: E402

NAME = "voices"
# The order is the curve's: formant synthesis first, then voices recorded from people, then
# neural voices. espeak-ng comes first because every model, today's included, has it.
ENGINES = ("espeak", "mbrola", "rhvoice", "piper", "kokoro")
HELD_OUT = ("mbrola", "rhvoice", "piper", "kokoro")
# The ten keywords and six other words for _unknown_ (few, because Kokoro is slow).
WORDS = gsc.KEYWORDS + ("bed", "bird", "cat", "dog", "house", "tree")
# Speakers per engine. Piper has one voice at a handful of speeds; Kokoro costs ~1 s a clip.
SPEAKERS = {"espeak": 100, "mbrola": 60, "rhvoice": 40, "piper": 20, "kokoro": 24}
LABEL = {"espeak": "espeak-ng", "mbrola": "MBROLA", "rhvoice": "RHVoice", "piper": "Piper", "kokoro": "Kokoro"}


@dataclass(frozen=True)
class Mix:
    """One training pool: which engines' clips a model is trained on."""

    kind: str  # baseline, fold, curve or control
    engines: tuple[str, ...]
    # A control's own pool: this many speakers of its one engine (the folds' data size).
    speakers: int | None = None

    @property
    def tag(self) -> str:
        return "+".join(self.engines) + (f"-{self.speakers}sp" if self.speakers else "")

    def unheard(self, engines=ENGINES) -> tuple[str, ...]:
        """The engines this model never heard: what it is scored on."""
        return tuple(e for e in engines if e not in self.engines)


def plan_mixes(engines=ENGINES, held_out=HELD_OUT, curve: bool = True, control: int | None = None) -> list[Mix]:
    """The baseline (the first engine alone), one fold per held-out engine, the curve's
    steps that are neither (the first k engines, for k from 2 up to the last but two), and
    with ``control`` the first engine alone with that many speakers: a fold has more clips
    than the baseline, and the control says how much of a fold's gain more clips alone buy."""
    mixes = [Mix("baseline", engines[:1])] + [Mix("fold", tuple(e for e in engines if e != h)) for h in held_out]
    if control:
        mixes.append(Mix("control", engines[:1], control))
    if curve:
        have = {m.engines for m in mixes}
        mixes += [Mix("curve", engines[:k]) for k in range(2, len(engines) - 1) if engines[:k] not in have]
    return mixes


def curve_mixes(mixes: list[Mix], engines=ENGINES) -> list[Mix]:
    """The curve in order: its stem (the first engine, + the second, ... up to the last but
    two), then each mix that adds one more engine to the stem (the folds of the last
    engines), in the order of ``engines``."""
    by = {m.engines: m for m in mixes if m.kind != "control"}
    stem = [by[engines[:k]] for k in range(1, len(engines) - 1) if engines[:k] in by]
    last = set(stem[-1].engines)
    branches = [m for m in mixes if len(m.engines) == len(last) + 1 and last < set(m.engines)]
    added = {m.tag: engines.index(next(e for e in m.engines if e not in last)) for m in branches}
    return stem + sorted(branches, key=lambda m: added[m.tag])


# ---------------------------------------------------------------------------------------
# Data


def synth_pool(engine: str, out: Path, speakers: int, seed: int = 0) -> Path:
    """``kwspi synth`` of one engine into ``out``; clips already there are kept."""
    subprocess.run([sys.executable, "-m", "kwspi", "synth", str(out), "--engines", engine, "--speakers", str(speakers),
                    "--words", ",".join(WORDS), "--seed", str(seed), "-j", "2"], check=True)
    return out


def pool_sizes(pool: Path) -> dict:
    """Clips, keyword clips and speakers of one folder, by split."""
    clips = [c for cs in gsc.scan(pool).values() for c in cs]
    splits = gsc.split_of_clips(pool, clips)
    out = {"clips": len(clips), "speakers": len({gsc.speaker_of(c) for c in clips})}
    for split, cs in splits.items():
        out[f"{split}_clips"] = len(cs)
        out[f"{split}_keyword_clips"] = sum(c.split("/")[0] in gsc.KEYWORDS for c in cs)
    return out


# ---------------------------------------------------------------------------------------
# Training and scoring


def scale_tag(args) -> str:
    # The scale names the folders: a run resumed under other settings would mix them.
    return f"{arch_tag(args.arch)}-e{args.epochs}-b{args.batch_size}-lr{args.lr}-v{args.views}"


def arch_tag(arch) -> str:
    """A net's name (``dscnn-s``), or an arch.json file's stem and the hash of what it holds:
    two different nets saved under one name (``runs/X/arch.json``) must not share folders."""
    path = Path(arch)
    name = path.name.removesuffix(".json")
    return f"{name}-{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}" if path.is_file() else name


def model_file(args, mix: Mix, seed: int) -> Path:
    return args.work / "models" / scale_tag(args) / f"{mix.tag}-seed{seed}.onnx"


def steps(args, mixes: list[Mix]):
    from kwspi.train.config import DataConfig, ExportRun, TrainConfig, TrainRun
    from kwspi.train.sweep import Step

    out = []
    for seed in args.seeds:
        for mix in mixes:
            tag = f"{mix.tag}-seed{seed}"
            run = args.work / "runs" / scale_tag(args) / tag
            train = TrainRun(arch=args.arch, out=run, resume=True,
                             data=DataConfig(data=args.work / "mix" / mix.tag, views=args.views),
                             train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                               seed=seed, label_smoothing=0.0, device="cpu"))
            name = f"{scale_tag(args)}/{tag}"  # as recipe.fold_steps: one record per net and scale
            out.append(Step.of(f"{name}/train", train, run / "metrics.json"))
            export = ExportRun(checkpoint=run / "checkpoint.pt", out=model_file(args, mix, seed))
            out.append(Step.of(f"{name}/export", export, model_file(args, mix, seed), (f"{name}/train",)))
    return out


def score_engine(model: Path, pool: Path, engine: str) -> dict:
    """``kwspi eval --split all`` on one engine's pool: the spoken clips (keywords and a
    tenth as many other words, from ``per_engine``) and the keyword clips alone."""
    from kwspi.evaluate import evaluate_onnx

    r = evaluate_onnx(model, pool, gsc.ALL)
    conf, labels = r["confusion"], r["labels"]
    kw = [labels.index(k) for k in gsc.KEYWORDS]
    kw_n = sum(sum(conf[i]) for i in kw)
    spoken = r["per_engine"][engine]
    return {"accuracy": spoken["accuracy"], "n": spoken["n"],
            "keyword_recall": round(sum(conf[i][i] for i in kw) / kw_n, 5) if kw_n else None, "keyword_n": kw_n,
            "called_unknown": round(sum(conf[i][labels.index(gsc.UNKNOWN)] for i in kw) / kw_n, 5) if kw_n else None}


def score_real(model: Path, real: Path) -> dict | None:
    if not (real / "catalogue.csv").exists():
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import real_voices

    r = real_voices.score(model, real)
    return {g: {"right": r["right"].get(g, 0), "of": n} for g, n in r["total"].items() if ":" not in g}


# ---------------------------------------------------------------------------------------
# Tables


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.mean(xs) if xs else None


def cell(rows: list[dict], engine: str) -> str:
    """Mean accuracy (%) over seeds on one engine, each seed in brackets when there are two or more."""
    accs = [r["unheard"][engine]["accuracy"] for r in rows if engine in r["unheard"]]
    if not accs:
        return "trained on"
    each = f" ({', '.join(f'{100 * a:.1f}' for a in accs)})" if len(accs) > 1 else ""
    return f"{100 * statistics.mean(accs):.1f}{each}"


def real_cell(rows: list[dict]) -> str:
    got = [r["real"]["all"] for r in rows if r.get("real")]
    if not got:
        return "–"
    return ", ".join(f"{g['right']}/{g['of']}" for g in got)


def fold_table(rows: list[dict], held_out=HELD_OUT, engines=ENGINES, control: int | None = None) -> str:
    """One line per held-out engine: the fold's model (trained on every other engine) and the
    baseline model (the first engine alone) on it, and the control (the first engine alone,
    ``control`` speakers) when it ran; then the mean and the worst over folds, and the
    real-voice counts."""
    by_mix: dict[str, list[dict]] = {}
    for r in rows:
        by_mix.setdefault(r["mix"], []).append(r)
    first = LABEL.get(engines[0], engines[0])
    others = [(f"{first}-only model on it", by_mix.get(engines[0], []))]
    if control and by_mix.get(Mix("control", engines[:1], control).tag):
        others.append((f"{first}-only, {control} speakers, on it", by_mix[Mix("control", engines[:1], control).tag]))
    lines = ["| held-out engine | fold model: trained on | fold model on it | " + " | ".join(t for t, _ in others) + " |",
             "|---|---|---:|" + "---:|" * len(others)]
    folds = {h: by_mix.get("+".join(e for e in engines if e != h), []) for h in held_out}
    folds = {h: rs for h, rs in folds.items() if rs}
    columns = [folds] + [{h: rs for h in folds} for _, rs in others]
    means = [{h: mean([r["unheard"][h]["accuracy"] for r in col[h] if h in r["unheard"]]) for h in folds}
             for col in columns]
    for h in folds:
        trained = ", ".join(LABEL.get(e, e) for e in engines if e != h)
        lines.append(f"| {LABEL.get(h, h)} | {trained} | " + " | ".join(cell(col[h], h) if col[h] else "–"
                                                                      for col in columns) + " |")
    if folds:
        def agg(d, f, bold=False):
            vals = {h: v for h, v in d.items() if v is not None}
            if not vals:
                return "–"
            text = f"**{100 * f(vals.values()):.1f}**" if bold else f"{100 * f(vals.values()):.1f}"
            return text + (f" ({LABEL.get(min(vals, key=vals.get))})" if f is min else "")

        lines.append("| **mean** | | " + " | ".join(agg(m, statistics.mean, i == 0) for i, m in enumerate(means)) + " |")
        lines.append("| **worst** | | " + " | ".join(agg(m, min, i == 0) for i, m in enumerate(means)) + " |")
        real = "; ".join(f"{LABEL.get(h, h)} fold {real_cell(rs)}" for h, rs in folds.items())
        lines.append(f"| real voices (41 clips): right | | {real} | " + " | ".join(real_cell(rs) for _, rs in others) + " |")
    return "\n".join(lines)


def curve_table(rows: list[dict], order: list[Mix], targets=("kokoro", "piper")) -> str:
    """One line per step of the curve: accuracy on the engines of ``targets`` (the ones the
    curve's middle never trains on), and the real-voice counts."""
    by_mix: dict[str, list[dict]] = {}
    for r in rows:
        by_mix.setdefault(r["mix"], []).append(r)
    head = " | ".join(f"on {LABEL.get(t, t)}" for t in targets)
    lines = [f"| training voices | training clips | {head} | real voices: right |",
             "|---|---:|" + "---:|" * len(targets) + "---|"]
    for m in order:
        rs = by_mix.get(m.tag, [])
        if not rs:
            continue
        names = " + ".join(LABEL.get(e, e) for e in m.engines)
        lines.append(f"| {names} | {rs[0]['train_clips']:,} | " + " | ".join(cell(rs, t) for t in targets)
                     + f" | {real_cell(rs)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------


def study_parser(doc: str, work: str, seeds: list[int]) -> argparse.ArgumentParser:
    """The options every leave-one-engine-out study shares: its pools, the real-voice set and
    the one small net's scale."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=doc.split("Example:")[1])
    parser.add_argument("--pools", type=Path, default=Path("data/voices"), help="one kwspi synth folder per engine")
    parser.add_argument("--real", type=Path, default=Path("data/real-voices"), help="make real-voices builds it")
    parser.add_argument("--work", type=Path, default=Path(work))
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--arch", default="dscnn-s")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--views", type=int, default=2)
    # Batch 50, not 100: the pools are small, and twice the steps per epoch trains further at
    # the same compute.
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=seeds)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    return parser


def main():
    parser = study_parser(__doc__, "runs/voices", [0])
    parser.add_argument("--no-curve", action="store_true", help="the baseline and the folds only")
    parser.add_argument("--control-speakers", type=int, default=None,
                        help="also train espeak-ng alone with this many speakers (about a fold's clips)")
    args = parser.parse_args()

    from kwspi.train.executors import LocalExecutor
    from kwspi.train.sweep import run_steps

    pools = {e: synth_pool(e, args.pools / e, SPEAKERS[e]) for e in ENGINES}
    mixes = plan_mixes(curve=not args.no_curve, control=args.control_speakers)
    for m in mixes:
        if m.speakers:
            src = [synth_pool(m.engines[0], args.pools / m.tag, m.speakers)]
        else:
            src = [pools[e] for e in m.engines]
        gsc.combine(src, args.work / "mix" / m.tag)
    failed = run_steps(steps(args, mixes), args.work / "logs", LocalExecutor(args.jobs))

    rows = []
    for seed in args.seeds:
        for m in mixes:
            model = model_file(args, m, seed)
            if not model.exists():
                continue
            sizes = pool_sizes(args.work / "mix" / m.tag)
            rows.append({"mix": m.tag, "kind": m.kind, "seed": seed, "train_clips": sizes["training_clips"],
                         "unheard": {e: score_engine(model, pools[e], e) for e in m.unheard()},
                         "real": score_real(model, args.real)})
            print(json.dumps(rows[-1]))
    command = (f".venv/bin/python studies/voices.py --pools {args.pools} --real {args.real} --work {args.work} "
               f"--out {args.out} --arch {args.arch} --epochs {args.epochs} --lr {args.lr} --views {args.views} "
               f"--batch-size {args.batch_size} "
               f"--seeds {','.join(map(str, args.seeds))}" + (" --no-curve" if args.no_curve else "")
               + (f" --control-speakers {args.control_speakers}" if args.control_speakers else ""))
    payload = {"study": NAME, "command": command, "words": list(WORDS), "speakers": SPEAKERS,
               "pools": {e: pool_sizes(p) for e, p in pools.items()}, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"{NAME}.json", json.dumps(payload, indent=1) + "\n")
    print(fold_table(rows, control=args.control_speakers))
    print()
    print(curve_table(rows, curve_mixes(mixes)))
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (logs in {args.work / 'logs'})")


if __name__ == "__main__":
    main()
