"""The training side's run commands (search, train, export, sweep) and the demo, registered
lazily by :mod:`kwspi.cli`; the commands that make data are :mod:`kwspi.train.speech.cli`.

Each command builds its config and calls one function. The run commands' options are made
from their configs (:mod:`kwspi.train.config`), so a default lives only in the dataclass.
Top-level imports stay torch-free: ``kwspi synth`` works where torch is not installed, and
``--help`` of every command draws without it; a run imports :mod:`kwspi.train.run` when it
starts.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from kwspi.errors import KwspiError, MissingDependency
from kwspi.options import config_from_options, config_options, model_option, progress_bar, seed_option
from kwspi.settings import parse_names
from kwspi.train.config import ExportRun, SearchRun, SweepConfig, TrainRun
from kwspi.train.demo import DemoConfig

_DEMO = DemoConfig()


def _torch_side(module: str):
    """``kwspi.train.<module>``, or the one-line install hint when torch is missing."""
    try:
        return importlib.import_module(f"kwspi.train.{module}")
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in {"torch", "onnx", "onnxscript"}:
            raise MissingDependency(f"this command needs {e.name}: pip install 'kwspi[train]'") from None
        raise


@click.command("demo", short_help="Spot keywords in a synthesized stream and compare with what was said.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=_DEMO.out_dir,
              show_default=True, help="Folder for the stream (stream.wav, stream.csv) and the detections.")
@click.option("--seconds", type=click.FloatRange(min=10.0, max=600.0), default=_DEMO.seconds, show_default=True,
              help="Length of the stream.")
@seed_option(_DEMO.seed, "Same seed and options: the same stream.")
@click.option("--snr-db", type=float, default=_DEMO.snr_db, show_default=True, help="Speech to noise ratio in dB.")
@model_option
@click.option("--voices", default=",".join(_DEMO.voices), show_default=True, metavar="NAMES",
              help="Comma-separated espeak-ng voices (new speakers for the bundled model; its first "
                   "editions never heard these families).")
def demo(out_dir, seconds, seed, snr_db, model, voices):
    """Spot keywords in a synthesized stream and compare with what was said.

    Synthesizes a stream of keywords, alone and in phrases, and sentences
    without one over noise, runs the real
    `kwspi listen --input STREAM --json --hook kwspi.train.demo_hook:on_detect`
    on it, and prints each detection beside the truth (hit or false alarm), the
    keywords that were missed, and recall and false alarms.

    \b
    Example:
      kwspi demo
      kwspi demo --seconds 60 --snr-db 5 --seed 3 --model runs/dscnn-s/model.onnx
    """
    from kwspi.train.demo import run_demo

    run_demo(DemoConfig(out_dir=out_dir, seconds=seconds, seed=seed, snr_db=snr_db, model=model,
                        voices=parse_names(voices)), echo=click.echo)


# --- runs ------------------------------------------------------------------------------------


@click.command("search", short_help="Search an architecture (ProxylessNAS) under a MACs target.")
@config_options(SearchRun)
def search(**options):
    """Search an architecture with ProxylessNAS under a MACs target, as the paper.

    A supernet of twelve cells (18 MBConv candidates each, plus 'zero' from cell
    2 on) trains its weights on one sampled path per batch; every 5 batches an
    architecture step on a validation batch lowers CE * (ln E[MACs] / ln
    target)^beta. The bar shows loss, accuracy, E[MACs] and the argmax
    architecture as kernel-expansion digits (72 = k7e2, -- = zero).

    OUT/arch.json is the argmax architecture. OUT/inherited.pt is that network
    with the supernet's weights, as a `kwspi train` checkpoint at epoch 0:
    `kwspi train OUT/arch.json --init-from OUT/inherited.pt` retrains from the
    inherited weights (the paper's recipe).

    \b
    Example:
      kwspi search --data data/synth --out runs/search --beta 4 --width-mult 0.5 --warmup-epochs 5 \\
          --search-epochs 15
      kwspi search --data speech_commands_v0.01 --out runs/nas-b8 --n-mfcc 20 --beta 8
      kwspi search --data data/synth --out runs/warm --search-epochs 0      # one warm-up ...
      kwspi search --data data/synth --out runs/b16 --beta 16 --warmup-from runs/warm/supernet.pt  # ... many betas
      kwspi train runs/nas-b8/arch.json --data speech_commands_v0.01 --out runs/nas-b8-retrain --n-mfcc 20 \\
          --init-from runs/nas-b8/inherited.pt
    """
    cfg = config_from_options(SearchRun, options)
    run = _torch_side("run")
    history = run.search_run(cfg, progress_bar)
    if history:
        last = history[-1]
        click.echo(f"{cfg.out / 'arch.json'}: {' '.join(last['arch'])} ({last['argmax_macs'] / 1e6:.2f} M MACs, "
                   f"E[MACs] {last['expected_macs'] / 1e6:.2f} M); inherited weights in {cfg.out / 'inherited.pt'}")


@click.command("train", short_help="Train a network: an architecture JSON file or a baseline name.")
@config_options(TrainRun)
def train(**options):
    """Train a network: an architecture JSON file (e.g. from `kwspi search`) or a
    baseline name (dscnn-s, dscnn-m, dscnn-l).

    The paper's recipe: SGD with Nesterov momentum, cosine learning rate, label
    smoothing 0.1, 8-bit weights through the straight-through estimator. A checkpoint
    is written after every epoch; --resume continues an interrupted run exactly.

    \b
    Example:
      kwspi train dscnn-s --data data/synth --out runs/dscnn-s --epochs 30
      kwspi train arch.json --data speech_commands_v0.01 --out runs/nas --n-mfcc 20
    """
    cfg = config_from_options(TrainRun, options)
    _, metrics = _torch_side("run").train_run(cfg, progress_bar)
    click.echo(f"{cfg.out}: " + ", ".join(f"{k} accuracy {v['accuracy']:.4f} (n={v['n']})"
                                          for k, v in metrics.items()))


@click.command("export", short_help="Export a training checkpoint to a self-describing int8 ONNX model.")
@config_options(ExportRun)
def export(**options):
    """Export a training checkpoint to a self-describing int8 ONNX model.

    Static int8 quantization (QDQ, per-channel weights) calibrated on training
    windows, then the model is measured on the validation and testing splits (and on
    any --eval-data folders) and the figures are stored in its metadata.

    \b
    Example:
      kwspi export runs/dscnn-s/checkpoint.pt --out model.onnx
      kwspi export runs/nas/checkpoint.pt --out nas.onnx --eval-data data/heldout --float-out nas-float.onnx
    """
    cfg = config_from_options(ExportRun, options)
    sizes, metrics = _torch_side("run").export_run(cfg, progress_bar)
    click.echo(f"{cfg.out}: {sizes['bytes']:,} bytes (float {sizes['float_bytes']:,}), "
               + ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v))


@click.command("sweep", short_help="Search over beta, retrain, export and compare with DS-CNN (the paper's sweep).")
@config_options(SweepConfig)
def sweep(**options):
    """Run the paper's sweep: search an architecture for every beta, retrain
    each from its inherited weights, export it int8, train and export the
    DS-CNN baselines with the same budget, then report accuracy against MACs.

    Each step is a kwspi command (search, train, export) in its own process,
    logged to RUNS/logs/, run here (--executor local), on Ray (--executor ray)
    or as SLURM jobs (--executor slurm). One warm-up per width and number of
    cepstra serves every beta. Rerunning the same command skips what is done
    (RUNS/steps/ records each finished step's config), resumes what was
    interrupted and reruns what ran with other settings. Writes
    RESULTS/sweep.md (table and the Pareto comparison), RESULTS/sweep.png,
    RESULTS/sweep.json (one row per model) and
    RESULTS/models/nas-w<w>-c<n>-b<beta>.onnx and dscnn-{s,m,l}.onnx.

    \b
    Example:
      kwspi sweep --data data/sweep --eval-data data/heldout-families --betas 0,4,16 -j 2
      kwspi sweep --data speech_commands_v0.01 --betas 0,1,2,4,8,16 --width-mults 0.75,1,1.25 \\
          --target-macs 20e6 --warmup-epochs 40 --search-epochs 120 --retrain-epochs 120
      kwspi sweep --data /shared/gsc --runs /shared/runs --results /shared/results \\
          --executor slurm --partition gpu --gpus-per-step 1 --cpus-per-step 4 --dry-run
    """
    cfg = config_from_options(SweepConfig, options)
    sweeping, executors = _torch_side("sweep"), _torch_side("executors")
    steps = sweeping.plan(cfg)
    records, logs = cfg.runs / "steps", cfg.runs / "logs"
    gpus = 0
    if cfg.executor == "local" and (cfg.dry_run or not cfg.report_only):
        import torch  # only the local executor places steps on this machine's GPUs; Ray and SLURM place them

        gpus = torch.cuda.device_count()
    if cfg.dry_run:
        base = executors.planned_resources(cfg, gpus)
        for line in sweeping.describe(steps, records, lambda step: executors.needs(step, base)):
            click.echo(line)
        click.echo(f"{len(steps)} steps on the {cfg.executor} executor; nothing run (--dry-run)")
        return
    if not cfg.report_only:
        executor = executors.make_executor(cfg, gpus)
        try:
            failed = sweeping.run_steps(steps, logs, executor, records, echo=click.echo)
        finally:
            executor.close()
        if failed:
            raise KwspiError(f"{len(failed)} step(s) failed or were not run: {', '.join(failed)}; logs in {logs}")
    exported = [s.done for s in steps if s.name.endswith("/export") and s.done.exists()]
    page = _torch_side("sweep_report").report(cfg, exported)
    click.echo(f"{page}: {len(exported)} models")
