"""``kwspi synth-stream`` and ``kwspi demo``: long synthetic streams, and the product shown on one.

Torch-free, like :mod:`kwspi.train.cli`: both commands work where only the runtime and
espeak-ng are installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kwspi.train import demo as _demo
from kwspi.train.speech import stream as _stream
from kwspi.train.speech import synth as _synth
from kwspi.train.cli import parse_names


def _voice_options(voices: str | None, exclude_voices: str | None) -> dict:
    if voices is not None and exclude_voices is not None:
        raise click.UsageError("give --voices or --exclude-voices, not both")
    return {"voices": parse_names(voices), "exclude_voices": parse_names(exclude_voices) or ()}


@click.command("synth-stream", short_help="Synthesize a long spoken audio stream over noise, with a truth CSV.")
@click.argument("out_wav", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--truth", "truth_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Truth CSV (label,start_s,end_s per spoken word). [default: OUT_WAV with .csv]")
@click.option("--seconds", type=click.FloatRange(min=5.0), default=60.0, show_default=True,
              help="Length of the stream.")
@click.option("--snr-db", type=float, default=20.0, show_default=True,
              help="Speech RMS (over its words) to noise RMS, in dB; 'inf' for no noise.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Same seed and options: identical files.")
@click.option("--voices", default=None, metavar="NAMES",
              help="Comma-separated espeak-ng voices to speak with. [default: every English voice]")
@click.option("--exclude-voices", default=None, metavar="NAMES",
              help="Comma-separated voices to leave out; 'mbrola' leaves out every mbrola voice.")
@click.option("--negative", is_flag=True,
              help="No keyword at all: sentences and confusable words only (for false-alarm rates).")
def synth_stream(out_wav, truth_csv, seconds, snr_db, seed, voices, exclude_voices, negative):
    """Synthesize a long audio stream of speech over noise, and its truth CSV.

    espeak-ng speaks isolated keywords, phrases with a keyword ("please turn the
    lights on now"), sentences without one, and confusable words ("yesterday",
    "nobody", "downtown"), with random gaps (at least 1.5 s between keywords) over
    changing background noise. Writes a 16 kHz mono 16-bit WAV and a CSV with one
    row per spoken word (label,start_s,end_s). An hour takes little memory: the
    stream is made and written a few seconds at a time.

    \b
    Example:
      kwspi synth-stream stream.wav --seconds 120 --exclude-voices en-029,en-gb-scotland
      kwspi synth-stream negative.wav --seconds 3600 --negative --snr-db 10
      kwspi eval-stream --input negative.wav --truth negative.csv --sweep-thresholds
    """
    config = _stream.StreamConfig(seconds=seconds, snr_db=snr_db, seed=seed, negative=negative,
                                  **_voice_options(voices, exclude_voices))
    truth_csv = truth_csv or out_wav.with_suffix(".csv")
    # Report bad options and paths before the progress bar starts drawing.
    config.check()
    _stream.check_paths(out_wav, truth_csv)
    _synth.resolve_voices(config.voices, config.exclude_voices)
    with click.progressbar(length=int(round(seconds * 1000)), label="synthesizing stream", file=sys.stderr,
                           show_eta=True) as bar:
        summary = _stream.write_stream(out_wav, truth_csv, config, progress=lambda s: bar.update(int(round(s * 1000))))
    click.echo(str(summary))


@click.command("demo", short_help="Spot keywords in a synthesized stream and compare with what was said.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Folder for the stream (stream.wav, stream.csv) and the detections.")
@click.option("--seconds", type=click.FloatRange(min=10.0, max=600.0), default=45.0, show_default=True,
              help="Length of the stream.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--snr-db", type=float, default=20.0, show_default=True, help="Speech to noise ratio in dB.")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="kwspi ONNX model. [default: the bundled model]")
@click.option("--voices", default=",".join(_demo.HELD_OUT_VOICES), show_default=True, metavar="NAMES",
              help="Comma-separated espeak-ng voices (default: families the bundled model never heard).")
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
    config = _demo.DemoConfig(out_dir=out_dir, seconds=seconds, seed=seed, snr_db=snr_db, model=model,
                              voices=parse_names(voices))
    _demo.run_demo(config, echo=click.echo)
