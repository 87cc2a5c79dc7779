"""RHVoice (:mod:`.engines`): statistical parametric voices trained on recordings of people.

Four English voices: ``bdl``, ``clb``, ``evgeniy-eng`` and ``lyubov``. ``alan`` and ``slt``
ship in the same Debian package but are never offered: they are CMU ARCTIC speakers, and the
engines kept back to judge kwspi on unheard voices use those recordings too. A speaker is a
voice at a speed and pitch in percent of the voice's own, given as SSML prosody (the command
line's ``-r``/``-t`` cannot go below the voice's natural rate or pitch). Output is 24 kHz,
resampled to 16 kHz.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

import numpy as np
import soxr

from kwspi.features import SAMPLE_RATE
from kwspi.train.speech import engines
from kwspi.train.speech.engines import Speaker, SynthError
from kwspi.wavio import read_wav_bytes_lenient

EXE = "RHVoice-test"
VOICES = ("bdl", "clb", "evgeniy-eng", "lyubov")  # never alan or slt: see the module doc
VOICE_DIR = Path("/usr/share/RHVoice/voices")
SPEEDS = (85, 125)  # percent of the voice's natural rate
PITCHES = (88, 115)  # percent of the voice's natural pitch
SPEED_FLOOR = 60
PITCH_BOUNDS = (70, 140)
CANNOT_SAY: dict[str, frozenset[str]] = {}


def unavailable() -> str | None:
    if shutil.which(EXE) is None:
        return "RHVoice is not installed (Debian non-free: apt-get install rhvoice rhvoice-english)"
    if not list_voice_names():
        return f"none of RHVoice's voices {', '.join(VOICES)} is installed (apt-get install rhvoice-english)"
    return None


@functools.lru_cache(maxsize=None)
def list_voice_names() -> tuple[str, ...]:
    return tuple(v for v in VOICES if (VOICE_DIR / v).is_dir())


def make_speakers(
    n: int, seed: int = 0, voices: Sequence[str] | None = None, exclude: Sequence[str] = (), limit: bool = False
) -> list[Speaker]:
    return engines.engine_speakers("rhvoice", n, seed, voices, exclude, limit)


def speak(text: str, speaker: Speaker, *, speed: int | None = None, pitch: int | None = None) -> np.ndarray:
    """``text`` in the speaker's voice, float32 at 16 kHz."""
    exe = shutil.which(EXE)
    if exe is None:
        raise SynthError(unavailable() or "RHVoice is not installed")
    ssml = (f'<speak><prosody rate="{speaker.speed if speed is None else speed}%" '
            f'pitch="{speaker.pitch if pitch is None else pitch}%">{escape(text)}</prosody></speak>')
    proc = subprocess.run([exe, "-s", "-p", speaker.voice, "-o", "/dev/stdout"], input=ssml.encode("utf-8"),
                          capture_output=True)
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SynthError(f"RHVoice voice {speaker.voice} failed: {err[-1] if err else f'exit status {proc.returncode}'}")
    x, rate = read_wav_bytes_lenient(proc.stdout)
    if rate != SAMPLE_RATE and x.size:
        x = soxr.resample(x, rate, SAMPLE_RATE)
    return np.ascontiguousarray(x, dtype=np.float32)
