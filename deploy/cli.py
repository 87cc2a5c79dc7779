"""The listening side's commands, thin over :mod:`kwspi.deploy`: ``listen``, ``devices`` and
``enroll``; those over recordings (``eval-stream``, ``calibrate``, ``mine``) are
:mod:`kwspi.deploy.evaluation.cli`. Torch-free, so all run on a Pi.

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

from kwspi.atomic import atomic_write
from kwspi.cli import early_signals
from kwspi.errors import KwspiError
from kwspi.modelinfo import resolve_model
from kwspi.options import (json_option, model_option, parse_thresholds, patience_option, stride_option,
                           threshold_option)

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
@model_option(envvar="KWSPI_MODEL", show_envvar=True)
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path),
              help="Read this WAV file (any rate, mono or stereo) instead of a microphone; exits at its end.")
@click.option("--device", "-d", envvar="KWSPI_DEVICE", show_envvar=True,
              help="Microphone: index or part of the name, as `kwspi devices` lists them (default input if omitted).")
@threshold_option(envvar="KWSPI_THRESHOLD", show_envvar=True)
@patience_option(envvar="KWSPI_PATIENCE", show_envvar=True)
@stride_option(envvar="KWSPI_STRIDE_MS", show_envvar=True)
@click.option("--hook", "hook_specs", multiple=True, type=HookSpecs(), envvar="KWSPI_HOOK", show_envvar=True,
              metavar="MODULE:FUNC|FILE.py:FUNC", help="Python function called with each Detection (repeatable; "
              "in KWSPI_HOOK separated by spaces, and a path may contain spaces).")
@click.option("--hook-process", is_flag=True, envvar="KWSPI_HOOK_PROCESS", show_envvar=True,
              help="Run each --hook in a Python process of its own: a hook that computes a lot then "
              "never slows the audio (see the README for the cost).")
@click.option("--exec", "command", envvar="KWSPI_EXEC", show_envvar=True, metavar="COMMAND",
              help="Shell command run per detection, with KWSPI_LABEL, KWSPI_SCORE, KWSPI_TIME set.")
@json_option("Print one JSON object per detection on stdout.", envvar="KWSPI_JSON", show_envvar=True)
@click.option("--realtime", is_flag=True, help="With --input: feed the file at the speed of real audio.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, envvar="KWSPI_THREADS",
              show_envvar=True, help="onnxruntime intra-op threads.")
def listen(model, input_path, device, thresholds, patience, stride_ms, hook_specs, hook_process, command, as_json,
           realtime, threads):
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
    detector = Detector(LoadedModel.load(path, threads), thresholds=overrides, stride_ms=stride_ms, threads=threads,
                        patience=patience)
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
    log.info("model %s, stride %d ms, thresholds %s, patience %d", path, stride_ms,
             ", ".join(f"{k}={v:g}" for k, v in detector.thresholds.items()), detector.patience)
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
    from kwspi.deploy.devices import list_input_devices

    found = list_input_devices()
    if not found:
        click.echo("No audio input devices found. Plug in a microphone; `arecord -l` lists the sound cards ALSA sees.")
        return
    click.echo(f"  {'index':>5}  {'channels':>8}  {'rate':>7}  name")
    for d in found:
        mark = "*" if d.is_default else " "
        click.echo(f"{mark} {d.index:>5}  {d.channels:>8}  {d.default_rate:>7.0f}  {d.name}")


@click.command(short_help="Teach a model your voice: re-fit it on a few takes of each keyword.")
@model_option
@click.option("--clips", type=click.Path(path_type=Path),
              help="Your takes in Google Speech Commands layout: yes/*.wav, no/*.wav, ... (any of the model's "
                   "keywords), optional _background_noise_/ (your room) and _unknown_/ (you saying anything else, "
                   "a few seconds or more: fewer false alarms).")
@click.option("--record", is_flag=True, help="Record the takes and the room with the microphone instead.")
@click.option("--device", "-d", help="With --record: microphone index or part of its name (default input if omitted).")
@click.option("--keywords", help="With --record: comma-separated keywords to record. [default: all the model's]")
@click.option("--takes", type=click.IntRange(1, 50), default=5, show_default=True,
              help="With --record: takes per keyword.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The adapted model (a new file; the model given is left as it is).")
@json_option()
def enroll(model, clips, record, device, keywords, takes, out, as_json):
    """Adapt a model to your voice and your room, on the Pi, in seconds.

    Re-fits the model's final layer on your takes (each shifted in time and mixed
    with your room's noise) and on your other speech, which it learns is no
    keyword, kept close to the original and to the examples of other speakers the
    model carries; then raises each keyword's threshold until the new layer fires
    on those examples no more than the old one did. With --record it asks for the
    takes, 10 s of you talking (read the sentence it shows) and 20 s of the quiet
    room. Writes a new model; `kwspi info` shows how many takes it learned from
    and its accuracy on each take held out, before and after.

    \b
    Example:
      kwspi enroll --model model.onnx --record --keywords yes,no --takes 5 --out mine.onnx
      kwspi enroll --model model.onnx --clips my-takes/ --out mine.onnx
      kwspi listen --model mine.onnx
    """
    from kwspi.deploy.enroll import enroll_takes
    from kwspi.deploy.takes import read_takes, record_takes

    if (clips is None) == (not record):
        raise click.UsageError("give --clips DIR or --record")
    if not record and (device is not None or keywords is not None):
        raise click.UsageError("--device and --keywords apply only to --record")
    path = resolve_model(model)
    loaded = LoadedModel.load(path)
    if record:
        known = [lab for lab in loaded.info.labels if not lab.startswith("_")]
        wanted = [k.strip() for k in keywords.split(",") if k.strip()] if keywords else known
        strangers = [k for k in wanted if k not in known]
        if strangers:
            raise click.BadParameter(f"the model does not know {', '.join(strangers)} (it knows {', '.join(known)})",
                                     param_hint="--keywords")
        from kwspi.deploy.mic import MicSource

        got = record_takes(MicSource(device), wanted, takes, lambda text: click.echo(text, err=True))
    else:
        got = read_takes(clips, loaded.info.labels)
    data = enroll_takes(path, got)
    with atomic_write(out) as f:
        f.write(data)
    enrolled = LoadedModel.load(out).info
    summary = enrolled.enrollment
    if as_json:
        click.echo(json.dumps({"model": str(out), "thresholds": enrolled.thresholds, **summary}))
        return
    click.echo(f"{out}: enrolled " + ", ".join(f"{k} ({n} takes)" for k, n in summary["takes"].items()))
    held = summary["held_out_takes"]
    if held:
        click.echo(f"each take held out in turn: accuracy {held['before']:.3f} before, {held['after']:.3f} after "
                   f"({held['windows']} windows)")
    click.echo("thresholds " + ", ".join(f"{k}={v:g}" for k, v in enrolled.thresholds.items()))
