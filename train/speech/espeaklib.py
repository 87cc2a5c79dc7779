"""espeak-ng's library (libespeak-ng) through ctypes: a phrase spoken in one go, with the
sample where each word starts.

The command line (:func:`kwspi.train.speech.espeak.speak`) says nothing about timing; the
library reports events while it speaks. espeak-ng's own voices send a *word* event at each
word's first sample; MBROLA voices send one for the first word only, but their *phoneme*
events carry the text position of each word's first phoneme. Either way the word starts
come from the synthesizer itself, not guessed from the sound.

The library keeps state from one voice to the next (a variant's formants stay when the next
voice has none) and hangs when asked to start over, so every phrase is spoken by this file
run as a process of its own, as the command line is: the audio is the command line's,
whatever was said before. That process needs only the standard library (``python -S``), so
the module's top imports nothing else; the parent's side imports numpy when it runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys

# speak_lib.h: output mode, event types, parameters and flags.
_SYNCHRONOUS = 2
_EV_END_OF_LIST, _EV_WORD, _EV_PHONEME = 0, 1, 7
_RATE, _PITCH = 1, 3
_POS_CHARACTER, _CHARS_UTF8 = 1, 1


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


class _Voice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def unavailable() -> str | None:
    """``None`` when libespeak-ng can be loaded here, else why not."""
    return None if ctypes.util.find_library("espeak-ng") else "libespeak-ng is not installed (apt-get install libespeak-ng1)"


def speak_timed(text: str, speaker, *, speed: int | None = None, pitch: int | None = None):
    """``text`` spoken in one go: float32 at 16 kHz and, per word of ``text.split()``, the
    sample where the synthesizer started it, or ``None`` for a word it ran into the one
    before (espeak-ng says some short words together: "for a", "go for"). :class:`SynthError`
    when the first word has no event or the voice cannot be set."""
    import numpy as np
    import soxr

    from kwspi.features import SAMPLE_RATE
    from kwspi.train.speech.engines import SynthError

    words = text.split()
    spaced = " ".join(words)
    args = [speaker.espeak_voice, str(speaker.speed if speed is None else speed),
            str(speaker.pitch if pitch is None else pitch)]
    proc = subprocess.run([sys.executable, "-S", __file__, *args], input=spaced.encode("utf-8"), capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SynthError(f"libespeak-ng, voice {speaker.espeak_voice}: {err[-1] if err else proc.returncode}")
    head, _, pcm = proc.stdout.partition(b"\n")
    meta = json.loads(head)
    starts = word_starts(spaced, meta["events"])
    if starts[0] is None:
        raise SynthError(f"libespeak-ng gave no time for the first word of {spaced!r}")
    x = np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2").astype(np.float32) / 32768.0
    rate = meta["rate"]
    if rate != SAMPLE_RATE and x.size:
        x = soxr.resample(x, rate, SAMPLE_RATE)
    scale = SAMPLE_RATE / rate
    return np.ascontiguousarray(x, np.float32), [None if s is None else min(len(x), int(round(s * scale)))
                                                 for s in starts]


def word_starts(text: str, events) -> list[int]:
    """Per word of ``text`` (single spaces), the sample of the first word or phoneme event
    at the word's text position, ``None`` where there is none."""
    offsets, at = [], 1  # the library counts characters from 1
    for w in text.split(" "):
        offsets.append(at)
        at += len(w) + 1
    first: dict[int, int] = {}
    for kind, pos, sample in events:
        if kind in (_EV_WORD, _EV_PHONEME) and pos not in first:
            first[pos] = sample
    return [first.get(o) for o in offsets]


# --- the speaking process ---------------------------------------------------------------


def _speak(voice: str, speed: int, pitch: int, text: bytes) -> tuple[int, list, bytes]:
    lib = ctypes.CDLL(ctypes.util.find_library("espeak-ng"))
    chunks, events = [], []

    @_Callback
    def on_audio(wav, n, ev):
        if n > 0:
            chunks.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while ev[i].type != _EV_END_OF_LIST:
            events.append((ev[i].type, ev[i].text_position, ev[i].sample))
            i += 1
        return 0

    if lib.espeak_Initialize(_SYNCHRONOUS, 0, None, 0) <= 0:
        raise RuntimeError("libespeak-ng did not initialise")
    lib.espeak_SetSynthCallback(on_audio)
    # As the command line's -v: a voice's name, else a language (``en-gb+f3``).
    name = voice.encode("utf-8")
    if lib.espeak_SetVoiceByName(name) != 0 and lib.espeak_SetVoiceByProperties(ctypes.byref(_Voice(languages=name))) != 0:
        raise RuntimeError(f"cannot set voice {voice!r}")
    lib.espeak_SetParameter(_RATE, speed, 0)
    lib.espeak_SetParameter(_PITCH, pitch, 0)
    if lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
        raise RuntimeError("espeak_Synth failed")
    lib.espeak_Synchronize()
    return lib.espeak_ng_GetSampleRate(), events, b"".join(chunks)


if __name__ == "__main__":
    try:
        rate, found, audio = _speak(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.stdin.buffer.read())
    except RuntimeError as e:
        sys.exit(str(e))
    sys.stdout.buffer.write(json.dumps({"rate": rate, "events": found}).encode("utf-8") + b"\n" + audio)
