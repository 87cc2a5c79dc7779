"""What every command line of kwspi shares: option decorators and the progress bar.

Only CLI modules import this; libraries take a :data:`kwspi.progress.Progress` instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import sys
from pathlib import Path
from typing import Iterator

import click

from kwspi.errors import KwspiError
from kwspi.progress import Advance
from kwspi.settings import is_config, value_type

log = logging.getLogger(__name__)


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[Advance]:
    """A :data:`kwspi.progress.Progress` that draws click's bar on stderr."""
    with click.progressbar(length=total, label=label, file=sys.stderr,
                           item_show_func=lambda status: status) as bar:
        yield lambda n, status=None: bar.update(n, status)


# --- options several commands share ---------------------------------------------------------


def model_option(command=None, **extra):
    """``--model/-m``: a kwspi ONNX model, the bundled one when not given (``@model_option``,
    or ``@model_option(help=..., envvar=...)`` to change what it says)."""
    kw = {"help": "kwspi ONNX model. [default: the model bundled with kwspi]", **extra}
    # Any path: a folder or a wrong file is the model loader's one-line error, not a usage message.
    decorator = click.option("--model", "-m", type=click.Path(path_type=Path), default=None, **kw)
    return decorator(command) if command is not None else decorator


def json_option(help: str = "Print one JSON object.", **extra):
    """``--json``: machine-readable output on stdout (the command's parameter is ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=help, **extra)


def seed_option(default: int, help: str):
    """``--seed``: a non-negative integer seed with the given default (from the command's config)."""
    return click.option("--seed", type=click.IntRange(min=0), default=default, show_default=True, help=help)


def threshold_option(**extra):
    """``--threshold/-t T|LABEL=T`` (repeatable), as :func:`parse_thresholds` reads it."""
    return click.option("--threshold", "-t", "thresholds", multiple=True, metavar="T|LABEL=T",
                        help="Detection threshold for all keywords, or for one (repeatable; default: the model's "
                             "own).", **extra)


def patience_option(**extra):
    """``--patience N``: windows in a row over threshold before a keyword fires (the model's
    own when not given; the parameter is ``patience``, ``None`` then)."""
    return click.option("--patience", type=click.IntRange(min=1), default=None, metavar="N",
                        help="Windows in a row with a keyword's smoothed score over its threshold before it fires "
                             "(1: the first window fires). [default: the model's own, 1 if it names none]", **extra)


def stride_option(**extra):
    """``--stride-ms``: milliseconds between two model windows (the 1 s window slides by
    this much). Its old name ``--hop-ms`` still works, with a warning: a "hop" is also the
    front end's 20 ms frame step, and one name should not mean two things."""
    from kwspi.deploy.engine import DEFAULT_STRIDE_MS

    old_env = {"envvar": "KWSPI_HOP_MS"} if "envvar" in extra else {}

    def decorate(command):
        @functools.wraps(command)
        def run(*args, stride_ms, hop_ms_deprecated, **kwargs):
            if hop_ms_deprecated is not None:
                log.warning("--hop-ms (KWSPI_HOP_MS) is deprecated: use --stride-ms (KWSPI_STRIDE_MS)")
                stride_ms = hop_ms_deprecated
            return command(*args, stride_ms=stride_ms, **kwargs)

        run = click.option("--hop-ms", "hop_ms_deprecated", type=click.IntRange(min=1), default=None, hidden=True,
                           **old_env)(run)
        return click.option("--stride-ms", "stride_ms", type=click.IntRange(min=1), default=DEFAULT_STRIDE_MS,
                            show_default=True, help="Milliseconds between two model windows (20 to 1000).",
                            **extra)(run)

    return decorate


def parse_thresholds(values) -> dict[str, float] | None:
    """``--threshold`` values (``T`` or ``LABEL=T``) as a mapping; ``T`` becomes ``"default"``."""
    out = {}
    for value in values:
        label, sep, number = value.rpartition("=")
        try:
            t = float(number)
        except ValueError:
            raise click.BadParameter(f"{value!r} is neither T nor LABEL=T (T a number in (0, 1])",
                                     param_hint="--threshold") from None
        out[label.strip() if sep else "default"] = t
    return out or None


# --- options made from a config class ------------------------------------------------------


def config_options(cls):
    """A decorator adding one click option (or argument) per setting of the config class
    ``cls`` and of the configs nested in it, with the dataclass's defaults and help."""
    params = []
    for owner, f in _settings(cls):
        params += _params(owner, f)

    def decorate(command):
        for param in reversed(params):
            command = param(command)
        return command

    return decorate


def config_from_options(cls, kwargs: dict):
    """The config ``cls`` from the keyword arguments click passed (see :func:`config_options`);
    the arguments it used are removed from ``kwargs``."""
    values = {}
    for f in dataclasses.fields(cls):
        hint = value_type(cls, f)
        if is_config(hint):
            values[f.name] = config_from_options(hint, kwargs)
            continue
        if not f.metadata.get("cli", True):
            continue
        value = kwargs.pop(f.name)
        if f.metadata["none_flag"] and kwargs.pop(f"{f.name}__none"):
            value = None
        if f.metadata["alias"]:
            old = kwargs.pop(f"{f.name}__alias")
            if old is not None:
                log.warning("%s is deprecated: use %s", f.metadata["alias"], _flag(f))
                value = old
        if isinstance(f.default, tuple) and isinstance(value, str):
            value = _parse_tuple(value, _element_type(f), _flag(f))
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    try:
        return cls(**values)
    except ValueError as e:
        raise KwspiError(str(e)) from None


def _settings(cls):
    for f in dataclasses.fields(cls):
        hint = value_type(cls, f)
        if is_config(hint):
            yield from _settings(hint)
        elif f.metadata.get("cli", True):
            yield cls, f


def _flag(f) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def _element_type(f):
    t = f.metadata["type"]
    return t if t in (int, float) else str


def _parse_tuple(value: str, element, flag: str) -> tuple:
    try:
        return tuple(element(x.strip()) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated {element.__name__} values, got {value!r}",
                                 param_hint=flag) from None


def _params(owner, f) -> list:
    meta, required = f.metadata, f.default is dataclasses.MISSING
    if meta["argument"]:
        return [click.argument(f.name, type=meta["type"], metavar=meta["metavar"])]
    names = [_flag(f)] + ([meta["short"]] if meta["short"] else [])
    help_text = meta["help"]
    if isinstance(f.default, bool):
        return [click.option(*names, f.name, is_flag=True, default=f.default, help=help_text)]
    if isinstance(f.default, tuple) and meta["repeat"]:
        return [click.option(*names, f.name, multiple=True, type=meta["type"], default=f.default, help=help_text)]
    kw = dict(type=meta["type"], metavar=meta["metavar"], help=help_text)
    if required:
        kw["required"] = True
    elif isinstance(f.default, tuple):
        kw.update(type=str, default=",".join(str(v) for v in f.default), show_default=meta["show"] or True)
    elif f.default is None:
        kw["default"] = None
        if meta["show"]:
            kw["help"] = f"{help_text} [default: {meta['show']}]"
    else:
        kw.update(default=f.default, show_default=meta["show"] or True)
    params = [click.option(*names, f.name, **kw)]
    if meta["none_flag"]:
        flag, flag_help = meta["none_flag"]
        params.append(click.option(flag, f"{f.name}__none", is_flag=True, help=flag_help))
    if meta["alias"]:
        params.append(click.option(meta["alias"], f"{f.name}__alias", type=meta["type"], default=None, hidden=True))
    return params
