import sys

import click
from click.testing import CliRunner

from kwspi import __version__, cli
from kwspi.errors import KwspiError


def test_help_lists_commands_and_teaches():
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    for name in cli.LAZY_COMMANDS:
        assert name in result.output


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name in cli.main.list_commands(None):
        result = runner.invoke(cli.main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Example:" in result.output, name


def test_lazy_help_matches_each_command():
    for name, (_, short_help) in cli.LAZY_COMMANDS.items():
        assert cli.main.get_command(None, name).short_help == short_help, name


def test_version():
    result = CliRunner().invoke(cli.main, ["--version"])
    assert __version__ in result.output


def test_user_errors_are_one_line_with_status_2(monkeypatch):
    @click.command()
    def boom():
        """Fails as a user mistake would."""
        raise KwspiError("model.onnx: not an ONNX file")

    monkeypatch.setattr(cli.main, "commands", {**cli.main.commands, "boom": boom})
    result = CliRunner().invoke(cli.main, ["boom"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: model.onnx: not an ONNX file"


def test_missing_torch_names_the_install_command(monkeypatch):
    monkeypatch.setitem(cli.LAZY_COMMANDS, "needs-torch", ("torch:nn", "Needs torch."))
    monkeypatch.setitem(sys.modules, "torch", None)
    result = CliRunner().invoke(cli.main, ["needs-torch"])
    assert result.exit_code == 2
    assert "pip install 'kwspi[train]'" in result.output
    assert "Traceback" not in result.output


def test_python_dash_m_kwspi_is_the_kwspi_command():
    import subprocess

    done = subprocess.run([sys.executable, "-m", "kwspi", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("Usage: kwspi ")
