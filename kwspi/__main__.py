"""``python -m kwspi``: the ``kwspi`` command, for when the script is not on PATH."""

from kwspi.cli import main

main(prog_name="kwspi")
