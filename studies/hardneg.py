"""Hard negatives on voice engines never trained on (issue 12, item 2).

The recipe study's yardstick (``studies/recipe.py``: DS-CNN S, the pools of
``studies/voices.py``, four leave-one-engine-out folds, espeak-ng always in training), with
each fold model also scored on its held-out engine's streams (``studies/streams.py``: false
alarms per hour on keyword-free speech, recall on a keyword stream). Hard-negative mining,
with no leak of the held-out engine:

- **round 1**: each fold's baseline model (per seed) listens to the keyword-free streams
  ``NEG/ENGINE.wav`` of the engines that fold *trains on* (never its held-out engine's) and
  ``kwspi mine`` cuts the windows that fire (and, with ``--min-score``, those that nearly do)
  as ``_unknown_`` clips; they join that fold's training pools and the fold is trained again:
  ingredient ``mine1``;
- **round r** (``--rounds``): the ``mine{r-1}`` model mines the same streams again, the new
  clips join those of the earlier rounds: ``mine{r}``;
- ``--with NAME``: a settings ingredient of ``--ingredient`` (say ``unk3:data.unknown_fraction=0.3``)
  also trained with the round-1 clips (mined by the baseline): ``mine1+NAME``; with
  ``--with-rounds``, its round r is mined by ``mine{r-1}+NAME``: ``mine{r}+NAME``;
- ``--max-clips N,M``: each of these recipes with at most N clips per fold and round (drawn at
  random when more windows fire), then with M; a count other than 400 is in the name
  (``mine1x2000+NAME``) and in the mined folder's, so counts never share folders.

Training draws ``unknown_fraction`` x keyword clips from all non-keyword clips (``gsc.build_split``),
so mined clips are a share of that draw, not an addition to it: a larger fraction is what lets
more of them in.

Example:
    .venv/bin/python studies/hardneg.py --seeds 0,1 -j 2 --neg-streams data/negstreams \\
        --pos-streams data/posstreams --rounds 2 --ingredient unk3:data.unknown_fraction=0.3 --with unk3
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recipe  # noqa: E402
import streams  # noqa: E402
import voices  # noqa: E402

from kwspi import gsc  # noqa: E402
from kwspi.atomic import write_text  # noqa: E402

NAME = "mining"
MAX_CLIPS = 400  # clips a fold mines per round unless --max-clips says otherwise


@dataclasses.dataclass(frozen=True)
class Mined:
    """A fold recipe trained with the clips of mining rounds 1..``rounds``, with ``base``'s settings."""

    base: recipe.Ingredient
    rounds: int
    max_clips: int = MAX_CLIPS

    @property
    def name(self) -> str:
        return (f"mine{self.rounds}{count_tag(self.max_clips)}"
                + ("" if self.base == recipe.BASELINE else f"+{self.base.name}"))

    def apply(self, run):
        return self.base.apply(run)

    def miner(self) -> "Mined | recipe.Ingredient":
        """Whose model mines this recipe's last round: the baseline for round 1 (one set of
        clips for every recipe), else the same recipe a round before."""
        return recipe.BASELINE if self.rounds == 1 else Mined(self.base, self.rounds - 1, self.max_clips)

    def clips(self, args, mix: voices.Mix, seed: int) -> list[Path]:
        """The mined folders it trains on: rounds 1..``rounds`` of its chain."""
        return [mined_dir(args, mix, seed, r, self.base, self.max_clips) for r in range(1, self.rounds + 1)]


def count_tag(max_clips: int) -> str:
    # The default count keeps the names (and folders) of the runs made before counts varied.
    return "" if max_clips == MAX_CLIPS else f"x{max_clips}"


def variants(rounds: int, with_: list[recipe.Ingredient], with_rounds: int = 1,
             counts: tuple[int, ...] = (MAX_CLIPS,)) -> list[Mined]:
    return [v for n in counts for v in ([Mined(recipe.BASELINE, r, n) for r in range(1, rounds + 1)]
                                        + [Mined(i, r, n) for r in range(1, with_rounds + 1) for i in with_])]


def mined_dir(args, mix: voices.Mix, seed: int, round_: int, base: recipe.Ingredient = recipe.BASELINE,
              max_clips: int = MAX_CLIPS) -> Path:
    chain = "" if round_ == 1 or base == recipe.BASELINE else f"+{base.name}"
    return (args.work / "mined" / voices.scale_tag(args) / f"round{round_}{count_tag(max_clips)}{chain}"
            / f"{mix.tag}-seed{seed}")


