"""The commands that make data: words (``synth``), keywords in context (``synth-context``), long
streams with a truth file (``synth-stream``), and folders joined (``combine``), registered lazily
by :mod:`kwspi.cli`. Torch-free, like the rest of :mod:`kwspi.train.speech`: they work where
only the runtime and the voices are installed.
"""

from __future__ import annotations

from pathlib import Path

import click

from kwspi import gsc
from kwspi.options import progress_bar, seed_option
from kwspi.settings import parse_names
from kwspi.train.speech.context import NEGATIVE_FOLDER, ContextConfig
from kwspi.train.speech.stream import SPEECH_MODES, TEXTS, StreamConfig
from kwspi.train.speech.synth import SynthConfig

_SYNTH, _STREAM = SynthConfig(), StreamConfig()
_CONTEXT, _CONTEXT_FOLDER = ContextConfig(), NEGATIVE_FOLDER


def _voices(voices: str | None, exclude_voices: str | None) -> dict:
    if voices is not None and exclude_voices is not None:
        raise click.UsageError("give --voices or --exclude-voices, not both")
    return {"voices": parse_names(voices), "exclude_voices": parse_names(exclude_voices) or ()}


def _voice_options(command):
    command = click.option("--exclude-voices", default=None, metavar="NAMES",
                           help="Comma-separated voices (of any engine) or whole engines to leave out.")(command)
    command = click.option("--voices", default=None, metavar="NAMES",
                           help="Comma-separated voices to use, of any engine given (e.g. en-us,en-gb,mb-us1). "
                                "[default: every English voice of those engines]")(command)
    return click.option("--engines", "engine_names", default=",".join(_SYNTH.engines), show_default=True,
                        metavar="NAMES",
                        help="Comma-separated voice engines to deal the speakers over: espeak, mbrola, rhvoice, "
                             "piper, kokoro, or all (`make voices` installs them; one not installed is "
                             "skipped).")(command)


def _transform_options(command):
    command = click.option("--transformed-share", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
                           default=_SYNTH.transformed_share, show_default=True,
                           help="With --transforms: the share of --speakers that are transformed voices.")(command)
    return click.option("--transforms", "transform_names", default=None, metavar="NAMES",
                        help="Make new speakers from the recorded voices (mbrola, rhvoice, piper, kokoro) with "
                             "these transforms, each drawn per speaker: vtl (formants x0.85-1.2), pitch (-5..+5 "
                             "semitones), room (a simulated room), mic (a microphone's response), or all. `make "
                             "voices` installs what they need. [default: none]")(command)


# --- data ------------------------------------------------------------------------------------


@click.command("synth", short_help="Synthesize spoken words with voice engines, in Google Speech Commands' layout.")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--speakers", "n_speakers", type=click.IntRange(min=1), default=_SYNTH.speakers, show_default=True,
              help="Number of speakers (an engine's voice, espeak-ng's with a variant, at one speed and pitch).")
@click.option("--words", default=None, metavar="WORDS|FILE",
              help="Comma-separated words, or a file with one per line. [default: the 35 GSC v0.02 words]")
@click.option("--repeats", type=click.IntRange(min=1), default=_SYNTH.repeats, show_default=True,
              help="Clips per speaker and word (<speaker>_nohash_<n>.wav), each with its own jitter.")
@seed_option(_SYNTH.seed, "Same seed and options: identical files.")
@_voice_options
@click.option("--variants", default=None, metavar="NAMES",
              help="Comma-separated espeak-ng variants (f1,m3,...; 'none' = no variant). [default: all]")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel speaking threads. [default: number of CPUs]")
@click.option("--noise-seconds", type=click.FloatRange(min=1.0), default=_SYNTH.noise_seconds, show_default=True,
              help="Length of each generated background-noise file.")
@_transform_options
def synth(out_dir, n_speakers, words, repeats, seed, engine_names, voices, exclude_voices, variants, jobs,
          noise_seconds, transform_names, transformed_share):
    """Synthesize spoken words in Google Speech Commands' layout.

    Speakers are dealt in turn over the voice engines given (espeak-ng alone by
    default); an engine that is not installed is skipped with one line. Writes
    OUT_DIR/WORD/<speaker>_nohash_<n>.wav (1 s, 16 kHz, 16-bit mono),
    OUT_DIR/_background_noise_/ (generated noise), validation_list.txt and
    testing_list.txt (GSC's hash rule on the speaker, so test speakers are never
    heard in training) and speakers.csv (engine, voice, variant, transform,
    family, speed, pitch, split). Words an engine is known to say wrongly are left
    out. Clips already there are kept, so an interrupted run resumes. With
    --transforms, a share of the speakers are new voices made from the recorded
    ones (vocal-tract length, pitch, room, microphone), each its own speaker with
    its transform in speakers.csv.

    \b
    Example:
      kwspi synth data/synth --speakers 60 --seed 0
      kwspi synth data/lights --words "lights on,lights off" --repeats 3
      kwspi synth data/many --speakers 200 --engines espeak,mbrola,rhvoice,piper,kokoro
      kwspi synth data/more --speakers 200 --engines all --transforms vtl,pitch,room,mic
    """
    from kwspi.train.speech import engines as _engines
    from kwspi.train.speech import synth as _synth

    config = SynthConfig(words=_synth.read_words(words) if words is not None else gsc.WORDS_V2,
                         speakers=n_speakers, repeats=repeats, seed=seed,
                         engines=_engines.parse_engines(parse_names(engine_names)), voices=parse_names(voices),
                         exclude_voices=parse_names(exclude_voices) or (), variants=parse_names(variants),
                         noise_seconds=noise_seconds, transforms=parse_names(transform_names) or (),
                         transformed_share=transformed_share)
    # Check engines, names and words before the progress bar starts drawing.
    _synth.make_speakers(config)
    total = n_speakers * len(_synth.check_words(config.words)) * repeats
    with progress_bar("synthesizing", total) as advance:
        summary = _synth.synthesize_dataset(out_dir, config, jobs=jobs, progress=advance)
    click.echo(f"{out_dir}: {summary}")


