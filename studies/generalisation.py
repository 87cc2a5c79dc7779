"""Which augmentation helps on voices never heard in training (issue 3, item 7)?

One network per augmentation recipe, each trained by ``kwspi train --augment NAME`` on the
same data with the same budget and exported int8 by ``kwspi export``; the table compares
held-out speakers of the trained voice families (the test split) with whole voice families
kept out of training (``--heldout``). The steps run through the sweep's runner, so a rerun
skips finished runs and resumes interrupted ones.

Example:
    .venv/bin/python studies/generalisation.py --data data/sweep --heldout data/heldout-families --out results
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from kwspi.atomic import write_text
from kwspi.train.config import DataConfig, ExportRun, TrainConfig, TrainRun
from kwspi.train.speech.augment import EXTRA_AUGMENTATIONS
from kwspi.train.executors import LocalExecutor
from kwspi.train.sweep import Step, run_steps
from kwspi.train.sweep_report import model_row

NAME = "generalisation"
RECIPES = ("paper", *EXTRA_AUGMENTATIONS, "all")


def recipe_augment(recipe: str) -> tuple[str, ...]:
    if recipe == "paper":
        return ()
    return tuple(EXTRA_AUGMENTATIONS) if recipe == "all" else (recipe,)


def model_file(args, recipe: str, seed: int) -> Path:
    return args.work / "models" / f"{args.arch}-{recipe}-seed{seed}.onnx"


def plan(args) -> list[Step]:
    steps = []
    for seed in args.seeds:
        for recipe in args.recipes:
            tag = f"{args.arch}-{recipe}-seed{seed}"
            run, model = args.work / tag, model_file(args, recipe, seed)
            train = TrainRun(arch=args.arch, out=run, resume=True,
                             data=DataConfig(data=args.data, augment=recipe_augment(recipe)),
                             train=TrainConfig(epochs=args.epochs, seed=seed))
            steps.append(Step.of(f"{tag}/train", train, run / "metrics.json"))
            export = ExportRun(checkpoint=run / "checkpoint.pt", out=model, eval_data=(args.heldout,))
            steps.append(Step.of(f"{tag}/export", export, model, (f"{tag}/train",)))
    return steps


def summarise(args) -> list[dict]:
    """One row per recipe: mean (and each seed's) accuracy on both kinds of held-out data,
    over the seeds whose model exists."""
    families = f"{args.heldout.name}/all"
    rows = []
    for recipe in args.recipes:
        seeds = [seed for seed in args.seeds if model_file(args, recipe, seed).exists()]
        if not seeds:
            continue
        runs = [model_row(model_file(args, recipe, seed), families) for seed in seeds]
        speakers = [r["accuracy_heldout_speakers"] for r in runs]
        unheard = [r["accuracy_heldout_families"] for r in runs]
        rows.append({"recipe": recipe, "augment": [",".join(recipe_augment(recipe))] if recipe != "paper" else ["(paper: shift + noise)"],
                     "seeds": seeds, "heldout_speakers": statistics.mean(speakers),
                     "heldout_families": statistics.mean(unheard), "heldout_families_by_seed": unheard,
                     "n_speakers": runs[0]["n_heldout_speakers"], "n_families": runs[0]["n_heldout_families"]})
    return rows


def train_commands(rows: list[dict], args) -> list[str]:
    """The commands that train exactly the runs in ``rows``: one per seed, with its recipes."""
    by_seed: dict[int, list[str]] = {}
    for r in rows:
        for seed in r["seeds"]:
            by_seed.setdefault(seed, []).append(r["recipe"])
    return [f".venv/bin/python studies/generalisation.py --data {args.data} --heldout {args.heldout} --out {args.out} "
            f"--arch {args.arch} --epochs {args.epochs} --seeds {seed} --recipes {','.join(recipes)}"
            for seed, recipes in sorted(by_seed.items())]


def markdown(rows: list[dict], args, command: str) -> str:
    base = next((r for r in rows if r["recipe"] == "paper"), None)
    lines = [
        "# Generalisation to unheard voices: which augmentation helps",
        "",
        f"`{args.arch}` trained {args.epochs} epochs on **{args.data}** (synthetic espeak-ng speech; the voice "
        f"families en-029 and en-gb-scotland and every mbrola voice kept out), once per recipe and seed "
        f"({', '.join(map(str, args.seeds))}), exported int8 and measured on the held-out speakers of the trained "
        f"families (test split) and on **{args.heldout}**, whole voice families never trained on. Every recipe "
        "includes the paper's time shift; `snr` replaces the paper's noise volume with an SNR range, the others "
        "add to the paper's noise. Accuracy of the int8 models, in %.",
        "",
        "| recipe | held-out speakers | unheard families | vs paper recipe | unheard, each seed |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        delta = "" if base is None or r is base else f"{100 * (r['heldout_families'] - base['heldout_families']):+.2f}"
        lines.append(f"| {r['recipe']} | {100 * r['heldout_speakers']:.2f} | {100 * r['heldout_families']:.2f} "
                     f"| {delta} | {', '.join(f'{100 * a:.2f}' for a in r['heldout_families_by_seed'])} |")
    if rows:
        n = rows[0]["n_families"]
        lines += ["", f"One clip of the {n} unheard-family clips is {100 / n:.2f} points; differences of a point "
                  "or less between single runs are within what another seed moves."]
    lines += ["", "Rerun: train (each command skips what is done), then tabulate:", "", "```",
              *train_commands(rows, args), command, "```", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Example:")[1])
    parser.add_argument("--data", type=Path, default=Path("data/sweep"))
    parser.add_argument("--heldout", type=Path, default=Path("data/heldout-families"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--work", type=Path, default=Path("runs/generalisation"))
    parser.add_argument("--arch", default="dscnn-s", help="a baseline name or an architecture JSON")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0])
    parser.add_argument("--recipes", type=lambda s: s.split(","), default=list(RECIPES))
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing; tabulate the runs of --seeds x --recipes that exist")
    args = parser.parse_args()
    steps = plan(args)
    failed = [] if args.report_only else run_steps(steps, args.work / "logs", LocalExecutor(args.jobs))
    rows = summarise(args)
    command = (f".venv/bin/python studies/generalisation.py --data {args.data} --heldout {args.heldout} "
               f"--out {args.out} --arch {args.arch} --epochs {args.epochs} "
               f"--seeds {','.join(map(str, args.seeds))} --recipes {','.join(args.recipes)}"
               + (" --report-only" if args.report_only else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"{NAME}.json", json.dumps(rows, indent=1) + "\n")
    write_text(args.out / f"{NAME}.md", markdown(rows, args, command))
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (logs in {args.work / 'logs'})")


if __name__ == "__main__":
    main()
