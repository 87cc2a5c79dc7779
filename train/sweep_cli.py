"""``kwspi sweep``: the paper's Pareto sweep from one command (see :mod:`kwspi.train.sweep`)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from kwspi.errors import KwspiError
from kwspi.train.cli import parse_names
from kwspi.train.sweep import BASELINES, SweepConfig, model_path, plan, run_plan
from kwspi.train.sweep_report import model_row, write_report


def _floats(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in parse_names(value))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


@click.command("sweep", short_help="Search over beta, retrain, export and compare with DS-CNN (the paper's sweep).")
@click.option("--data", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Data in Google Speech Commands layout (every step trains on its training split).")
@click.option("--runs", default=Path("runs/sweep"), show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where the searches, trainings and logs go.")
@click.option("--results", default=Path("results"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where sweep.md, sweep.png, sweep.json and models/*.onnx go.")
@click.option("--betas", default="0,4,16", show_default=True, help="Betas to search with ('' for none).")
@click.option("--width-mults", default="0.5", show_default=True, help="Width multipliers of the supernet.")
@click.option("--n-mfccs", default="10", show_default=True, help="Numbers of cepstra (10, 20, 30, 40 in the paper).")
@click.option("--baselines", default=",".join(BASELINES), show_default=True,
              help="DS-CNN baselines trained with the same retraining budget ('' for none).")
@click.option("--target-macs", type=click.FloatRange(min=1, min_open=True), default=5e6, show_default=True,
              help="The MACs where the cost factor is 1 (the paper: 20e6 for its larger nets).")
@click.option("--warmup-epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Warm-up epochs, shared by every beta (the paper: 40).")
@click.option("--warmup-lr", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Peak warm-up learning rate (the paper: 0.05).")
@click.option("--search-epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Joint epochs per beta (the paper: 120).")
@click.option("--retrain-epochs", type=click.IntRange(min=1), default=15, show_default=True,
              help="Training epochs of every found net and every baseline.")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--keywords", default=None, help="Comma-separated keywords. [default: the 10 GSC keywords]")
@click.option("--eval-data", multiple=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder of voices never trained on, measured in full (repeatable; the first is the table's "
                   "'held-out families' column).")
@click.option("--dataset-name", default=None, help="How the models describe their training data.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Steps run at once. [default: one per GPU, or 1 on a CPU]")
@click.option("--report-only", is_flag=True, help="Only rebuild the report from the models already exported.")
def sweep(data, runs, results, betas, width_mults, n_mfccs, baselines, target_macs, warmup_epochs, warmup_lr,
          search_epochs, retrain_epochs, batch_size, seed, keywords, eval_data, dataset_name, jobs,
          report_only):
    """Run the paper's sweep: search an architecture for every beta, retrain
    each from its inherited weights, export it int8, train and export the
    DS-CNN baselines with the same budget, then report accuracy against MACs.

    Each step is a kwspi command (search, train, export) in its own process,
    logged to RUNS/logs/. One warm-up per width and number of cepstra serves
    every beta. Rerunning the same command skips what is done and resumes
    what was interrupted. Writes RESULTS/sweep.md (table and the Pareto
    comparison), RESULTS/sweep.png, RESULTS/sweep.json (one row per model)
    and RESULTS/models/nas-w<w>-c<n>-b<beta>.onnx and dscnn-{s,m,l}.onnx.

    \b
    Example:
      kwspi sweep --data data/sweep --eval-data data/heldout-families --betas 0,4,16 -j 2
      kwspi sweep --data speech_commands_v0.01 --betas 0,1,2,4,8,16 --width-mults 0.75,1,1.25 \\
          --target-macs 20e6 --warmup-epochs 40 --search-epochs 120 --retrain-epochs 120
    """
    import torch

    cfg = SweepConfig(data=data, runs=runs, results=results, betas=_floats(betas), width_mults=_floats(width_mults),
                      n_mfccs=tuple(int(n) for n in _floats(n_mfccs)), baselines=parse_names(baselines),
                      target_macs=target_macs, warmup_epochs=warmup_epochs, warmup_lr=warmup_lr,
                      search_epochs=search_epochs,
                      retrain_epochs=retrain_epochs, batch_size=batch_size, seed=seed,
                      keywords=parse_names(keywords) or (),
                      eval_data=tuple(eval_data),
                      dataset_name=dataset_name)
    steps = plan(cfg)
    if not report_only:
        gpus = torch.cuda.device_count()
        failed = run_plan(steps, runs / "logs", jobs or max(gpus, 1), gpus, echo=click.echo)
        if failed:
            raise KwspiError(f"{len(failed)} step(s) failed or were not run: {', '.join(failed)}; "
                             f"logs in {runs / 'logs'}")
    exported = [s.done for s in steps if s.name.endswith("/export") and s.done.exists()]
    if not exported:
        raise KwspiError(f"no exported models under {model_path(cfg, '*').parent}: run the sweep first")
    families = f"{Path(eval_data[0]).name}/all" if eval_data else None
    rows = [model_row(path, families) for path in exported]
    title = f"NAS vs DS-CNN on {data}"
    command = shlex.join(
        ["kwspi", "sweep", "--data", str(data), "--runs", str(runs), "--results", str(results), "--betas", betas,
         "--width-mults", width_mults, "--n-mfccs", n_mfccs, "--baselines", baselines, "--target-macs",
         f"{target_macs:g}", "--warmup-epochs", str(warmup_epochs), "--warmup-lr", f"{warmup_lr:g}",
         "--search-epochs", str(search_epochs), "--retrain-epochs", str(retrain_epochs), "--batch-size",
         str(batch_size), "--seed", str(seed)]
        + [x for d in eval_data for x in ("--eval-data", str(d))]
        + (["--keywords", keywords] if keywords else []) + (["--dataset-name", dataset_name] if dataset_name else []))
    preamble = (f"Data: {dataset_name or data}. Betas {betas}, widths {width_mults}, cepstra {n_mfccs}, target "
                f"{target_macs:g} MACs, {warmup_epochs} warm-up epochs (lr {warmup_lr:g}, shared by every beta) and "
                f"{search_epochs} search epochs per beta, {retrain_epochs} retraining epochs for every model "
                f"(from the inherited weights for NAS, from scratch for DS-CNN), batch {batch_size}, seed {seed}. "
                "Accuracy is of the int8 ONNX files in models/, measured at export. Made by:\n\n"
                f"```\n{command}\n```")
    write_report(rows, results, title, preamble)
    click.echo(f"{results / 'sweep.md'}: {len(rows)} models")
