"""The recipe study (issue 12, item 1): which training ingredients help on voices never heard.

The yardstick is the leave-one-engine-out one of ``studies/voices.py``, on its pools: train the
same small net on every engine but one (espeak-ng is never held out), score it on the held-out
engine's spoken clips and on the real-voice test set. Each *ingredient* is that fold recipe
with one change, trained on the four folds at every seed; the baseline is the fold recipe
unchanged. An ingredient is kept only if its mean and worst fold beat the baseline's by more
than the seeds scatter. With ``--neg-streams`` and ``--pos-streams`` each fold model is also
scored on its held-out engine's streams (``studies/streams.py``: false alarms per hour on
keyword-free speech, recall on keywords), which clip accuracy does not show.

An ingredient is written ``NAME:CHANGE[,CHANGE...]`` where a change is either a setting of
the run config, ``train.FIELD=VALUE`` or ``data.FIELD=VALUE`` (a field of
:class:`~kwspi.train.config.TrainConfig` or :class:`~kwspi.train.config.DataConfig`; VALUE is
JSON, or a bare string), or more training data: ``+pool=DIR``, ``DIR/ENGINE`` folders (say
keyword-in-context clips, or mined hard negatives) joined to the fold's training pools for
the engines the fold trains on, so an added pool never leaks the held-out engine; or
``+shared=DIR``, one folder joined to every fold (speech of no engine: recorded people as
negatives). ``+`` joins changes: ``both:train.unknown_weight=0.5+pool=data/context``.

Example:
    .venv/bin/python studies/recipe.py --seeds 0,1 -j 2 \\
        --ingredient grl:train.domain_adversarial=0.3 --ingredient unk:train.unknown_weight=0.5
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import streams  # noqa: E402
import voices  # noqa: E402

from kwspi import gsc  # noqa: E402
from kwspi.atomic import write_text  # noqa: E402

NAME = "recipe"


@dataclass(frozen=True)
class Ingredient:
    """One change to the fold recipe: config settings and training pools added per engine."""

    name: str
    settings: tuple[tuple[str, str, object], ...] = ()  # (section, field, value)
    pools: tuple[Path, ...] = ()  # DIR/ENGINE for each engine a fold trains on
    shared: tuple[Path, ...] = ()  # DIR for every fold

    @classmethod
    def parse(cls, spec: str) -> "Ingredient":
        name, _, changes = spec.partition(":")
        if not name or not changes:
            raise SystemExit(f"ingredient {spec!r}: expected NAME:CHANGE[,CHANGE...]")
        settings, pools, shared = [], [], []
        # Commas inside a JSON list belong to the value: data.augment=["speed","eq"].
        for change in re.split(r",(?![^\[]*\])", changes.replace("+", ",+")):
            change = change.strip()
            if not change:
                continue
            key, _, value = change.partition("=")
            if key in ("+pool", "+shared"):
                (pools if key == "+pool" else shared).append(Path(value))
                continue
            section, _, field = key.lstrip("+").partition(".")
            if section not in ("train", "data") or not field or not value:
                raise SystemExit(f"ingredient {spec!r}: {change!r} is not train.FIELD=VALUE, data.FIELD=VALUE "
                                 "+pool=DIR or +shared=DIR")
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = value
            settings.append((section, field, parsed))
        return cls(name, tuple(settings), tuple(pools), tuple(shared))

    def apply(self, run):
        """``run`` (a TrainRun) with this ingredient's settings; an unknown field is an error."""
        for section, field, value in self.settings:
            part = getattr(run, section)
            if field not in {f.name for f in dataclasses.fields(part)}:
                raise SystemExit(f"ingredient {self.name}: {type(part).__name__} has no field {field!r}")
            if isinstance(getattr(part, field), tuple) and not isinstance(value, (list, tuple)):
                value = (value,)
            value = tuple(value) if isinstance(value, list) else value
            run = dataclasses.replace(run, **{section: dataclasses.replace(part, **{field: value})})
        return run


BASELINE = Ingredient("baseline")


def make_pools(root: Path, as_they_are: bool = False) -> dict[str, Path]:
    """``root/ENGINE`` for every engine: the study's pools, synthesized where clips are missing
    (``voices.synth_pool`` keeps those there), or, ``as_they_are``, folders made elsewhere."""
    if as_they_are:
        return {e: root / e for e in voices.ENGINES}
    return {e: voices.synth_pool(e, root / e, voices.SPEAKERS[e]) for e in voices.ENGINES}


