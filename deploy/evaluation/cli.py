"""The commands over recordings, thin over :mod:`kwspi.deploy.evaluation`: ``eval-stream``
(recall, false alarms and latency on a long WAV with its truth), ``calibrate`` (per-keyword
thresholds from keyword-free recordings) and ``mine`` (the windows a model fires on, as
training clips). Torch-free, so they run on a Pi over recordings of its own room.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections import Counter
from pathlib import Path

import click

from kwspi.modelinfo import resolve_model
from kwspi.options import (config_from_options, config_options, json_option, model_option, parse_thresholds,
                           patience_option, progress_bar, stride_option, threshold_option)

from kwspi.deploy.model import LoadedModel
from kwspi.deploy.evaluation.mining import MiningConfig, NegativeStream, mine as run_mining
from kwspi.deploy.evaluation.report import text_report
from kwspi.deploy.evaluation.stream import SWEEP_THRESHOLDS, TARGET_FA_PER_HOUR, evaluate_stream
from kwspi.deploy.evaluation.truth import read_truth
from kwspi.deploy.sources import WavSource

log = logging.getLogger(__name__)


@click.command("eval-stream", short_help="Recall, false alarms per hour and latency of a model on a long WAV.")
@model_option
@click.option("--input", "-i", "input_path", required=True, type=click.Path(path_type=Path),
              help="The stream: a PCM WAV file (any rate, mono or stereo), as `kwspi listen --input` takes.")
@click.option("--truth", "truth_csv", required=True, type=click.Path(path_type=Path),
              help="What was said: CSV label,start_s,end_s, one row per word (as `kwspi synth-stream` writes).")
@threshold_option()
@patience_option()
@stride_option()
@click.option("--sweep-thresholds", "do_sweep", is_flag=True,
              help=f"Also score every keyword at thresholds {', '.join(f'{t:g}' for t in SWEEP_THRESHOLDS)} "
                   "(one pass of the network, decisions replayed per threshold).")
@click.option("--target-fa-per-hour", type=click.FloatRange(min=0), default=TARGET_FA_PER_HOUR, show_default=True,
              help="The sweep reports the lowest threshold with at most this many false alarms per hour.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw the sweep to this PNG (implies --sweep-thresholds; needs matplotlib).")
@json_option()
def eval_stream(model, input_path, truth_csv, thresholds, patience, stride_ms, do_sweep, target_fa_per_hour, plot_path,
                as_json):
    """Run the listening engine over a long WAV and score it against what was said.

    The same front end, smoothing, thresholds and refractory as `kwspi listen`
    (the same code), then: recall per keyword; false alarms (a detection of a
    word not said there, or a second one of a word) and false alarms per hour;
    latency, the detection time minus the end of the word, median and 95th
    percentile. A detection counts for a word from 0.1 s before it starts to
    1.1 s after it ends. JSON keys: recall, false_alarms, fa_per_hour, hours,
    latency_median_s, latency_p95_s, per_keyword, false_alarm_sources, sweep,
    and per_engine and per_voice when the truth CSV names who spoke.

    \b
    Example:
      kwspi synth-stream s.wav --seconds 600 --voices en-029,en-gb-scotland
      kwspi eval-stream --input s.wav --truth s.csv
      kwspi eval-stream --input s.wav --truth s.csv --sweep-thresholds --plot curve.png --json
    """
    # Every file is checked before the long pass: a bad truth CSV, model or WAV is one line.
    truth = read_truth(truth_csv)
    loaded = LoadedModel.load(resolve_model(model))
    source = WavSource(input_path)
    grid = SWEEP_THRESHOLDS if (do_sweep or plot_path) else None
    with _listening_bar(source.seconds, not as_json and sys.stderr.isatty()) as advance:
        result = evaluate_stream(loaded, source, truth, parse_thresholds(thresholds), stride_ms, grid,
                                 target_fa_per_hour, progress=advance, patience=patience)
    if plot_path is not None:
        from kwspi.deploy.evaluation.plot import plot_sweep

        plot_sweep(result["sweep"], plot_path, f"{Path(result['input']).name}, {Path(result['model']).name}")
    if as_json:
        click.echo(json.dumps(result))
        return
    for line in text_report(result):
        click.echo(line)
    if plot_path is not None:
        click.echo(f"curve drawn to {plot_path}")


@click.command(short_help="Per-keyword thresholds from recordings without keywords, into a new model file.")
@model_option
@click.option("--negatives", "-n", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A WAV of the room and talk with no keyword in it (repeatable); every detection there is a "
                   "false alarm.")
@click.option("--positives", "-p", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A WAV with keywords and its truth CSV beside it (same name, .csv), to report the recall the "
                   "thresholds keep (repeatable).")
@click.option("--target-fa-per-hour", type=click.FloatRange(min=0), default=TARGET_FA_PER_HOUR, show_default=True,
              help="False alarms per hour allowed over all keywords together.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The calibrated model (a new file; the model given is left as it is).")
@patience_option()
@stride_option()
@json_option()
def calibrate(model, negatives, positives, target_fa_per_hour, out, patience, stride_ms, as_json):
    """Choose each keyword's threshold on recordings of where the model will listen.

    Listens to the negatives once, then gives every keyword the lowest threshold
    at which its false alarms stay within its share of --target-fa-per-hour (the
    same decisions as `kwspi listen`), and writes the model with those thresholds
    and the figures in its metadata to --out (`kwspi info` shows them). The
    thresholds hold at the --patience they were chosen at, so it is stored with
    them and `kwspi listen` uses it. An hour or more of negatives gives a rate
    worth trusting.

    \b
    Example:
      kwspi synth-stream talk.wav --seconds 3600 --negative
      kwspi calibrate --negatives talk.wav --out calibrated.onnx
      kwspi listen --model calibrated.onnx
    """
    from kwspi.deploy.evaluation.calibrate import calibrate as choose, write_calibrated

    loaded = LoadedModel.load(resolve_model(model))
    labelled = [(p, read_truth(p.with_suffix(".csv"))) for p in positives]
    sources = [WavSource(p) for p in (*negatives, *positives)]  # every file checked before the long pass
    with _listening_bar(sum(src.seconds for src in sources), not as_json and sys.stderr.isatty()) as advance:
        result = choose(loaded, negatives, target_fa_per_hour, labelled, stride_ms, progress=advance,
                        patience=patience)
    write_calibrated(loaded, result, out, negatives, positives)
    if as_json:
        click.echo(json.dumps({"model": str(out), **result.as_metric(negatives, positives)}))
        return
    click.echo(f"{out}: " + ", ".join(f"{k}={v:g}" for k, v in result.thresholds.items())
               + f", patience {result.patience}")
    click.echo(f"false alarms {result.fa_per_hour:g} per hour over {result.negative_hours * 60:.1f} min of negatives "
               f"(target {result.target_fa_per_hour:g})")
    if result.recall is not None:
        click.echo(f"recall {result.recall:.3f} over {result.positive_keywords} keywords said")
    if result.unmet:
        click.echo(f"no threshold up to {max(result.thresholds.values()):g} holds the target for "
                   f"{', '.join(result.unmet)}: record more varied negatives or retrain", err=True)


@click.command(short_help="Cut the windows a model fires on in keyword-free streams into _unknown_ training clips.")
@model_option
@click.option("--input", "-i", "inputs", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A WAV with no keyword in it (repeatable), e.g. from `kwspi synth-stream --negative`.")
@click.option("--truth", "truths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="What was said in each --input, in order (CSV label,start_s,end_s[,engine,voice]); a window "
                   "touching a keyword it names is never taken. [default: each WAV's .csv, when there is one]")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="GSC-layout folder for the clips (mined/*.wav, speakers.csv, mined.csv); an earlier run's "
                   "clips in it are replaced.")
@threshold_option()
@patience_option()
@stride_option()
@config_options(MiningConfig)
@json_option()
def mine(model, inputs, truths, out, thresholds, patience, stride_ms, as_json, **settings):
    """Mine hard negatives: the windows of keyword-free speech that the model fires on.

    Listens to each --input once, as `kwspi listen` does (same thresholds,
    patience, smoothing), takes the windows that fire (and, with --min-score,
    those that nearly do) and touch no keyword of the truth, keeps one of any
    run of neighbouring windows, draws --max of them with --seed, and writes
    each second of audio as an _unknown_ clip. Join the folder to a training
    set (`kwspi combine`) and retrain. Mine streams of the
    voices you train on, never those you measure on.

    \b
    Example:
      kwspi synth-stream talk.wav --seconds 1800 --negative --engines espeak,mbrola
      kwspi mine --input talk.wav --out mined --max 500 --seed 0
    """
    config = config_from_options(MiningConfig, settings)
    if truths and len(truths) != len(inputs):
        raise click.UsageError(f"give one --truth per --input ({len(inputs)}), or none")
    truths = truths or [p.with_suffix(".csv") if p.with_suffix(".csv").is_file() else None for p in inputs]
    streams = [NegativeStream(p, tuple(read_truth(t)) if t else ()) for p, t in zip(inputs, truths)]
    for p, t in zip(inputs, truths):
        if t is None:
            log.warning("%s: no truth CSV, so every window is taken to be keyword-free", p)
    loaded = LoadedModel.load(resolve_model(model))
    sources = [WavSource(p) for p in inputs]  # every file checked before the long pass
    with _listening_bar(sum(src.seconds for src in sources), not as_json and sys.stderr.isatty()) as advance:
        clips, windows = run_mining(loaded, streams, out, config, parse_thresholds(thresholds), stride_ms, patience,
                                    progress=advance)
    if as_json:
        click.echo(json.dumps({"out": str(out), "clips": len(clips), "windows": windows,
                               "heard": dict(Counter(c.heard for c in clips).most_common())}))
        return
    click.echo(f"{out}: {len(clips)} clips of {windows} windows that fired"
               + ("" if config.min_score is None else f" or reached {config.min_score:g}"))
    for label, n in Counter(c.heard for c in clips).most_common():
        click.echo(f"  {label:<10} {n:>5}")


@contextlib.contextmanager
def _listening_bar(seconds: float, shown: bool):
    """A callback taking seconds of audio done, drawing a bar on stderr when ``shown``."""
    if not shown:
        yield None
        return
    with progress_bar("listening", int(seconds * 1000)) as advance:
        yield lambda done: advance(int(round(done * 1000)))
