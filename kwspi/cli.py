"""The ``kwspi`` command line: one click group, its commands loaded only when called.

Commands that need torch live in :mod:`kwspi.train` and are imported lazily, so
``kwspi --help`` and the listening commands never load torch. Errors a user caused
(:class:`~kwspi.errors.KwspiError`) print one line and exit with status 2.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path

import click

from kwspi import __version__
from kwspi.errors import KwspiError, MissingDependency
from kwspi.options import json_option, model_option, progress_bar, seed_option
from kwspi.progress import silent

#: command name -> ("module:attribute" of its click command, its one-line help). The help
#: is repeated here so that `kwspi --help` imports none of them (torch, sounddevice);
#: a test checks it matches each command's own.
LAZY_COMMANDS = {
    "synth": ("kwspi.train.speech.cli:synth", "Synthesize spoken words with voice engines, in Google Speech Commands' layout."),
    "train": ("kwspi.train.cli:train", "Train a network: an architecture JSON file or a baseline name."),
    "export": ("kwspi.train.cli:export", "Export a training checkpoint to a self-describing int8 ONNX model."),
    "search": ("kwspi.train.cli:search", "Search an architecture (ProxylessNAS) under a MACs target."),
    "sweep": ("kwspi.train.cli:sweep",
              "Search over beta, retrain, export and compare with DS-CNN (the paper's sweep)."),
    "synth-stream": ("kwspi.train.speech.cli:synth_stream",
                     "Synthesize a long spoken audio stream over noise, with a truth CSV."),
    "combine": ("kwspi.train.speech.cli:combine", "Join GSC-layout folders into one, with links: say one folder per voice engine."),
    "synth-context": ("kwspi.train.speech.cli:synth_context",
                      "Synthesize 1 s windows of keywords said in phrases, and of speech without one."),
    "demo": ("kwspi.train.cli:demo", "Spot keywords in a synthesized stream and compare with what was said."),
    "listen": ("kwspi.deploy.cli:listen", "Listen for keywords in a microphone or a WAV file."),
    "devices": ("kwspi.deploy.cli:devices", "List the audio input devices kwspi can listen to."),
    "eval-stream": ("kwspi.deploy.evaluation.cli:eval_stream",
                    "Recall, false alarms per hour and latency of a model on a long WAV."),
    "calibrate": ("kwspi.deploy.evaluation.cli:calibrate",
                  "Per-keyword thresholds from recordings without keywords, into a new model file."),
    "enroll": ("kwspi.deploy.cli:enroll", "Teach a model your voice: re-fit it on a few takes of each keyword."),
    "mine": ("kwspi.deploy.evaluation.cli:mine",
             "Cut the windows a model fires on in keyword-free streams into _unknown_ training clips."),
}

#: Signals ``kwspi listen`` received before its own handlers were in place; it acts on them
#: once they are: SIGHUP reloads the model, SIGINT stops.
early_signals = {signal.SIGHUP: threading.Event(), signal.SIGINT: threading.Event()}


@contextlib.contextmanager
def _remember_early_signals(args):
    # Without this, a SIGHUP while `listen` imports onnxruntime and loads its model kills
    # it (a death systemd counts as clean, so it stays dead) and a Ctrl-C prints a traceback.
    # Only click and kwspi's light modules load before this point (the front end and scipy
    # load lazily, tested); for that moment the unit's Type=notify holds systemd's reloads
    # until the service listens, and RestartForceExitStatus=SIGHUP restarts a process a
    # SIGHUP killed anyway. Only for `listen`: the other commands
    # keep Python's Ctrl-C (KeyboardInterrupt), which training's clean-up relies on. The
    # group's options are all flags, so its first other word is the command.
    command = next((a for a in args if not a.startswith("-")), None)
    if command != "listen" or threading.current_thread() is not threading.main_thread():
        yield
        return
    for event in early_signals.values():
        event.clear()
    previous = {sig: signal.signal(sig, lambda signum, _: early_signals[signum].set()) for sig in early_signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class LazyGroup(click.Group):
    """A click group that imports each command's module only when that command runs."""

    def main(self, args=None, **kwargs):
        args = sys.argv[1:] if args is None else list(args)
        with _remember_early_signals(args):
            return super().main(args, **kwargs)

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name][0].split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as e:
                if e.name and e.name.split(".")[0] in {"torch", "onnx", "onnxscript"}:
                    raise MissingDependency(f"`kwspi {name}` needs {e.name}: pip install 'kwspi[train]'") from None
                raise
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = [(name, LAZY_COMMANDS[name][1] if name in LAZY_COMMANDS else self.commands[name].get_short_help_str())
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KwspiError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kwspi")
@click.option("-v", "--verbose", count=True, help="More log output: -v for debug.")
def main(verbose):
    """Streaming keyword spotting for the Raspberry Pi.

    Synthesize or point at a Google Speech Commands folder, train and quantize a
    model, then listen to a microphone or a WAV file and call your code when a
    keyword is heard.

    \b
    Example:
      kwspi synth data/synth --speakers 40
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@main.command(short_help="Show what a model file says about itself.")
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@json_option()
def info(model, as_json):
    """Show what a model file says about itself (the bundled model without MODEL).

    Labels, front end, size and cost, the data it was trained on and its measured
    accuracy, and the recommended detection thresholds.

    \b
    Example:
      kwspi info
      kwspi info runs/dscnn-s/model.onnx --json
    """
    from kwspi.modelinfo import read_info, resolve_model

    path = resolve_model(model)
    meta = read_info(path)
    d = {"path": str(path), "file_bytes": path.stat().st_size, **meta.as_dict()}
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    f = meta.features
    click.echo(f"model       {path} ({d['file_bytes']:,} bytes)")
    click.echo(f"labels      {', '.join(meta.labels)}")
    click.echo(f"front end   {f.n_mfcc} MFCC x {f.n_frames} frames ({f.win_ms} ms window, {f.hop_ms} ms hop, "
               f"{f.sample_rate} Hz{'' if f.cmvn == 'none' else ', cmvn ' + f.cmvn}), hash {f.hash()}")
    click.echo(f"network     {json.dumps(meta.arch) if meta.arch else '?'}")
    click.echo(f"cost        {meta.macs / 1e6:.2f} M MACs, {meta.params:,} parameters, "
               f"{meta.weight_bytes:,} weight bytes at {meta.weight_bits} bit")
    click.echo(f"trained on  {meta.dataset or '?'}")
    for key, value in meta.metrics.items():
        click.echo(f"metric      {key}: {json.dumps(value)}")
    click.echo(f"thresholds  {json.dumps(meta.thresholds)} (patience {meta.patience})")
    if meta.embedding:
        click.echo(f"embedding   output {meta.embedding['output']!r}, {meta.embedding['size']} values")
    if meta.enrollment:
        e = meta.enrollment
        click.echo(f"enrolled    from {e['base']} (sha256 {e['base_sha256']}): "
                   + ", ".join(f"{k} {n} takes" for k, n in e["takes"].items()))
        for key in ("held_out_takes", "bank"):
            if e.get(key):
                click.echo(f"enrollment  {key}: {json.dumps(e[key])}")
    click.echo(f"created by  {meta.created_by}")


@main.command("eval", short_help="Accuracy of a model on a GSC-layout folder.")
@model_option(help="An int8/float ONNX model, or a training checkpoint (.pt, needs torch). [default: bundled]")
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A folder in Google Speech Commands layout.")
@click.option("--split", default="testing", show_default=True,
              type=click.Choice(["training", "validation", "testing", "all"]),
              help="Which clips: by the folder's list files, else GSC's hash rule; 'all' takes every clip.")
@seed_option(0, "Seed of the _unknown_ sample.")
@json_option()
def evaluate(model, data, split, seed, as_json):
    """Accuracy of a model on a GSC-layout folder, per class and as a confusion matrix.

    The split gets the paper's balance: every keyword clip, a tenth as many
    _unknown_ clips (other words, seeded) and a tenth as many _silence_ examples.

    \b
    Example:
      kwspi eval --data data/synth --split testing
      kwspi eval --model runs/dscnn-s/model.onnx --data speech_commands_v0.01 --json
    """
    from kwspi.modelinfo import resolve_model

    path = resolve_model(model)
    if path.suffix == ".pt":
        try:
            from kwspi.train.run import evaluate_checkpoint
        except ModuleNotFoundError as e:
            raise MissingDependency(f"evaluating a checkpoint needs {e.name}: pip install 'kwspi[train]'") from None
        report = evaluate_checkpoint(path, data, split, seed)
    else:
        from kwspi.evaluate import evaluate_onnx

        report = evaluate_onnx(path, data, split, seed, progress_bar if not as_json and sys.stderr.isatty() else silent)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{report['model']} on {report['data']} ({split}): accuracy {report['accuracy']:.4f} "
               f"over {report['n']} examples")
    for label, acc in report["per_class"].items():
        click.echo(f"  {label:<12} {'-' if acc is None else f'{acc:.4f}'}")
    for column in ("per_engine", "per_voice"):  # a synthetic set's catalogue says who spoke
        for name, figures in report.get(column, {}).items():
            click.echo(f"  {column[4:]:<6} {name:<28} {figures['accuracy']:.4f} (n={figures['n']})")
