"""Synthetic speech commands in Google Speech Commands' exact layout.

- :func:`render_clip`: one word as a 1-second clip, placed, levelled and dithered;
- :class:`SynthConfig`, :func:`synthesize_dataset`: a whole GSC-layout folder;
- :func:`speech_bounds`, :func:`active_seconds`: where the speech in a recording is.

The voices come from the engines of :mod:`kwspi.train.speech.engines` (espeak-ng unless told
otherwise); ``speakers.csv`` is the catalogue of who spoke. Every clip's randomness comes from a
generator seeded by ``(seed, speaker, word, n)``, so the output is byte-identical for a seed
whatever the thread count or the order, and a rerun skips the clips that exist. This module
must not import torch: the demo and the streaming tests use it on machines without it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from kwspi import gsc
from kwspi.features import SAMPLE_RATE
from kwspi.train.speech import engines, noise
from kwspi.train.speech.engines import RECORDED, Speaker, SynthError
from kwspi.train.speech.espeak import PITCHES, SPEEDS
from kwspi.train.speech.catalogue import write_speakers_csv, write_split_lists
from kwspi.wavio import write_wav

log = logging.getLogger(__name__)

CLIP_SAMPLES = SAMPLE_RATE  # one second, as in GSC
PEAK = 0.9  # soxr's HQ filter overshoots; normalising to 0.9 keeps clear of full scale
MIN_ACTIVE_S = 0.1  # the shortest real words last ~0.14 s; less is a broken or silent voice
_WORD = re.compile(r"^[a-z0-9][a-z0-9' -]*$")


def frame_levels(x: np.ndarray, rate: int = SAMPLE_RATE, frame_s: float = 0.01) -> np.ndarray:
    """RMS level in dBFS of consecutive ``frame_s``-second frames (the tail is dropped)."""
    frame = max(1, int(rate * frame_s))
    n = len(x) // frame
    frames = np.asarray(x[: n * frame], np.float64).reshape(n, frame)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def speech_bounds(
    x: np.ndarray, rate: int = SAMPLE_RATE, floor_db: float = -65.0, range_db: float = 55.0
) -> tuple[int, int]:
    """Sample indices ``(start, end)`` of the span from the first to the last sounding frame.

    A frame sounds when it is above ``floor_db`` dBFS and within ``range_db`` dB of the
    loudest frame; 10 ms are kept on either side so soft onsets are not cut.
    ``(0, 0)`` for silence.
    """
    levels = frame_levels(x, rate)
    if levels.size == 0:
        return 0, 0
    sounding = np.flatnonzero((levels > floor_db) & (levels > levels.max() - range_db))
    if sounding.size == 0:
        return 0, 0
    frame = rate // 100
    return max(0, (sounding[0] - 1) * frame), min(len(x), (sounding[-1] + 2) * frame)


def active_seconds(x: np.ndarray, rate: int = SAMPLE_RATE, floor_db: float = -50.0, range_db: float = 35.0) -> float:
    """Seconds of clearly audible speech: 10 ms frames above ``floor_db`` dBFS and within
    ``range_db`` dB of the loudest. Measured on espeak-ng's raw output, before levelling."""
    levels = frame_levels(x, rate)
    if levels.size == 0:
        return 0.0
    return float(np.sum((levels > floor_db) & (levels > levels.max() - range_db))) * 0.01


# --- one clip -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipStyle:
    """How a word is turned into a clip; ranges are inclusive ``(low, high)``."""

    speed_jitter: float = 0.07  # relative, per clip
    pitch_jitter: int = 4  # in the engine's pitch units (espeak-ng's 0-99, or percent), per clip
    gain_db: tuple[float, float] = (-20.0, 0.0)  # after peak normalisation to PEAK
    noise_floor_db: tuple[float, float] = (-80.0, -65.0)  # dBFS RMS; no digital silence
    fade_s: float = 0.005


def render_clip(
    text: str, speaker: Speaker, rng: np.random.Generator, style: ClipStyle = ClipStyle()
) -> tuple[np.ndarray | None, str]:
    """One word as a 1-second 16 kHz clip: ``(samples, "ok")`` or ``(None, reason)``.

    The word is spoken with jittered speed and pitch, trimmed, placed at a random offset
    fully inside the second, peak-normalised to :data:`PEAK`, scaled by a random gain and
    laid over a faint noise floor. Reasons for no clip: ``"silent"`` (under
    :data:`MIN_ACTIVE_S` of audible speech: some voices say nothing for some words) and
    ``"too_long"`` (still over a second after two faster retries).
    """
    speed, pitch = engines.jittered(
        speaker,
        speaker.speed * (1.0 + rng.uniform(-style.speed_jitter, style.speed_jitter)),
        speaker.pitch + rng.integers(-style.pitch_jitter, style.pitch_jitter + 1),
    )
    gain = 10.0 ** (rng.uniform(*style.gain_db) / 20.0)
    floor = 10.0 ** (rng.uniform(*style.noise_floor_db) / 20.0)
    place = rng.uniform()
    dither = rng.standard_normal(CLIP_SAMPLES)
    for _ in range(3):
        raw = engines.speak(text, speaker, speed=speed, pitch=pitch)
        if active_seconds(raw) < MIN_ACTIVE_S:
            return None, "silent"
        start, end = speech_bounds(raw)
        word = raw[start:end].astype(np.float64)
        if len(word) <= CLIP_SAMPLES:
            break
        speed = round(speed * 1.3)
    else:
        return None, "too_long"
    word *= fade(len(word), int(style.fade_s * SAMPLE_RATE))
    word *= PEAK * gain / float(np.max(np.abs(word)))
    clip = floor * dither
    offset = int(place * (CLIP_SAMPLES - len(word) + 1))
    clip[offset:offset + len(word)] += word
    return np.clip(clip, -1.0, 1.0).astype(np.float32), "ok"


