"""The microphone: sounddevice (PortAudio) with blocking reads on a reader thread.

The devices themselves, and the import of sounddevice, are :mod:`kwspi.deploy.devices`.

Why blocking reads: sounddevice's callback streams need ``ffi.callback``, which needs
writable+executable memory, which systemd's ``MemoryDenyWriteExecute=yes`` forbids
(``research/feasibility.md`` section 6); ``InputStream.read`` needs no callback. The reader
thread only reads and copies into a bounded queue; the MFCC and the model run on the
consuming thread. When that thread falls behind, the reader waits, PortAudio's buffer
overflows, and the next read reports it: counted and logged, never raised.

A device lost while listening (unplugged, failing, or silent for ``no_audio_s`` without an
error) is closed on a thread of its own, so a driver stuck in a read never holds up a stop,
then looked for again by its name and reopened, with growing pauses, for as long as it takes.

The device is read as int16, the format USB microphones deliver; asking for float32 through
an ALSA ``plug`` device silently lost blocks in testing.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
from typing import Iterator

import numpy as np

from kwspi.deploy.devices import (DeviceError, input_settings, list_input_devices, one_line, resolve_device,
                                  sounddevice_module)
from kwspi.deploy.sources import SAMPLE_RATE, Resampler

log = logging.getLogger(__name__)

#: Seconds between two log lines about input overflows (each line carries the count).
OVERFLOW_LOG_INTERVAL_S = 10.0
#: Seconds without any audio from the device before it counts as stalled and is opened again.
NO_AUDIO_S = 5.0
#: Seconds between two empty blocks while no audio comes.
IDLE_YIELD_S = 1.0
#: Seconds a stream gets to stop and close before it is left behind.
CLOSE_TIMEOUT_S = 1.0
#: Streams left behind (stuck in the driver) after which the source gives up.
STUCK_LIMIT = 3
#: Seconds before the first and at most between two attempts to open a lost device again.
RETRY_S = (1.0, 30.0)


class _Lost(Exception):
    """The stream failed or its reader died: the device is looked for and opened again."""


class _Stalled(_Lost):
    """No audio for ``no_audio_s`` seconds: the stream is opened again."""


class MicSource:
    """A live microphone as a stream of 16 kHz mono float32 blocks.

    The device is resolved and its settings checked when the source is made, so a wrong
    name fails before listening starts.

    Parameters
    ----------
    device:
        ``None`` for the default input, a PortAudio index, or part of a device name.
    rate:
        Open at this rate in Hz; ``None`` tries 16000 Hz, then the device's default rate.
    block_s:
        Seconds of audio per blocking read.
    queue_s:
        Seconds of audio the reader may hold for a busy consumer before it waits.
    no_audio_s:
        Seconds without audio after which the device is closed and opened again.
    retry_s:
        Seconds before the first and at most between two attempts to open a lost device
        again (the pause doubles).
    """

    def __init__(self, device=None, rate: int | None = None, block_s: float = 0.05, queue_s: float = 2.0,
                 no_audio_s: float = NO_AUDIO_S, retry_s: tuple[float, float] = RETRY_S):
        sd = sounddevice_module()
        self.query = device
        self.device = resolve_device(device, list_input_devices())
        self.rate, self.channels = input_settings(sd, self.device, rate)
        self.frames = max(1, int(round(block_s * self.rate)))
        self._queue_blocks = max(1, int(round(queue_s / block_s)))
        self.overflows = 0
        self.no_audio_s, self.retry_s = no_audio_s, retry_s
        self._stuck: list[threading.Thread] = []  # closers of streams stuck in the driver
        self._describe()

    def _describe(self) -> None:
        via = "" if self.rate == SAMPLE_RATE else f", resampled from {self.rate} Hz"
        self.description = f"input device [{self.device.index}] {self.device.name} ({self.channels} ch{via})"

    def blocks(self, stop: threading.Event) -> Iterator[np.ndarray]:
        """16 kHz mono float32 blocks until ``stop``; an empty block after each second without
        audio, so the consumer keeps control (stop, watchdog).

        A device that fails to open the first time raises :class:`DeviceError`. After that,
        one that fails, goes away or delivers nothing for ``no_audio_s`` is looked for again
        by its name and reopened, with growing pauses (``retry_s``), for as long as it takes.
        """
        sd = sounddevice_module()
        resampler = Resampler(self.rate)
        stream = self._open(sd)
        while stream is not None:
            try:
                yield from self._stream_blocks(sd, stream, stop, resampler)
                return
            except _Stalled:
                log.warning("%s delivered no audio for %g s: opening it again", self.description, self.no_audio_s)
            except _Lost as e:
                log.warning("%s %s: opening it again", self.description, e)
            stream = yield from self._reopen(sd, stop)

    def _open(self, sd):
        stream = None
        try:
            stream = sd.InputStream(device=self.device.index, samplerate=self.rate, channels=self.channels,
                                    dtype="int16", blocksize=self.frames, latency="high")
            stream.start()  # a busy or vanished device fails here, not only at open
        except sd.PortAudioError as e:
            if stream is not None:
                with contextlib.suppress(sd.PortAudioError):
                    stream.close()
            raise DeviceError(f"cannot open {self.description}: {one_line(e)}") from None
        return stream

    def _reopen(self, sd, stop: threading.Event):
        """A new stream on the device, found again, or None if ``stop`` came first.

        Yields an empty block each second while it waits.
        """
        self._stuck = [closer for closer in self._stuck if closer.is_alive()]
        if len(self._stuck) >= STUCK_LIMIT:
            raise DeviceError(f"{self.description} stalled {len(self._stuck)} times and cannot be closed; "
                              "a restart of the process may free it")
        pause = self.retry_s[0]
        while not stop.is_set():
            try:
                self._find_again(sd)
                stream = self._open(sd)
                log.info("listening to %s again", self.description)
                return stream
            except DeviceError as e:
                log.warning("%s; trying again in %g s", e, pause)
            waited = 0.0
            while waited < pause:
                if stop.wait(min(IDLE_YIELD_S, pause - waited)):
                    return None
                waited += IDLE_YIELD_S
                yield np.zeros(0, np.float32)
            pause = min(2 * pause, self.retry_s[1])
        return None

    def _find_again(self, sd) -> None:
        # A microphone plugged in again may come back under another index (and ALSA card
        # number), which PortAudio sees only after it is initialised again; that would wait
        # for ever on a stream stuck in its driver, so then the old index is tried.
        if any(closer.is_alive() for closer in self._stuck) or not hasattr(sd, "_terminate"):
            return
        sd._terminate()
        sd._initialize()
        devices = list_input_devices()
        by_index = self.query is not None and str(self.query).strip().lstrip("-").isdigit()
        try:
            self.device = resolve_device(self.device.name, devices)
        except DeviceError:
            if by_index:
                raise DeviceError(f"{self.description} is gone") from None
            self.device = resolve_device(self.query, devices)
        self._describe()

    def _stream_blocks(self, sd, stream, stop: threading.Event, resampler: Resampler) -> Iterator[np.ndarray]:
        q: queue.Queue = queue.Queue(self._queue_blocks)
        done = threading.Event()
        try:
            reader = threading.Thread(target=self._read, args=(stream, q, done), name="kwspi-mic", daemon=True)
            reader.start()
            try:
                yield from self._drain(q, stop, reader, resampler)
            finally:
                done.set()
                reader.join(timeout=0.5)  # a read in progress ends within one block, unless stalled
        finally:
            self._close(sd, stream)

    def _drain(self, q: queue.Queue, stop, reader, resampler) -> Iterator[np.ndarray]:
        last_audio = last_yield = time.monotonic()
        while not stop.is_set():
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                if not reader.is_alive():
                    raise _Lost("stopped delivering audio") from None
                now = time.monotonic()
                if now - last_audio >= self.no_audio_s:
                    raise _Stalled from None
                if now - last_yield >= IDLE_YIELD_S:
                    last_yield = now
                    yield np.zeros(0, np.float32)
                continue
            if isinstance(item, Exception):
                raise _Lost(f"failed: {one_line(item)}") from None
            last_audio = last_yield = time.monotonic()
            out = resampler.process(item)
            if len(out):
                yield out

    def _close(self, sd, stream) -> None:
        # A stalled driver can block stop() for ever (ALSA holds the stream's lock inside the
        # read), so closing happens on a thread of its own and a stop never waits long for it.
        def close():
            with contextlib.suppress(sd.PortAudioError):  # a device that went away cannot be stopped
                stream.stop()
                stream.close()

        closer = threading.Thread(target=close, name="kwspi-mic-close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        if not closer.is_alive():
            return
        self._stuck.append(closer)
        # PortAudio's exit handler closes every open stream and would wait on this one too,
        # so the process could never exit.
        atexit.unregister(getattr(sd, "_exit_handler", None))
        log.warning("%s did not close within %g s; left open", self.description, CLOSE_TIMEOUT_S)

    def _read(self, stream, q: queue.Queue, done: threading.Event) -> None:
        last_log = -np.inf
        try:
            while not done.is_set():
                data, overflowed = stream.read(self.frames)
                if overflowed:
                    self.overflows += 1
                    if time.monotonic() - last_log >= OVERFLOW_LOG_INTERVAL_S:
                        last_log = time.monotonic()
                        log.warning("input overflow: audio was lost (%d overflows so far)", self.overflows)
                mono = data[:, 0].astype(np.float32) if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
                _put(q, mono / 32768.0, done)
        except Exception as e:  # PortAudioError when the device goes away; handed to the consumer
            _put(q, e, done)


def _put(q: queue.Queue, item, done: threading.Event) -> None:
    # Waiting here (instead of dropping) turns a slow consumer into a PortAudio overflow,
    # which the next read reports: one place where lost audio is counted.
    while not done.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
