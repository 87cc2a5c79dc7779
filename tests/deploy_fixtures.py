"""Models and audio for the deploy tests, built on the spot and shared per session.

The main model is written by hand with ``onnx.helper``: a nearest-centroid classifier over
the time-mean of the feature window, with one centroid per label computed from tone bursts
(``low`` 400 Hz, ``high`` 2000 Hz, ``_unknown_`` 1000 Hz) and from quiet noise
(``_silence_``). A 0.4 s burst then reliably lights up its label for a few windows, so tests
get deterministic detections without training anything. :func:`int8_model` exports a real
(untrained) int8 network for the code paths that need the exporter's graph.
"""

from __future__ import annotations

import functools
import threading
import wave
from pathlib import Path

import numpy as np

from kwspi.features import FeatureConfig, clip_features
from kwspi.modelinfo import ModelInfo

RATE = 16000
LABELS = ("_silence_", "_unknown_", "low", "high")
TONES = {"low": 400.0, "high": 2000.0, "_unknown_": 1000.0}
BURST_S = 0.4
AMPLITUDE = 0.3
NOISE_RMS = 0.003


def burst(freq: float, rate: int = RATE, seconds: float = BURST_S) -> np.ndarray:
    """A tone burst with 10 ms raised-cosine edges."""
    t = np.arange(int(seconds * rate)) / rate
    x = AMPLITUDE * np.sin(2 * np.pi * freq * t)
    ramp = int(0.01 * rate)
    edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
    x[:ramp] *= edge
    x[-ramp:] *= edge[::-1]
    return x


def make_stream(events, total_s: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Quiet noise with bursts: ``events`` is ``[(label, start_s), ...]``; float32 at ``rate``."""
    rng = np.random.default_rng(seed)
    x = NOISE_RMS * rng.standard_normal(int(total_s * rate))
    for label, start in events:
        b = burst(TONES[label], rate)
        i = int(start * rate)
        x[i:i + len(b)] += b
    return x.astype(np.float32)


def write_wav(path, x: np.ndarray, rate: int = RATE, channels: int = 1) -> Path:
    """16-bit PCM WAV; with ``channels`` > 1 the same signal goes to every channel."""
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm, channels).tobytes())
    return Path(path)


def _centroids(cfg: FeatureConfig) -> np.ndarray:
    """Time-mean feature vector of each label's typical window, ``[n_labels, n_mfcc]``."""
    rows = []
    for label in LABELS:
        events = [] if label == "_silence_" else [(label, 0.3)]
        rows.append(clip_features(make_stream(events, 1.0, seed=1), cfg).mean(axis=1))
    return np.array(rows)


def centroid_graph(cfg: FeatureConfig, labels=LABELS, sharpness: float = 6.0):
    """The ONNX graph (no metadata): logits = -sharpness * ||mean_t(x) - c_k||^2 / d_min^2 + const."""
    from onnx import TensorProto, helper, numpy_helper

    c = _centroids(cfg)[: len(labels)]
    d2 = ((c[:, None] - c[None]) ** 2).sum(-1)
    scale = sharpness / d2[d2 > 0].min()
    weight = (2 * scale * c.T).astype(np.float32)  # [n_mfcc, K]; the ||m||^2 term is common to all
    bias = (-scale * (c ** 2).sum(1)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["features"], ["m"], axes=[3], keepdims=0),
        helper.make_node("Flatten", ["m"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w"], ["z"]),
        helper.make_node("Add", ["z", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "centroids",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 1, cfg.n_mfcc, cfg.n_frames])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(labels)])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def graph_that_breaks_at_run_time(cfg: FeatureConfig, how: str):
    """The centroid graph with symbolic shapes, broken so that only running it tells:
    ``how`` is ``"crashes"`` (MatMul of mismatched sizes), ``"nan"`` or ``"wide"`` (10 logits)."""
    from onnx import numpy_helper

    model = centroid_graph(cfg)
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        for dim in value.type.tensor_type.shape.dim[1:]:
            dim.dim_param = "n"
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    if how == "crashes":  # one row too many for the feature vector: MatMul fails
        weights["w"] = np.vstack([weights["w"], weights["w"][:1]])
    elif how == "nan":
        weights["b"] = np.full_like(weights["b"], np.nan)
    else:  # the feature means themselves as logits: one per cepstrum, not one per label
        del graph.node[2:]
        graph.node[1].output[0] = "logits"
        del weights["w"], weights["b"]
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items())
    return model


def save_model(model, path, metadata: dict | None) -> Path:
    import onnx

    del model.metadata_props[:]
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return Path(path)


def centroid_info(cfg: FeatureConfig = FeatureConfig(), labels=LABELS, thresholds=None) -> ModelInfo:
    return ModelInfo(labels=tuple(labels), features=cfg, thresholds=thresholds or {"default": 0.6})


def centroid_model(path, cfg: FeatureConfig = FeatureConfig(), labels=LABELS, thresholds=None) -> Path:
    """Write the centroid model with valid kwspi metadata to ``path``."""
    info = centroid_info(cfg, labels, thresholds)
    return save_model(centroid_graph(cfg, labels), path, info.to_metadata())


@functools.lru_cache(maxsize=None)
def _cached_centroid(folder: str) -> Path:
    return centroid_model(Path(folder) / "centroid.onnx")


