"""Audio sources: anything that yields 16 kHz mono float32 blocks until told to stop.

A source has a ``description`` (for the log) and ``blocks(stop)``, a generator of 1-D
float32 arrays at 16 kHz that ends at the end of the audio or soon after ``stop`` (a
:class:`threading.Event`) is set. A source that waits for audio yields an empty block now and
then, so the consumer keeps control (the listen loop pings systemd's watchdog per block). Sources resample at the edge with :class:`Resampler`, so
everything after them is 16 kHz. The microphone lives in :mod:`kwspi.deploy.mic`; this
module holds the WAV file source and the resampler.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from kwspi.features import SAMPLE_RATE
from kwspi.wavio import WavReader

log = logging.getLogger(__name__)



class Source(Protocol):
    description: str

    def blocks(self, stop: threading.Event) -> Iterator[np.ndarray]:
        """16 kHz mono float32 blocks until the audio ends or ``stop`` is set."""


class Resampler:
    """Stateful, anti-aliased sample-rate conversion of a stream (soxr, "HQ").

    Blocks of any size can be fed; the concatenated output does not depend on the block
    sizes and is aligned with the input (soxr compensates its filter delay). At equal
    rates it passes samples through.

    Parameters
    ----------
    in_rate, out_rate:
        Sampling rates in Hz.
    """

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE):
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self._stream = None
        if self.in_rate != self.out_rate:
            import soxr

            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        """Convert one block (1-D); ``last=True`` on the final block flushes the filter."""
        x = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return x
        return self._stream.resample_chunk(x, last=last)


class WavSource:
    """A PCM WAV file as a stream: any rate (resampled), any channel count (averaged).

    The header is read and checked when the source is made, so a bad file is reported
    before listening starts; the audio is then read one block at a time, so memory does
    not grow with the file.

    Parameters
    ----------
    path:
        The WAV file.
    realtime:
        Pace the blocks at the speed of the audio, as a microphone would deliver them;
        otherwise the file is read as fast as the consumer takes it.
    block_s:
        Block length in seconds of audio.

    Raises
    ------
    kwspi.errors.WavError
        The file is missing, empty, truncated or not PCM WAV.
    """

    def __init__(self, path, realtime: bool = False, block_s: float = 0.1):
        self.path = Path(path)
        with WavReader(self.path) as r:  # checks the file now, before listening starts
            self.frames, self.rate = r.frames, r.rate
        self.realtime = realtime
        self.block = max(1, int(round(block_s * self.rate)))
        resampled = "" if self.rate == SAMPLE_RATE else f", resampled from {self.rate} Hz"
        pace = "in real time" if realtime else "as fast as possible"
        self.description = f"WAV file {self.path} ({self.seconds:.2f} s{resampled}, {pace})"

    @property
    def seconds(self) -> float:
        """Length of the file's audio."""
        return self.frames / self.rate

    def blocks(self, stop: threading.Event) -> Iterator[np.ndarray]:
        resampler = Resampler(self.rate)
        start, done = time.monotonic(), 0
        with WavReader(self.path) as r:
            for x in r.blocks(self.block):
                if stop.is_set():
                    return
                done += len(x)
                if self.realtime and stop.wait(max(0.0, start + done / self.rate - time.monotonic())):
                    return
                out = resampler.process(x, last=done >= self.frames)
                if len(out):
                    yield out
        if done < self.frames:  # the file shrank since it was checked
            log.warning("%s ended early: it changed while being read", self.path)
            tail = resampler.process(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield tail