def clip_rng(seed: int, speaker: Speaker, word: str, n: int) -> np.random.Generator:
    """The generator for one clip: independent of every other clip and of run order."""
    return np.random.default_rng([seed, int(speaker.id, 16), engines.key(word), n])


def fade(length: int, ramp: int) -> np.ndarray:
    """A gain of 1 with raised-cosine ramps of ``ramp`` samples at both ends."""
    w = np.ones(length)
    ramp = min(ramp, length // 2)
    if ramp > 0:
        r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        w[:ramp], w[length - ramp:] = r, r[::-1]
    return w


# --- a data set -----------------------------------------------------------------------


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides a synthetic data set's content (with the voices installed)."""

    words: tuple[str, ...] = gsc.WORDS_V2
    speakers: int = 60
    repeats: int = 1  # clips per speaker and word: ``<speaker>_nohash_<n>.wav``, n < repeats
    seed: int = 0
    engines: tuple[str, ...] = engines.DEFAULT_ENGINES  # speakers are dealt over those installed
    voices: tuple[str, ...] | None = None  # None: every English voice of those engines
    exclude_voices: tuple[str, ...] = ()
    variants: tuple[str, ...] | None = None  # None: every variant, and none
    speeds: tuple[int, int] = SPEEDS
    pitches: tuple[int, int] = PITCHES
    style: ClipStyle = ClipStyle()
    noise_seconds: float = 60.0
    # Kinds of transform (vtl, pitch, room, mic) for new speakers made from recorded voices;
    # () keeps every speaker as its engine speaks it, and the data set as it always was.
    transforms: tuple[str, ...] = ()
    transformed_share: float = 0.25  # of ``speakers``, when ``transforms`` is given
    transform_engines: tuple[str, ...] = RECORDED  # whose speakers are transformed


@dataclass
class SynthSummary:
    """What :func:`synthesize_dataset` did."""

    written: int = 0
    skipped_existing: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    speakers: int = 0
    words: int = 0
    seconds: float = 0.0

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def __str__(self) -> str:
        why = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items()))
        return (
            f"{self.written} clips written, {self.skipped_existing} already there, "
            f"{self.total_dropped} dropped{f' ({why})' if why else ''}; "
            f"{self.speakers} speakers x {self.words} words in {self.seconds:.1f} s"
        )