@click.command("combine", short_help="Join GSC-layout folders into one, with links: say one folder per voice engine.")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
def combine(out_dir, sources):
    """Join GSC-layout folders into OUT_DIR without copying a clip.

    OUT_DIR/WORD/*.wav become links to the SOURCES' clips; their testing and
    validation lists and their speakers.csv are merged, and the first source's
    _background_noise_ is used. A rerun with other SOURCES removes the links that
    no longer belong and leaves the rest untouched, so the feature cache of
    OUT_DIR stays valid. This is how a model is trained without one voice engine
    (the leave-one-engine-out yardstick): synthesize one folder per engine,
    combine all but one.

    \b
    Example:
      kwspi synth data/e/espeak --engines espeak --speakers 100
      kwspi synth data/e/kokoro --engines kokoro --speakers 24
      kwspi combine data/mix data/e/espeak data/e/kokoro
      kwspi train dscnn-s --data data/mix --out runs/mix
    """
    if out_dir.resolve() in {s.resolve() for s in sources}:
        raise click.BadParameter("OUT_DIR cannot be one of the SOURCES", param_hint="OUT_DIR")
    gsc.combine(list(sources), out_dir)
    clips = sum(len(c) for c in gsc.scan(out_dir).values())
    click.echo(f"{out_dir}: {clips} clips from {len(sources)} folders")


@click.command("synth-context", short_help="Synthesize 1 s windows of keywords said in phrases, and of speech "
                                           "without one.")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--speakers", "n_speakers", type=click.IntRange(min=1), default=_SYNTH.speakers, show_default=True,
              help="Number of speakers (an engine's voice, espeak-ng's with a variant, at one speed and pitch).")
@click.option("--keywords", default=",".join(gsc.KEYWORDS), show_default=True, metavar="WORDS",
              help="Comma-separated single-word keywords, one folder each.")
@click.option("--repeats", type=click.IntRange(min=1), default=_SYNTH.repeats, show_default=True,
              help="Windows per speaker and keyword (<speaker>_nohash_c<n>.wav), each its own phrase.")
@click.option("--negatives", type=click.IntRange(min=0), default=_CONTEXT.negatives, show_default=True,
              help=f"Windows of keyword-free sentences per speaker, in {_CONTEXT_FOLDER}/ (read as _unknown_).")
@seed_option(_SYNTH.seed, "Same seed and options: identical files.")
@_voice_options
@click.option("--variants", default=None, metavar="NAMES",
              help="Comma-separated espeak-ng variants (f1,m3,...; 'none' = no variant). [default: all]")
@_transform_options
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel speaking threads. [default: number of CPUs]")
@click.option("--noise-seconds", type=click.FloatRange(min=1.0), default=_SYNTH.noise_seconds, show_default=True,
              help="Length of each generated background-noise file.")
