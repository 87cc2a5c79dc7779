"""Click commands of the training side, registered lazily by :mod:`kwspi.cli`.

Top-level imports stay torch-free: ``kwspi synth`` must work where torch is not installed,
and a command that needs torch imports it inside its function.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kwspi import gsc
from kwspi.train.speech import synth as _synth


def parse_names(value: str | None) -> tuple[str, ...] | None:
    """``"a,b, c"`` -> ``("a", "b", "c")``; ``None`` stays ``None`` (meaning: all)."""
    if value is None:
        return None
    return tuple(x.strip() for x in value.split(",") if x.strip())


@click.command("synth", short_help="Synthesize spoken words with espeak-ng, in Google Speech Commands' layout.")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--speakers", "n_speakers", type=click.IntRange(min=1), default=60, show_default=True,
              help="Number of speakers (voice+variant at one speed and pitch).")
@click.option("--words", default=None, metavar="WORDS|FILE",
              help="Comma-separated words, or a file with one per line. [default: the 35 GSC v0.02 words]")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Clips per speaker and word (<speaker>_nohash_<n>.wav), each with its own jitter.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Same seed and options: identical files.")
@click.option("--voices", default=None, metavar="NAMES",
              help="Comma-separated espeak-ng voices to use (e.g. en-us,en-gb). [default: every English voice]")
@click.option("--exclude-voices", default=None, metavar="NAMES",
              help="Comma-separated voices to leave out; 'mbrola' leaves out every mbrola voice.")
@click.option("--variants", default=None, metavar="NAMES",
              help="Comma-separated variants (f1,m3,...; 'none' = no variant). [default: all]")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel espeak-ng processes. [default: number of CPUs]")
@click.option("--noise-seconds", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
              help="Length of each generated background-noise file.")
def synth(out_dir, n_speakers, words, repeats, seed, voices, exclude_voices, variants, jobs, noise_seconds):
    """Synthesize spoken words with espeak-ng, in Google Speech Commands' layout.

    Writes OUT_DIR/WORD/<speaker>_nohash_<n>.wav (1 s, 16 kHz, 16-bit mono),
    OUT_DIR/_background_noise_/ (generated noise), validation_list.txt and
    testing_list.txt (GSC's hash rule on the speaker, so test speakers are never
    heard in training) and speakers.csv (voice, variant, family, speed, pitch,
    split). Clips already there are kept, so an interrupted run resumes.

    \b
    Example:
      kwspi synth data/synth --speakers 60 --seed 0
      kwspi synth data/lights --words "lights on,lights off" --repeats 3
    """
    word_list = _synth.read_words(words) if words is not None else gsc.WORDS_V2
    config = _synth.SynthConfig(
        words=word_list,
        speakers=n_speakers,
        repeats=repeats,
        seed=seed,
        voices=parse_names(voices),
        exclude_voices=parse_names(exclude_voices) or (),
        variants=parse_names(variants),
        noise_seconds=noise_seconds,
    )
    # Check espeak-ng, names and words before the progress bar starts drawing.
    _synth.espeak_version()
    _synth.make_speakers(n_speakers, seed, config.voices, config.variants, config.exclude_voices)
    total = n_speakers * len(_synth.check_words(word_list)) * repeats
    with click.progressbar(length=total, label="synthesizing", file=sys.stderr) as bar:
        summary = _synth.synthesize_dataset(out_dir, config, jobs=jobs, progress=bar.update)
    click.echo(f"{out_dir}: {summary}")