def folds() -> list[voices.Mix]:
    return [m for m in voices.plan_mixes(curve=False) if m.kind == "fold"]


def mix_dir(args, ing: Ingredient, mix: voices.Mix) -> Path:
    # Settings-only ingredients train on the baseline's folder, so they share its feature cache.
    return args.work / "mix" / (f"{mix.tag}+{ing.name}" if ing.pools or ing.shared else mix.tag)


def fold_folders(ing: Ingredient, mix: voices.Mix, pools: dict[str, Path]) -> list[Path]:
    """What a fold of ``ing`` trains on: the pools of the fold's engines, the ingredient's
    ``+pool`` folders of those engines only (never the held-out engine's) and its ``+shared``
    folders."""
    extra = [p / e for p in ing.pools for e in mix.engines if (p / e).is_dir()]
    return [pools[e] for e in mix.engines] + extra + list(ing.shared)


def build_mixes(args, ingredients: list[Ingredient], pools: dict[str, Path]) -> None:
    for ing in ingredients:
        for mix in folds():
            gsc.combine(fold_folders(ing, mix, pools), mix_dir(args, ing, mix))


def run_dir(args, ing: Ingredient, mix: voices.Mix, seed: int) -> Path:
    return args.work / "runs" / voices.scale_tag(args) / ing.name / f"{mix.tag}-seed{seed}"


def fold_steps(args, ing: Ingredient, mix: voices.Mix, seed: int, data: Path):
    """Train and export one fold model: ``ing``'s settings, trained on the folder ``data``."""
    from kwspi.train.config import DataConfig, ExportRun, TrainConfig, TrainRun
    from kwspi.train.sweep import Step

    run = run_dir(args, ing, mix, seed)
    train = TrainRun(arch=args.arch, out=run, resume=True, data=DataConfig(data=data, views=args.views),
                     train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                       seed=seed, label_smoothing=0.0, device="cpu"))
    # The scale in the name: two nets in one --work would otherwise share a step's record, and
    # each run would move the other's finished folds aside as "ran with other settings".
    tag = f"{voices.scale_tag(args)}/{ing.name}/{mix.tag}-seed{seed}"
    export = ExportRun(checkpoint=run / "checkpoint.pt", out=run / "model.onnx")
    return [Step.of(f"{tag}/train", ing.apply(train), run / "metrics.json"),
            Step.of(f"{tag}/export", export, run / "model.onnx", (f"{tag}/train",))]


def steps(args, ingredients: list[Ingredient]):
    return [step for seed in args.seeds for ing in ingredients for mix in folds()
            for step in fold_steps(args, ing, mix, seed, mix_dir(args, ing, mix))]


def score(args, ing: Ingredient, mix: voices.Mix, seed: int, pools: dict[str, Path]) -> dict | None:
    """One fold model's row: its held-out engine's clips, the real voices and, when
    ``--neg-streams`` and ``--pos-streams`` hold that engine's streams, the streams."""
    model = run_dir(args, ing, mix, seed) / "model.onnx"
    if not model.exists():
        return None
    held_out = mix.unheard()[0]
    pair = streams.stream_pair(args.neg_streams, args.pos_streams, held_out)
    other = args.other_neg_streams / f"{held_out}.wav" if args.other_neg_streams else None
    return {"ingredient": ing.name, "held_out": held_out, "seed": seed,
            "unheard": voices.score_engine(model, pools[held_out], held_out),
            "real": voices.score_real(model, args.real),
            "stream": streams.score_streams(model, *pair, args.fa_bar, other if other and other.exists() else None)
            if pair else None}