def synthesize_dataset(
    out_dir,
    config: SynthConfig = SynthConfig(),
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write (or complete) a GSC-layout folder of synthetic speech under ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Created if missing. Clips already there are kept, so an interrupted run resumes.
    config : SynthConfig
        Words, speakers, seed, voices and clip style.
    jobs : int, optional
        Parallel speaking threads (default: ``os.cpu_count()``).
    progress : callable, optional
        Called with the number of clips just finished (written, skipped or dropped).

    Returns
    -------
    SynthSummary
        Counts of clips written, skipped because they existed, and dropped (by reason:
        ``left_out`` for a word the speaker's engine is known to say wrongly).
    """
    t0 = time.monotonic()
    out = _prepare_out_dir(out_dir)
    words = check_words(config.words)
    speakers = make_speakers(config)
    summary = SynthSummary(speakers=len(speakers), words=len(words))
    todo = plan(out, speakers, [(w, config.repeats) for w in words], summary, progress)
    _run_jobs(todo, config, jobs, summary, progress)
    noise.write_noise_folder(out / gsc.BACKGROUND_NOISE_DIR, config.seed, config.noise_seconds)
    write_split_lists(out)
    write_speakers_csv(out, speakers)
    summary.seconds = time.monotonic() - t0
    log.debug("%s: %s", out, summary)
    return summary


def make_speakers(config: SynthConfig) -> list[Speaker]:
    """The data set's speakers (:func:`kwspi.train.speech.engines.make_speakers`).

    With ``transforms``, ``round(speakers * transformed_share)`` of them are transformed
    versions (:func:`kwspi.train.speech.transforms.transformed_speakers`) of the others
    that ``transform_engines`` spoke, and the rest are dealt as without.
    """
    n_new = round(config.speakers * config.transformed_share) if config.transforms else 0
    if config.transforms and not 0.0 < config.transformed_share < 1.0:
        raise SynthError(f"transformed share must be between 0 and 1 (not {config.transformed_share:g})")
    plain = engines.make_speakers(
        config.speakers - n_new, config.seed, config.engines, config.voices, config.exclude_voices,
        variants=config.variants, speeds=config.speeds, pitches=config.pitches,
    )
    if not config.transforms:
        return plain
    from kwspi.train.speech import transforms  # its libraries only when transforms are asked for

    kinds = transforms.parse_kinds(config.transforms)
    return plain + transforms.transformed_speakers(plain, n_new, kinds, config.seed, config.transform_engines)


def plan(out: Path, speakers, groups, summary, progress, suffix: str = "") -> list[tuple[Path, Speaker, str, int]]:
    """The clips still to make, as ``(path, speaker, word, n)``, for ``groups`` of
    ``(word, count)``: ``count`` clips per speaker in the word's folder, named
    ``<speaker>_nohash_<suffix><n>.wav``. Existing ones are counted as skipped, and words an
    engine says wrongly as dropped (``left_out``): a clip of them would teach a wrong label."""
    todo, ticks = [], 0
    for word, count in groups:
        (out / folder_name(word)).mkdir(exist_ok=True)
        for spk in speakers:
            if engines.cannot_say(spk, word):
                summary.dropped["left_out"] = summary.dropped.get("left_out", 0) + count
                ticks += count
                continue
            for n in range(count):
                path = out / folder_name(word) / f"{spk.id}_nohash_{suffix}{n}.wav"
                if path.exists():
                    summary.skipped_existing += 1
                else:
                    todo.append((path, spk, word, n))
    if progress and summary.skipped_existing + ticks:
        progress(summary.skipped_existing + ticks)
    return todo


def _run_jobs(todo, config: SynthConfig, jobs, summary: SynthSummary, progress) -> None:
    def render(item):
        path, spk, word, n = item
        return render_clip(word, spk, clip_rng(config.seed, spk, word, n), config.style)

    run_jobs(todo, render, jobs, summary, progress)


def run_jobs(todo, render, jobs, summary: SynthSummary, progress) -> None:
    """Make the clips of ``todo`` in threads: ``render(item) -> (audio or None, status)``
    for each ``(path, speaker, ...)`` item, the audio written to ``path``; statuses other
    than ``"ok"`` are counted in ``summary.dropped``."""
    def one(item):
        path, spk = item[0], item[1]
        try:
            audio, status = render(item)
        except SynthError as e:  # one odd word or voice must not cost the whole run
            log.warning("failed %s/%s: %s", path.parent.name, path.name, e)
            return "failed"
        if audio is not None:
            write_wav(path, audio, SAMPLE_RATE)
        else:
            log.info("dropped %s/%s: %s (%s)", path.parent.name, path.name, status, spk.canonical)
        return status

    # Threads suffice: the work is in engine subprocesses, ONNX Runtime and soxr, which
    # release the GIL.
    pool = ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1)
    try:
        for future in as_completed([pool.submit(one, item) for item in todo]):
            status = future.result()
            if status == "ok":
                summary.written += 1
            else:
                summary.dropped[status] = summary.dropped.get(status, 0) + 1
            if progress:
                progress(1)
    finally:
        # On Ctrl-C, finish only the clips in flight (each is written atomically) and go.
        pool.shutdown(wait=True, cancel_futures=True)


def check_words(words: Iterable[str]) -> tuple[str, ...]:
    """Lower-case, de-duplicated words; :class:`SynthError` for one that cannot be a folder."""
    out = []
    for w in words:
        w = " ".join(w.strip().lower().split())
        if not _WORD.match(w):
            raise SynthError(
                f"word {w!r} cannot be used: letters, digits, spaces, ' and - only, starting with a letter or digit"
            )
        if w not in out:
            out.append(w)
    if not out:
        raise SynthError("no words to speak")
    return tuple(out)


def read_words(spec: str) -> tuple[str, ...]:
    """Words from ``spec``: a file (one per line or comma-separated, ``#`` comments) or ``a,b,c``."""
    path = Path(spec)
    if path.is_file():
        text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    elif "/" in spec or spec.endswith(".txt"):
        raise SynthError(f"{spec}: no such words file")
    else:
        text = spec
    return check_words(w for line in text.splitlines() for w in line.split(",") if w.strip())


def folder_name(word: str) -> str:
    """The word's folder: spaces become ``_`` (``"lights on"`` → ``lights_on``)."""
    return word.replace(" ", "_")


def _prepare_out_dir(out_dir) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: is a file, not a folder; give a new or existing folder for the data set")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SynthError(f"{out}: cannot create the folder ({e.strerror})") from None
    return out