def shared_centroid_model(tmp_path_factory) -> Path:
    """One centroid model per test session."""
    return _cached_centroid(str(tmp_path_factory.getbasetemp()))


@functools.lru_cache(maxsize=None)
def _cached_int8(folder: str) -> Path:
    import torch

    from kwspi.train.export import export_model
    from kwspi.train.nets.model import build_model
    from kwspi.train.nets.space import Arch

    torch.manual_seed(0)
    cfg = FeatureConfig()
    model = build_model(Arch(cells=("k3e2",) * 2 + ("zero",) * 10, width_mult=0.25), cfg.n_mfcc, cfg.n_frames,
                        len(LABELS)).eval()
    calibration = np.stack([clip_features(make_stream([(k, 0.3)] if k in TONES else [], 1.0, seed=i), cfg)
                            for i, k in enumerate(LABELS * 4)])
    out = Path(folder) / "int8.onnx"
    export_model(model, centroid_info(cfg), calibration, out)
    return out


def int8_model(tmp_path_factory) -> Path:
    """An untrained int8 network exported by kwspi's exporter, once per test session."""
    return _cached_int8(str(tmp_path_factory.getbasetemp()))


def kwspi_command(*args) -> list[str]:
    """``kwspi ARGS`` run by this interpreter (no reliance on the console script being on PATH)."""
    import sys

    return [sys.executable, "-c", "from kwspi.cli import main; main(prog_name='kwspi')", *args]


class Running:
    """A ``kwspi`` subprocess whose stdout and stderr lines are collected as they come."""

    def __init__(self, args, env=None, cwd=None):
        import os
        import subprocess
        import threading

        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(kwspi_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=full_env, cwd=cwd)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._collect, args=(s, lines), daemon=True)
                         for s, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _collect(stream, lines):
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 20.0, stream: str = "err", count: int = 1) -> bool:
        """Wait until ``count`` lines of stdout/stderr contain ``text``; False on timeout or exit."""
        import time

        lines = self.err if stream == "err" else self.out
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in list(lines)) >= count:
                return True
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the readers catch up with the last lines
                return sum(text in line for line in list(lines)) >= count
            time.sleep(0.02)
        return False

    def finish(self, timeout: float = 20.0) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(2)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class NotifySocket:
    """Stands in for systemd's notification socket: an abstract unix datagram socket whose
    ``name`` goes into ``NOTIFY_SOCKET``; :meth:`receive` returns the next message."""

    def __enter__(self):
        import os
        import socket

        self.name = f"@kwspi-test-{os.getpid()}-{os.urandom(4).hex()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        return self

    def receive(self, timeout: float) -> str | None:
        """The next message, or None if none comes within ``timeout`` seconds."""
        import socket

        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            return None

    def __exit__(self, *exc):
        self.sock.close()


#: A :class:`FakeSounddevice` script item: the device stops delivering audio.
STALL = "stall"


class FakeSounddevice:
    """Enough of the sounddevice module for device selection and blocking reads, no PortAudio.

    ``devices``: ``[(name, input_channels), ...]``; ``rates``: sampling rates the devices
    accept (all when None); ``script``: what successive ``InputStream.read`` calls return,
    ``(int16 array [frames, channels], overflowed)`` or an exception to raise, or
    :data:`STALL`: that read, and a ``stop`` of its stream, block until :attr:`unstall` is set.
    ``rescans``: the device lists that successive re-initialisations of PortAudio find.
    """

    class PortAudioError(Exception):
        pass

    def __init__(self, devices, default=-1, rates=None, script=(), busy=False, start_error=None, rescans=()):
        import types

        self.__name__ = "sounddevice"
        self._devices, self._rates, self.script, self.rescans = devices, rates, list(script), list(rescans)
        self.busy, self.start_error = busy, start_error
        self.default = types.SimpleNamespace(device=[default, -1])
        self.opened = []
        self.streams = []
        self.unstall = threading.Event()

    def _terminate(self):
        pass

    def _initialize(self):
        if self.rescans:
            self._devices = self.rescans.pop(0)

    def query_devices(self):
        return [dict(index=i, name=n, max_input_channels=c, default_samplerate=48000.0)
                for i, (n, c) in enumerate(self._devices)]

    def check_input_settings(self, device=None, channels=None, dtype=None, samplerate=None):
        if self.busy:
            raise self.PortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        if self._rates is not None and samplerate not in self._rates:
            raise self.PortAudioError(f"Invalid sample rate [PaErrorCode -9997]: {samplerate}")

    def InputStream(self, **settings):
        self.opened.append(settings)
        stream = _FakeStream(self.script, self.start_error and self.PortAudioError(self.start_error), self.unstall)
        self.streams.append(stream)
        return stream


class _FakeStream:
    def __init__(self, script, start_error, unstall):
        self.script, self.start_error, self.unstall = script, start_error, unstall
        self.started = self.closed = self.stalled = False

    def start(self):
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    def stop(self):
        if self.stalled:
            self.unstall.wait()
        self.started = False

    def close(self):
        self.closed = True

    def read(self, frames):
        import time

        if not self.script:
            time.sleep(0.01)
            return np.zeros((frames, 1), dtype=np.int16), False
        item = self.script.pop(0)
        if item is STALL:
            self.stalled = True
            self.unstall.wait()
            return np.zeros((frames, 1), dtype=np.int16), False
        if isinstance(item, BaseException):
            raise item
        return item
