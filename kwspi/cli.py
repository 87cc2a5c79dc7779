"""The ``kwspi`` command line: one click group, its commands loaded only when called.

Commands that need torch live in :mod:`kwspi.train` and are imported lazily, so
``kwspi --help`` and the listening commands never load torch. Errors a user caused
(:class:`~kwspi.errors.KwspiError`) print one line and exit with status 2.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from kwspi import __version__
from kwspi.errors import KwspiError

#: command name -> "module:attribute" of its click command
LAZY_COMMANDS = {
    "synth": "kwspi.train.cli:synth",
}


class LazyGroup(click.Group):
    """A click group that imports each command's module only when that command runs."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name].split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as e:
                if e.name and e.name.split(".")[0] in {"torch", "onnx", "onnxscript"}:
                    raise click.ClickException(
                        f"`kwspi {name}` needs {e.name}: pip install 'kwspi[train]'"
                    ) from None
                raise
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KwspiError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kwspi")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose):
    """Streaming keyword spotting for the Raspberry Pi.

    Synthesize or point at a Google Speech Commands folder, train and quantize a
    model, then listen to a microphone or a WAV file and call your code when a
    keyword is heard.

    \b
    Example:
      kwspi synth data/synth --speakers 40
    """
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose + 1, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
