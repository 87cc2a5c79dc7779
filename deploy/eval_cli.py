"""``kwspi eval-stream``: recall, false alarms per hour and latency of a model on a long WAV.

A thin command over :mod:`kwspi.deploy.evaluation.stream`; torch-free, so it runs on a Pi.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from kwspi.modelinfo import resolve_model
from kwspi.options import parse_thresholds
from kwspi.deploy.evaluation.truth import read_truth

from kwspi.deploy.evaluation.stream import SWEEP_THRESHOLDS, TARGET_FA_PER_HOUR, evaluate_stream
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.sources import WavSource

#: How many (heard, said) pairs of false alarms the text report lists.
TOP_SOURCES = 12


@contextlib.contextmanager
def _progress(source: WavSource, shown: bool):
    """A callable taking seconds of audio done, drawing a bar on stderr when ``shown``."""
    if not shown:
        yield None
        return
    with click.progressbar(length=int(source.frames / source.rate * 1000), label="listening",
                           file=sys.stderr, show_eta=True) as bar:
        yield lambda seconds: bar.update(int(round(seconds * 1000)))


def _fmt(x, spec: str = ".3f", none: str = "-") -> str:
    return none if x is None else format(x, spec)


def text_report(r: dict) -> list[str]:
    """The report as lines for a terminal."""
    lines = [
        f"{r['input']}: {r['hours'] * 3600:.1f} s ({r['hours']:.3f} h), model {r['model']}, hop {r['hop_ms']} ms",
        "thresholds  " + ", ".join(f"{k}={v:g}" for k, v in r["thresholds"].items()),
        f"recall      {_fmt(r['recall'])} ({r['hits']}/{r['keywords_spoken']} keywords)",
        f"false alarms {r['false_alarms']} ({_fmt(r['fa_per_hour'], '.1f')} per hour)",
        f"latency     median {_fmt(r['latency_median_s'], '.2f')} s, p95 {_fmt(r['latency_p95_s'], '.2f')} s "
        "(detection time minus the end of the word)",
        "",
        f"  {'keyword':<10} {'spoken':>6} {'hits':>5} {'recall':>7} {'false alarms':>13}",
    ]
    for kw, k in r["per_keyword"].items():
        lines.append(f"  {kw:<10} {k['spoken']:>6} {k['hits']:>5} {_fmt(k['recall']):>7} {k['false_alarms']:>13}")
    if r["false_alarm_sources"]:
        lines += ["", "false alarms by the word that filled the window (heard <- said: fired / times said):"]
        lines += [f"  {s['heard']:<8} <- {s['said']:<14} {s['count']:>4}" + (f" / {s['spoken']}" if s["spoken"] else "")
                  for s in r["false_alarm_sources"][:TOP_SOURCES]]
    if "sweep" in r:
        lines += ["", f"  {'threshold':>9} {'recall':>7} {'false alarms':>13} {'per hour':>9}"]
        lines += [f"  {row['threshold']:>9g} {_fmt(row['recall']):>7} {row['false_alarms']:>13} "
                  f"{row['fa_per_hour']:>9.1f}" for row in r["sweep"]["rows"]]
        best, target = r["sweep"]["best"], r["sweep"]["target_fa_per_hour"]
        lines.append(f"lowest threshold with at most {target:g} false alarms per hour: " + (
            f"{best['threshold']:g} (recall {_fmt(best['recall'])})" if best else "none of those tried"))
    return lines


@click.command("eval-stream", short_help="Recall, false alarms per hour and latency of a model on a long WAV.")
@click.option("--model", "-m", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="kwspi ONNX model. [default: the bundled model]")
@click.option("--input", "-i", "input_path", required=True, type=click.Path(path_type=Path),
              help="The stream: a PCM WAV file (any rate, mono or stereo), as `kwspi listen --input` takes.")
@click.option("--truth", "truth_csv", required=True, type=click.Path(path_type=Path),
              help="What was said: CSV label,start_s,end_s, one row per word (as `kwspi synth-stream` writes).")
@click.option("--threshold", "-t", "thresholds", multiple=True, metavar="T|LABEL=T",
              help="Detection threshold for all keywords, or for one (repeatable; default: the model's own).")
@click.option("--hop-ms", type=click.IntRange(min=1), default=100, show_default=True,
              help="Milliseconds between two model windows, as for `kwspi listen`.")
@click.option("--sweep-thresholds", "do_sweep", is_flag=True,
              help=f"Also score every keyword at thresholds {', '.join(f'{t:g}' for t in SWEEP_THRESHOLDS)} "
                   "(one pass of the network, decisions replayed per threshold).")
@click.option("--target-fa-per-hour", type=click.FloatRange(min=0), default=TARGET_FA_PER_HOUR, show_default=True,
              help="The sweep reports the lowest threshold with at most this many false alarms per hour.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw the sweep to this PNG (implies --sweep-thresholds; needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_stream(model, input_path, truth_csv, thresholds, hop_ms, do_sweep, target_fa_per_hour, plot_path, as_json):
    """Run the listening engine over a long WAV and score it against what was said.

    The same front end, smoothing, thresholds and refractory as `kwspi listen`
    (the same code), then: recall per keyword; false alarms (a detection of a
    word not said there, or a second one of a word) and false alarms per hour;
    latency, the detection time minus the end of the word, median and 95th
    percentile. A detection counts for a word from 0.1 s before it starts to
    1.1 s after it ends. JSON keys: recall, false_alarms, fa_per_hour, hours,
    latency_median_s, latency_p95_s, per_keyword, false_alarm_sources, sweep.

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
    with _progress(source, shown=not as_json and sys.stderr.isatty()) as advance:
        result = evaluate_stream(loaded, source, truth, parse_thresholds(thresholds), hop_ms, grid,
                                 target_fa_per_hour, progress=advance)
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