def synth_context(out_dir, n_speakers, keywords, repeats, negatives, seed, engine_names, voices, exclude_voices,
                  variants, transform_names, transformed_share, jobs, noise_seconds):
    """Synthesize keywords in context: 1 s windows cut from phrases said in one go.

    Each keyword's folder gets windows of a phrase with words before and after
    the keyword ("I think stop for me"), the whole keyword inside the window at
    a random place and its neighbours cut at the edges; no_keyword/ gets
    windows cut from sentences without a keyword (any folder that is not a
    keyword is _unknown_ to training). Word times come from the engine
    (espeak-ng and MBROLA report them; others are timed from the phrase said
    in parts). Clips are <speaker>_nohash_c<n>.wav, so they can sit beside
    `kwspi synth`'s clips of the same speakers; validation_list.txt,
    testing_list.txt and speakers.csv are written as `kwspi synth` writes them.

    \b
    Example:
      kwspi synth-context data/context --speakers 60 --engines espeak,mbrola
      kwspi synth-context data/context --speakers 200 --engines all --transforms vtl,pitch --repeats 2
    """
    from kwspi.train.speech import context as _context
    from kwspi.train.speech import engines as _engines
    from kwspi.train.speech import synth as _synth

    config = _context.ContextConfig(
        voices=SynthConfig(words=_context.check_keywords(parse_names(keywords) or ()), speakers=n_speakers,
                           repeats=repeats, seed=seed, engines=_engines.parse_engines(parse_names(engine_names)),
                           voices=parse_names(voices), exclude_voices=parse_names(exclude_voices) or (),
                           variants=parse_names(variants), noise_seconds=noise_seconds,
                           transforms=parse_names(transform_names) or (), transformed_share=transformed_share),
        negatives=negatives)
    _synth.make_speakers(config.voices)  # bad engines or names: one line before the bar draws
    total = n_speakers * (len(config.voices.words) * repeats + negatives)
    with progress_bar("synthesizing in context", total) as advance:
        summary = _context.synthesize_context(out_dir, config, jobs=jobs, progress=advance)
    click.echo(f"{out_dir}: {summary}")


@click.command("synth-stream", short_help="Synthesize a long spoken audio stream over noise, with a truth CSV.")
@click.argument("out_wav", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--truth", "truth_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Truth CSV (label,start_s,end_s per spoken word). [default: OUT_WAV with .csv]")
@click.option("--seconds", type=click.FloatRange(min=5.0), default=_STREAM.seconds, show_default=True,
              help="Length of the stream.")
@click.option("--snr-db", type=float, default=_STREAM.snr_db, show_default=True,
              help="Speech RMS (over its words) to noise RMS, in dB; 'inf' for no noise.")
@seed_option(_STREAM.seed, "Same seed and options: identical files.")
@_voice_options
@click.option("--negative", is_flag=True,
              help="No keyword at all: sentences and confusable words only (for false-alarm rates).")
@click.option("--speech", type=click.Choice(SPEECH_MODES), default=_STREAM.speech, show_default=True,
              help="phrase: the words of a phrase or sentence said in one go, connected, with the engine's word "
                   "times; joined: each word said alone and joined with short gaps (streams made before "
                   "phrase speech, reproduced).")
@click.option("--text", type=click.Choice(tuple(TEXTS)), default=_STREAM.text, show_default=True,
              help="What the sentences and confusable words say: evaluation, text no training data says; training, "
                   "the text training data says (a stream of other text, say for false alarms after mining "
                   "evaluation streams).")
@click.option("--keywords", help="With keywords: comma-separated keywords to say. [default: all ten]")
@click.option("--speakers", type=click.IntRange(min=1), default=_STREAM.speakers, show_default=True,
              help="Speakers dealt over the engines (fewer for an engine with few voices: Piper makes at most 23).")
@_transform_options
def synth_stream(out_wav, truth_csv, seconds, snr_db, seed, engine_names, voices, exclude_voices, negative, speech,
                 text, keywords, speakers, transform_names, transformed_share):
    """Synthesize a long audio stream of speech over noise, and its truth CSV.

    The voice engines (espeak-ng alone by default) speak isolated keywords,
    phrases with a keyword ("please turn the
    lights on now"), sentences without one, and confusable words ("yesterday",
    "nobody", "downtown"), with random gaps (at least 1.5 s between keywords) over
    changing background noise. A phrase or sentence is said in one go, its word
    times from the engine (--speech joined: word by word, as before). Writes a
    16 kHz mono 16-bit WAV and a CSV with one row per spoken word
    (label,start_s,end_s,engine,voice). An hour takes little memory: the stream
    is made and written a few seconds at a time.

    \b
    Example:
      kwspi synth-stream stream.wav --seconds 120 --exclude-voices en-029,en-gb-scotland
      kwspi synth-stream negative.wav --seconds 3600 --negative --snr-db 10
      kwspi synth-stream many.wav --seconds 600 --engines all --transforms vtl,pitch
      kwspi eval-stream --input negative.wav --truth negative.csv --sweep-thresholds
    """
    from kwspi.train.speech import engines as _engines
    from kwspi.train.speech import stream as _stream

    config = StreamConfig(seconds=seconds, snr_db=snr_db, seed=seed, negative=negative, speech=speech, text=text,
                          speakers=speakers, engines=_engines.parse_engines(parse_names(engine_names)),
                          keywords=parse_names(keywords) or _STREAM.keywords, **_voices(voices, exclude_voices),
                          transforms=parse_names(transform_names) or (), transformed_share=transformed_share)
    truth_csv = truth_csv or out_wav.with_suffix(".csv")
    # Report bad options and paths before the progress bar starts drawing.
    config.check()
    _stream.check_paths(out_wav, truth_csv)
    _stream.make_speakers(config)
    with progress_bar("synthesizing stream", int(round(seconds * 1000))) as advance:
        summary = _stream.write_stream(out_wav, truth_csv, config, progress=lambda s: advance(int(round(s * 1000))))
    click.echo(str(summary))