def mined_mix_dir(args, v: Mined, mix: voices.Mix, seed: int) -> Path:
    return args.work / "mix" / voices.scale_tag(args) / f"{mix.tag}+{v.name}-seed{seed}"


def negative_streams(args, mix: voices.Mix) -> list[Path]:
    """The keyword-free streams a fold may mine: those of the engines it trains on, never its
    held-out engine's."""
    wavs = [args.neg_streams / f"{e}.wav" for e in mix.engines if e not in mix.unheard()]
    missing = [str(w) for w in wavs if not w.exists()]
    if missing:  # mining fewer engines than the fold trains on would change the ingredient silently
        raise SystemExit(f"fold {mix.tag}: no keyword-free stream {', '.join(missing)}")
    return wavs


def mine_round(args, mix: voices.Mix, seed: int, v: Mined) -> dict | None:
    """``kwspi mine`` with the fold model of ``v.miner()`` over the fold's negative streams,
    into ``v``'s last folder; kept when it was mined before. Returns the clips and windows, or
    None when the miner is not trained."""
    from kwspi.deploy.evaluation.mining import MANIFEST, MiningConfig, NegativeStream, mine
    from kwspi.deploy.evaluation.truth import read_truth
    from kwspi.deploy.model import LoadedModel

    out = v.clips(args, mix, seed)[-1]
    record = out / "mining.json"
    if record.exists() and (out / MANIFEST).exists():
        got = json.loads(record.read_text())
        if got["min_score"] != args.min_score:  # the folder's name does not say it: refuse to mix
            raise SystemExit(f"{out} was mined with --min-score {got['min_score']}, not {args.min_score}: "
                             "use another --work")
        return got
    model = recipe.run_dir(args, v.miner(), mix, seed) / "model.onnx"
    if not model.exists():
        return None
    wavs = negative_streams(args, mix)
    negatives = [NegativeStream(w, tuple(read_truth(w.with_suffix(".csv")))) for w in wavs]
    config = MiningConfig(max_clips=v.max_clips, seed=seed, min_score=args.min_score)
    clips, windows = mine(LoadedModel.load(model), negatives, out, config)
    got = {"model": str(model), "streams": [str(w) for w in wavs], "clips": len(clips), "windows": windows,
           "max_clips": v.max_clips, "min_score": args.min_score}
    write_text(record, json.dumps(got, indent=1) + "\n")
    return got


def recorded(args, todo: list[Mined]) -> list[dict]:
    """What each round mined, per fold and seed, as :func:`mine_round` recorded it; a folder
    that several recipes train on (round 1's) once, for the first of them."""
    out = {}
    for v in todo:
        for seed in args.seeds:
            for mix in recipe.folds():
                record = v.clips(args, mix, seed)[-1] / "mining.json"
                if record.exists() and record not in out:
                    out[record] = {"round": v.rounds, "for": v.name, "fold": mix.tag, "seed": seed,
                                   **json.loads(record.read_text())}
    return list(out.values())


def build_mix(args, v: Mined, mix: voices.Mix, seed: int, pools: dict[str, Path]) -> Path:
    """What ``v.base`` trains on in the fold, plus the clips of rounds 1..``v.rounds``."""
    out = mined_mix_dir(args, v, mix, seed)
    gsc.combine(recipe.fold_folders(v.base, mix, pools) + v.clips(args, mix, seed), out)
    return out


def train(args, ingredients: list[recipe.Ingredient], todo: list[Mined], pools: dict[str, Path]):
    """The baseline first (it mines round 1), then per round: mine, and train that round's
    recipes, the settings ingredients after round 1's mined ones. Returns the steps that failed."""
    from kwspi.train.executors import LocalExecutor
    from kwspi.train.sweep import run_steps

    plain = [recipe.BASELINE] if args.mined_only else ingredients  # the baseline always: it mines round 1
    recipe.build_mixes(args, plain, pools)
    executor, logs = LocalExecutor(args.jobs), args.work / "logs"
    failed = run_steps(recipe.steps(args, [recipe.BASELINE]), logs, executor)
    later = recipe.steps(args, plain[1:])
    for round_ in range(1, max([v.rounds for v in todo], default=0) + 1):
        now = [v for v in todo if v.rounds == round_]
        steps = []
        for seed in args.seeds:
            for mix in recipe.folds():
                got = [mine_round(args, mix, seed, v) for v in now]
                if None in got:
                    continue
                print(json.dumps({"round": round_, "fold": mix.tag, "seed": seed, "clips": [g["clips"] for g in got]}))
                steps += [s for v in now[:1] for s in recipe.fold_steps(args, v, mix, seed,
                                                                         build_mix(args, v, mix, seed, pools))]
                later += [s for v in now[1:] for s in recipe.fold_steps(args, v, mix, seed,
                                                                         build_mix(args, v, mix, seed, pools))]
        failed += run_steps(steps + later, logs, executor)
        later = []
    return failed + run_steps(later, logs, executor)