def table(rows: list[dict], ingredients: list[Ingredient]) -> str:
    """One line per ingredient: each held-out engine (mean of seeds), the mean and worst fold,
    the keywords called ``_unknown_`` and the real-voice clips right, seeds in brackets."""
    engines = [m.unheard()[0] for m in folds()]
    head = ["ingredient"] + [voices.LABEL[e] for e in engines] + ["mean", "worst", "keywords called _unknown_",
                                                                  "real voices right"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for ing in ingredients:
        mine = [r for r in rows if r["ingredient"] == ing.name]
        if not mine:
            continue
        seeds = sorted({r["seed"] for r in mine})
        per_seed = {s: {r["held_out"]: r for r in mine if r["seed"] == s} for s in seeds}
        cells, fold_means = [], []
        for e in engines:
            accs = [100 * per_seed[s][e]["unheard"]["accuracy"] for s in seeds if e in per_seed[s]]
            fold_means.append(statistics.mean(accs) if accs else None)
            cells.append(f"{fold_means[-1]:.1f} ({', '.join(f'{a:.1f}' for a in accs)})" if accs else "–")
        done = [m for m in fold_means if m is not None]
        seed_means = [statistics.mean(100 * r["unheard"]["accuracy"] for r in per_seed[s].values()) for s in seeds
                      if len(per_seed[s]) == len(engines)]
        unk = [100 * r["unheard"]["called_unknown"] for r in mine if r["unheard"]["called_unknown"] is not None]
        real = [r["real"]["all"]["right"] for r in mine if r["real"]]
        of = mine[0]["real"]["all"]["of"] if mine[0]["real"] else 0
        cells += [f"**{statistics.mean(done):.1f}** ({', '.join(f'{m:.1f}' for m in seed_means)})" if done else "–",
                  f"{min(done):.1f}" if done else "–",
                  f"{statistics.mean(unk):.1f} %" if unk else "–",
                  f"{statistics.mean(real):.1f} / {of}" if real else "–"]
        lines.append(f"| {ing.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figures(rows: list[dict], ingredient: str, threshold: float | None = None) -> dict:
    """One ingredient's folds as named figures for ``kwspi export --figures``: the held-out
    engines (accuracy on each, its mean and worst over folds and seeds), the real voices and,
    where the folds were scored on streams, :func:`stream_figures`."""
    mine = [r for r in rows if r["ingredient"] == ingredient]
    by_engine = {}
    for r in mine:
        by_engine.setdefault(r["held_out"], []).append(r["unheard"]["accuracy"])
    per = {e: round(statistics.mean(a), 4) for e, a in by_engine.items()}
    worst = min(per, key=per.get)
    out = {"held-out engines (leave-one-engine-out folds of this recipe)": {
        "mean": round(statistics.mean(per.values()), 4), "worst": per[worst], "worst_engine": worst,
        "per_engine": per, "seeds": sorted({r["seed"] for r in mine}),
        "n": {e: next(r["unheard"]["n"] for r in mine if r["held_out"] == e) for e in per}}}
    real = [r["real"]["all"] for r in mine if r["real"]]
    if real:
        out["real voices (fold models, never trained on)"] = {
            "right": round(statistics.mean(g["right"] for g in real), 2), "of": real[0]["of"]}
    scored = [r for r in mine if r.get("stream")]
    if scored:
        out[STREAM_FIGURES] = stream_figures(scored, threshold)
    return out


#: The name under which :func:`figures` gives a model's folds on its held-out engines' streams.
STREAM_FIGURES = "held-out engine streams (leave-one-engine-out folds of this recipe)"


def stream_figures(rows: list[dict], threshold: float | None = None) -> dict:
    """The folds on their held-out engine's streams, at the models' thresholds (or at
    ``threshold`` for every keyword, one of the streams' sweep): false alarms per
    hour on keyword-free talk (of text no model mined, when the rows have it: mining reads the
    other keyword-free stream), recall on the keyword stream, and the recall at the lowest
    threshold that keeps false alarms at most ``bar`` an hour; each engine the mean of its
    seeds, then the mean and worst over engines."""
    key = "other_fa_per_hour" if all("other_fa_per_hour" in r["stream"] for r in rows) else "fa_per_hour"
    by_engine: dict[str, list[dict]] = {}
    for r in rows:
        by_engine.setdefault(r["held_out"], []).append(r["stream"])
    bar = rows[0]["stream"]["bar"]

    def at(s: dict) -> dict:
        if threshold is None:
            return s
        point = [p for p in s["sweep"] if p["threshold"] == threshold]
        if not point:
            raise SystemExit(f"--figures-threshold {threshold}: not a threshold of the streams' sweep")
        return point[0]

    per = {e: {"fa_per_hour": round(statistics.mean(at(s)[key] for s in ss), 1),
               "recall": round(statistics.mean(at(s)["recall"] for s in ss), 4),
               "recall_at_bar": round(statistics.mean(streams.recall_at(s["sweep"], bar, key) for s in ss), 4)}
           for e, ss in by_engine.items()}
    mean = {m: round(statistics.mean(p[m] for p in per.values()), 4)
            for m in ("fa_per_hour", "recall", "recall_at_bar")}
    own = sorted({t for r in rows for t in r["stream"]["thresholds"].values()})
    thresholds = own if threshold is None else [threshold]
    return {"thresholds": thresholds,
            "negatives": "keyword-free talk of text no model mined" if key != "fa_per_hour" else "keyword-free talk",
            "fa_per_hour": mean["fa_per_hour"], "fa_per_hour_worst": max(p["fa_per_hour"] for p in per.values()),
            "recall": mean["recall"], "recall_worst": min(p["recall"] for p in per.values()),
            "bar_fa_per_hour": bar, "recall_at_bar": mean["recall_at_bar"],
            "per_engine": per, "seeds": sorted({r["seed"] for r in rows}),
            "keywords": {e: next(r["stream"]["keywords_spoken"] for r in rows if r["held_out"] == e) for e in per}}


def add_figures_options(parser) -> None:
    parser.add_argument("--figures", type=Path, default=None,
                        help="also write one ingredient's folds as figures for `kwspi export --figures`")
    parser.add_argument("--figures-of", default=BASELINE.name, metavar="NAME", help="that ingredient")
    parser.add_argument("--figures-threshold", type=float, default=None, metavar="T",
                        help="stream figures at this threshold for every keyword (the one the model ships "
                             "with) [default: the fold models' own]")


def write_figures(args, rows: list[dict]) -> None:
    if args.figures:
        if not any(r["ingredient"] == args.figures_of for r in rows):
            raise SystemExit(f"--figures-of {args.figures_of}: no fold of it was scored")
        write_text(args.figures, json.dumps(figures(rows, args.figures_of, args.figures_threshold), indent=1) + "\n")


def add_stream_options(parser) -> None:
    parser.add_argument("--neg-streams", type=Path, default=None,
                        help="ENGINE.wav per engine, keyword-free (kwspi synth-stream --negative): each fold "
                             "model's false alarms per hour on its held-out engine's")
    parser.add_argument("--pos-streams", type=Path, default=None,
                        help="ENGINE.wav per engine with keywords (kwspi synth-stream): its recall there")
    parser.add_argument("--other-neg-streams", type=Path, default=None,
                        help="ENGINE.wav per engine, keyword-free, of text the keyword-free streams do not say: "
                             "false alarms on text no model mined")
    parser.add_argument("--fa-bar", type=float, default=streams.FA_BAR,
                        help="the stream recall is also given at the lowest threshold with at most this many "
                             "false alarms per hour on the keyword-free stream")


def main():
    parser = voices.study_parser(__doc__, "runs/recipe", [0, 1])
    parser.add_argument("--ingredient", action="append", default=[], type=Ingredient.parse,
                        help="NAME:CHANGE[,CHANGE...] (see above); repeat for more")
    parser.add_argument("--pools-as-they-are", action="store_true",
                        help="use POOLS/ENGINE as made elsewhere (the bundled model's pools) instead of "
                             "making the study's 16 words with voices.py's speakers")
    parser.add_argument("--without-baseline", action="store_true",
                        help="train only the ingredients (the baseline's folds are known, or not wanted)")
    add_figures_options(parser)
    add_stream_options(parser)
    args = parser.parse_args()

    from kwspi.train.executors import LocalExecutor
    from kwspi.train.sweep import run_steps

    ingredients = ([] if args.without_baseline else [BASELINE]) + args.ingredient
    pools = make_pools(args.pools, as_they_are=args.pools_as_they_are)
    build_mixes(args, ingredients, pools)
    failed = run_steps(steps(args, ingredients), args.work / "logs", LocalExecutor(args.jobs))

    rows = [row for seed in args.seeds for ing in ingredients for mix in folds()
            if (row := score(args, ing, mix, seed, pools))]
    for row in rows:
        print(json.dumps(row))
    command = ".venv/bin/python studies/recipe.py " + shlex.join(sys.argv[1:])
    payload = {"study": NAME, "command": command,
               "ingredients": [dataclasses.asdict(i) for i in ingredients],
               "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"{NAME}.json", json.dumps(payload, indent=1, default=str) + "\n")
    write_figures(args, rows)
    print(table(rows, ingredients))
    if any(r["stream"] for r in rows):
        print(streams.table(rows, [i.name for i in ingredients], [m.unheard()[0] for m in folds()], voices.LABEL))
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (logs in {args.work / 'logs'})")


if __name__ == "__main__":
    main()
