"""Settings as data: frozen dataclasses whose fields carry their command-line help.

A config class derives from :class:`Config` and declares each field with :func:`setting`.
:func:`kwspi.options.config_options` turns it into click options with the dataclass's
defaults (nothing else states a default), :func:`kwspi.options.config_from_options` builds
it back from click's arguments, :meth:`Config.to_argv` writes the command line that rebuilds
it, and :meth:`Config.to_json`/:meth:`Config.from_json` store it, rejecting unknown keys by
name. Click types appear in the metadata because click is the one CLI library here; nothing
in this module draws or parses a command line.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import field
from pathlib import Path

import click

from kwspi.errors import KwspiError

REQUIRED = dataclasses.MISSING
EXISTING_DIR = click.Path(file_okay=False, exists=True, path_type=Path)
DIR = click.Path(file_okay=False, path_type=Path)
EXISTING_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)
FILE = click.Path(dir_okay=False, path_type=Path)
POSITIVE = click.IntRange(min=1)
COUNT = click.IntRange(min=0)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)
NON_NEGATIVE = click.FloatRange(min=0)


def setting(default=REQUIRED, help: str = "", *, flag: str | None = None, short: str | None = None,
            argument: bool = False,
            type=None, metavar: str | None = None, show: str | None = None, none_flag: tuple[str, str] | None = None,
            repeat: bool = False, alias: str | None = None, cli: bool = True, keyed_at_default: bool = True):
    """A config field and how the command line shows it.

    ``flag``: the option name (default ``--field-name``), ``short`` a one-letter name too; ``argument``: a positional
    argument instead; ``type``: a click type; ``show``: what ``--help`` prints as the
    default when the value itself says little; ``none_flag``: ``(flag, help)`` of a flag that
    sets the field to ``None``; ``repeat``: a tuple given by repeating the option (else a tuple
    is comma-separated); ``alias``: an older option name, accepted with a deprecation warning;
    ``cli=False``: not on the command line; ``keyed_at_default=False``: left out of the JSON
    while at its default, so a setting added later keeps the JSON, and every key hashed from
    it (a sweep step's), of the configs recorded before it.
    """
    meta = {"help": help, "flag": flag, "short": short, "argument": argument, "type": type, "metavar": metavar, "show": show,
            "none_flag": none_flag, "repeat": repeat, "alias": alias, "cli": cli, "keyed_at_default": keyed_at_default}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults: use a tuple")
    return field(default=default, metadata=meta)


def value_type(cls, f: dataclasses.Field):
    """The field's type with ``X | None`` reduced to ``X`` (``typing`` resolves the string)."""
    hint = typing.get_type_hints(cls)[f.name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def is_config(hint) -> bool:
    return isinstance(hint, type) and issubclass(hint, Config)


class Config:
    """What every config class has: JSON in and out, and its command line."""

    #: The ``kwspi`` command this config is the view of (``None``: a part of another config).
    COMMAND: typing.ClassVar[str | None] = None

    def to_dict(self) -> dict:
        return json.loads(self.to_json())

    def to_json(self) -> str:
        return json.dumps(_plain(self), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise KwspiError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}")
        kwargs = {}
        for name, value in d.items():
            hint = value_type(cls, names[name])
            if is_config(hint) and isinstance(value, dict):
                value = hint.from_dict(value)
            elif isinstance(value, list):
                value = tuple(Path(v) if typing.get_args(hint) and typing.get_args(hint)[0] is Path else v
                              for v in value)
            elif hint is Path and value is not None:
                value = Path(value)
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    def to_argv(self) -> list[str]:
        """``[COMMAND, args...]``: the ``kwspi`` command line of this config; settings at
        their default are left out."""
        return ([self.COMMAND] if self.COMMAND else []) + _argv(self)


def _plain(cfg: Config) -> dict:
    """``dataclasses.asdict``, less the settings at their default that are not keyed there."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not f.metadata.get("keyed_at_default", True) and value == f.default:
            continue
        out[f.name] = _plain(value) if isinstance(value, Config) else value
    return out


def _argv(cfg: Config) -> list[str]:
    args, options = [], []
    for f in dataclasses.fields(cfg):
        value, meta = getattr(cfg, f.name), f.metadata
        if is_config(value_type(type(cfg), f)):
            options += _argv(value)
            continue
        if not meta.get("cli", True) or (f.default is not REQUIRED and value == f.default):
            continue
        if meta["argument"]:
            args.append(str(value))
            continue
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        if value is None:
            options.append(meta["none_flag"][0])
        elif isinstance(value, bool):
            options.append(flag)  # a flag whose default is False
        elif isinstance(value, tuple) and meta["repeat"]:
            options += [x for v in value for x in (flag, str(v))]
        elif isinstance(value, tuple):
            options += [flag, ",".join(_text(v) for v in value)]
        else:
            options += [flag, _text(value)]
    return args + options


def _text(value) -> str:
    # repr, not %g: a float must come back from the command line as the same float.
    return repr(value) if isinstance(value, float) else str(value)


def parse_names(value: str | None) -> tuple[str, ...] | None:
    """``"a,b, c"`` -> ``("a", "b", "c")``; ``None`` stays ``None`` (meaning: all)."""
    if value is None:
        return None
    return tuple(x.strip() for x in value.split(",") if x.strip())
