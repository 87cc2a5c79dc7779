"""The Pi install has no torch: importing the runtime side must never load it."""

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
{stmt}
print(json.dumps(sorted(m for m in ("torch", "onnx", "sounddevice") if m in sys.modules)))
"""


@pytest.mark.parametrize(
    "stmt",
    [
        "import kwspi",
        "import kwspi.deploy",
        "import kwspi.cli",
        "import kwspi.gsc, kwspi.wavio, kwspi.features",
        "import kwspi.deploy.evaluation.calibrate, kwspi.modelfile",
        "import kwspi.train.speech.synth, kwspi.train.speech.stream, kwspi.train.data, kwspi.train.config",
        "from click.testing import CliRunner; import kwspi.cli as c; CliRunner().invoke(c.main, ['train', '--help'])",
        "from click.testing import CliRunner; import kwspi.cli as c; CliRunner().invoke(c.main, ['--help'])",
    ],
)
def test_runtime_side_loads_neither_torch_nor_sounddevice(stmt):
    out = subprocess.run([sys.executable, "-c", PROBE.format(stmt=stmt)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_probe_would_notice_torch():
    # The check above is only meaningful if the probe can see a loaded torch.
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(stmt="import torch")], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == ["torch"]


def test_the_command_line_starts_before_the_front_end_loads():
    # kwspi listen installs its signal handlers in main(); everything imported before that
    # is time in which a SIGHUP from systemd would kill it. scipy is the heavy part.
    probe = "import sys, kwspi.cli; print('scipy' in sys.modules, 'kwspi.features' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