def print_tables(rows: list[dict], names: list[str]) -> None:
    """Clip accuracy (the recipe study's table), the streams at each model's threshold, and
    recall at equal false alarms."""
    held_out = [m.unheard()[0] for m in recipe.folds()]
    print(recipe.table(rows, [recipe.Ingredient(n) for n in names]))
    print()
    print(streams.table(rows, names, held_out, voices.LABEL))
    print()
    print(streams.bar_table(rows, names, held_out))
    if any(r.get("stream") and "other_fa_per_hour" in r["stream"] for r in rows):
        print()
        print("Recall at equal false alarms on keyword-free speech of other text (no model mined it):")
        print()
        print(streams.bar_table(rows, names, held_out, key="other_fa_per_hour"))


def counts(text: str) -> tuple[int, ...]:
    got = tuple(int(n) for n in text.split(","))
    if min(got) < 1:
        raise ValueError(text)
    return got


def main():
    parser = voices.study_parser(__doc__, "runs/mining", [0, 1])
    recipe.add_figures_options(parser)
    recipe.add_stream_options(parser)
    parser.add_argument("--ingredient", action="append", default=[], type=recipe.Ingredient.parse,
                        help="a settings ingredient, as studies/recipe.py takes it; repeat for more")
    parser.add_argument("--rounds", type=int, default=1, help="mining rounds of the plain recipe")
    parser.add_argument("--with", dest="with_", action="append", default=[], metavar="NAME",
                        help="also train this --ingredient with the round-1 clips")
    parser.add_argument("--with-rounds", type=int, default=1, help="mining rounds of each --with recipe")
    parser.add_argument("--max-clips", type=counts, default=(MAX_CLIPS,), metavar="N[,M...]",
                        help=f"kwspi mine --max, per fold and round (default {MAX_CLIPS}); several: each recipe "
                             "with each count")
    parser.add_argument("--min-score", type=float, default=0.5, help="kwspi mine --min-score")
    parser.add_argument("--mined-only", action="store_true",
                        help="train each --ingredient only with mined clips (--with), not also without")
    parser.add_argument("--report-only", action="store_true", help="train and mine nothing: score what is there")
    parser.add_argument("--tables-of", type=Path, default=None, metavar="JSON",
                        help="print the tables of an earlier run's mining.json and stop")
    args = parser.parse_args()
    if args.tables_of:
        rows = json.loads(args.tables_of.read_text())["rows"]
        print_tables(rows, list(dict.fromkeys(r["ingredient"] for r in rows)))
        return
    if args.neg_streams is None:
        parser.error("--neg-streams is required: the streams to mine")

    ingredients = [recipe.BASELINE] + args.ingredient
    by_name = {i.name: i for i in args.ingredient}
    unknown = [n for n in args.with_ if n not in by_name]
    if unknown:
        parser.error(f"--with {', '.join(unknown)}: not an --ingredient")
    todo = variants(args.rounds, [by_name[n] for n in args.with_], args.with_rounds, args.max_clips)
    pools = recipe.make_pools(args.pools, as_they_are=args.report_only)  # scoring synthesizes nothing
    failed = [] if args.report_only else train(args, ingredients, todo, pools)

    names = ingredients + todo
    rows = [row for seed in args.seeds for ing in names for mix in recipe.folds()
            if (row := recipe.score(args, ing, mix, seed, pools))]
    payload = {"study": NAME, "command": ".venv/bin/python studies/hardneg.py " + shlex.join(sys.argv[1:]),
               "ingredients": [dataclasses.asdict(i) for i in ingredients],
               "mined": [v.name for v in todo], "mining": recorded(args, todo), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"{NAME}.json", json.dumps(payload, indent=1, default=str) + "\n")
    recipe.write_figures(args, rows)
    print_tables(rows, [n.name for n in names])
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (logs in {args.work / 'logs'})")


if __name__ == "__main__":
    main()
