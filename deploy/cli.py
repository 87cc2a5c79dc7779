"""``kwspi listen`` and ``kwspi devices``: thin commands over :mod:`kwspi.deploy`.

Every option of ``listen`` can also come from an environment variable (``KWSPI_MODEL``,
``KWSPI_DEVICE``, ...), which is how the systemd unit passes its configuration: values with
spaces, such as device names, survive intact that way.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from kwspi.cli import early_signals
from kwspi.errors import KwspiError
from kwspi.modelinfo import resolve_model
from kwspi.options import parse_thresholds

from kwspi.deploy.decision import Detection
from kwspi.deploy.engine import Detector
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.hookproc import ProcessHook
from kwspi.deploy.hooks import HookSet, ShellHook, load_hook
from kwspi.deploy.service import Listener, signal_handlers
from kwspi.deploy.sources import WavSource

log = logging.getLogger(__name__)

#: Seconds that hooks still running at the end of a file get before the process exits.
HOOK_DRAIN_S = 2.0




def _source(input_path, device, realtime):
    if input_path is not None:
        return WavSource(input_path, realtime=realtime)
    from kwspi.deploy.mic import MicSource

    return MicSource(device)


def _printer(as_json: bool, on_closed):
    """Prints a detection; calls ``on_closed(error)`` once stdout takes no more: ``None`` when
    its reader has gone (``| head -1``), the OSError otherwise (a full disk, say)."""
    closed = False

    def show(d: Detection) -> None:
        nonlocal closed
        if closed:
            return
        line = json.dumps(d.as_json()) if as_json else f"{d.time:9.2f} s  {d.label:<12} {d.score:.3f}"
        try:
            click.echo(line)  # echo flushes, so a pipe sees each detection at once
        except OSError as e:
            closed = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            on_closed(None if isinstance(e, BrokenPipeError) else e)

    return show


def _hooks(specs, command, separate: bool) -> HookSet:
    hooks = [(spec, ProcessHook(spec) if separate else load_hook(spec)) for spec in specs]
    if command:
        shell = ShellHook(command)
        hooks.append((shell.__name__, shell))
    return HookSet(hooks)


class HookSpecs(click.ParamType):
    """Hook specs; in an environment variable a space ends one only after its ``:function``."""

    name = "hook"

    def split_envvar_value(self, rv: str):
        # click splits at every space, which cuts "/etc/kwspi/my hooks.py:f" in two.
        return re.findall(r"\S.*?:[A-Za-z_]\w*(?=\s|$)", rv) or rv.split()


@click.command(short_help="Listen for keywords in a microphone or a WAV file.")
@click.option("--model", "-m", type=click.Path(dir_okay=True, path_type=Path), envvar="KWSPI_MODEL",
              show_envvar=True, help="kwspi ONNX model (default: the model bundled with kwspi).")
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path),
              help="Read this WAV file (any rate, mono or stereo) instead of a microphone; exits at its end.")
@click.option("--device", "-d", envvar="KWSPI_DEVICE", show_envvar=True,
              help="Microphone: index or part of the name, as `kwspi devices` lists them (default input if omitted).")
@click.option("--threshold", "-t", "thresholds", multiple=True, envvar="KWSPI_THRESHOLD", show_envvar=True,
              metavar="T|LABEL=T", help="Detection threshold for all keywords, or for one (repeatable; "
              "default: the model's own).")
@click.option("--hop-ms", type=click.IntRange(min=1), default=100, show_default=True, envvar="KWSPI_HOP_MS",
              show_envvar=True, help="Milliseconds between two model windows (20 to 1000).")
@click.option("--hook", "hook_specs", multiple=True, type=HookSpecs(), envvar="KWSPI_HOOK", show_envvar=True,
              metavar="MODULE:FUNC|FILE.py:FUNC", help="Python function called with each Detection (repeatable; "
              "in KWSPI_HOOK separated by spaces, and a path may contain spaces).")
@click.option("--hook-process", is_flag=True, envvar="KWSPI_HOOK_PROCESS", show_envvar=True,
              help="Run each --hook in a Python process of its own: a hook that computes a lot then "
              "never slows the audio (see the README for the cost).")
@click.option("--exec", "command", envvar="KWSPI_EXEC", show_envvar=True, metavar="COMMAND",
              help="Shell command run per detection, with KWSPI_LABEL, KWSPI_SCORE, KWSPI_TIME set.")
@click.option("--json", "as_json", is_flag=True, envvar="KWSPI_JSON", show_envvar=True,
              help="Print one JSON object per detection on stdout.")
@click.option("--realtime", is_flag=True, help="With --input: feed the file at the speed of real audio.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, envvar="KWSPI_THREADS",
              show_envvar=True, help="onnxruntime intra-op threads.")
def listen(model, input_path, device, thresholds, hop_ms, hook_specs, hook_process, command, as_json, realtime,
           threads):
    """Listen to a microphone or a WAV file and report keywords.

    Detections go to stdout (one line each, or JSON with --json), to every --hook on a
    worker thread, and to --exec. Logs go to stderr. SIGTERM or Ctrl-C stops; SIGHUP
    reloads the model file without closing the microphone.

    \b
    Example:
      kwspi listen --model model.onnx --device USB --threshold yes=0.9 --hook myhooks:on_detect
      kwspi listen --input recording.wav --json
      kwspi listen --exec 'logger "heard $KWSPI_LABEL at $KWSPI_TIME s"'
    """
    if input_path is not None and device is not None:
        if click.get_current_context().get_parameter_source("device") is ParameterSource.ENVIRONMENT:
            device = None  # a service's KWSPI_DEVICE does not stop a test run on a file
        else:
            raise click.UsageError("give --input or --device, not both")
    if realtime and input_path is None:
        raise click.UsageError("--realtime applies only to --input")
    overrides = parse_thresholds(thresholds)
    path = resolve_model(model)
    detector = Detector(LoadedModel.load(path, threads), thresholds=overrides, hop_ms=hop_ms, threads=threads)
    source = _source(input_path, device, realtime)
    band = detector.model.features.high_hz
    if source.rate / 2 < band:  # upsampling cannot bring back what the recording never had
        log.warning("%d Hz input has nothing above %g Hz; the model listens up to %g Hz, so expect "
                    "missed words and false detections", source.rate, source.rate / 2, band)
    hooks = _hooks(hook_specs, command, hook_process)
    stdout_errors = []

    def stdout_closed(error: OSError | None) -> None:
        if error is not None:
            stdout_errors.append(error)
        listener.stop()

    show = _printer(as_json, stdout_closed)

    def on_detection(d: Detection) -> None:
        show(d)
        hooks(d)

    listener = Listener(source, detector, lambda: LoadedModel.load(path, threads), on_detection)
    log.info("model %s, hop %d ms, thresholds %s", path, hop_ms,
             ", ".join(f"{k}={v:g}" for k, v in detector.thresholds.items()))
    try:
        with signal_handlers(listener):
            if early_signals[signal.SIGINT].is_set():
                log.info("stop requested during start-up")
                listener.stop()
            if early_signals[signal.SIGHUP].is_set():
                log.info("reload requested during start-up")
                listener.reload()
            listener.run()
        if stdout_errors:
            raise KwspiError(f"cannot write detections to stdout: {stdout_errors[0]}")
    finally:
        hooks.close(HOOK_DRAIN_S)
        if hooks.dropped:
            log.warning("hooks dropped %d detection(s) while busy", hooks.dropped)
        if getattr(source, "overflows", 0):
            log.warning("%d input overflow(s) lost audio", source.overflows)


@click.command(short_help="List the audio input devices kwspi can listen to.")
def devices():
    """List audio input devices: index, name, channels, default rate.

    Give the index or part of the name to `kwspi listen --device`. The default input,
    used when --device is left out, is marked with '*'.

    \b
    Example:
      kwspi devices
      kwspi listen --device "USB"
    """
    from kwspi.deploy.mic import list_input_devices

    found = list_input_devices()
    if not found:
        click.echo("No audio input devices found. Plug in a microphone; `arecord -l` lists the sound cards ALSA sees.")
        return
    click.echo(f"  {'index':>5}  {'channels':>8}  {'rate':>7}  name")
    for d in found:
        mark = "*" if d.is_default else " "
        click.echo(f"{mark} {d.index:>5}  {d.channels:>8}  {d.default_rate:>7.0f}  {d.name}")
