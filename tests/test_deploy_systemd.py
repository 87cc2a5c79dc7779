"""The systemd unit: it parses cleanly and its hardening scores SAFE offline.

``systemd-analyze verify`` exits 0 even for unknown keys and bad values (it only prints
them), so the tests also require an empty stderr; it also insists that the ExecStart and
ExecReload binaries exist, hence a scratch root with stubs (``research/feasibility.md`` 6).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "kwspi.service"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")

NETWORK_DROP_IN = {"PrivateNetwork": "no", "IPAddressDeny": "", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6"}


def verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/kwspi.service").write_text(text)
    for line in text.splitlines():
        if re.match(r"Exec(Start|Reload)=", line):
            stub = root / line.split("=", 1)[1].split()[0].lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", "/etc/systemd/system/kwspi.service"],
                          capture_output=True, text=True, timeout=60)


def exposure(path: Path) -> float:
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout).group(1))


def test_unit_verifies_without_any_warning(tmp_path):
    out = verify(tmp_path, UNIT.read_text())
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_verify_would_notice_a_bad_key(tmp_path):
    out = verify(tmp_path, UNIT.read_text().replace("[Service]\n", "[Service]\nRestartt=always\n"))
    assert "Unknown key" in out.stderr


def test_unit_keeps_audio_working_settings():
    text = UNIT.read_text()
    settings = dict(line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z]\w+=", line))
    assert settings["MemoryDenyWriteExecute"] == "yes"  # safe: blocking reads, no ffi callbacks
    assert settings["SupplementaryGroups"] == "audio" and settings["DeviceAllow"] == "char-alsa rw"
    assert "PrivateDevices" not in settings and "PrivateUsers" not in settings
    assert settings["Restart"] == "on-failure"
    assert settings["Type"] == "notify" and settings["NotifyAccess"] == "main"  # READY=1 once listening
    assert 10 <= int(settings["WatchdogSec"]) <= 120  # the listen loop runs at least once a second
    assert "SIGHUP" in settings["RestartForceExitStatus"].split()  # death by SIGHUP is not a clean exit
    assert "OPENBLAS_NUM_THREADS=1" in settings["Environment"] and "OMP_NUM_THREADS=1" in settings["Environment"]
    assert "KWSPI_HOOK_PROCESS=1" in settings["Environment"].split()  # a busy hook never holds the GIL
    assert settings["ExecStart"].startswith("/opt/kwspi/venv/bin/kwspi listen")


def test_hardening_exposure_is_at_most_1_0(tmp_path):
    assert exposure(UNIT) <= 1.0


def test_the_documented_network_drop_in_stays_at_most_2_5(tmp_path):
    text = UNIT.read_text()
    for key, value in NETWORK_DROP_IN.items():
        assert f"#   {key}={value}" in text  # the comment in the unit shows this drop-in
        text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M)
    (tmp_path / "kwspi.service").write_text(text)
    assert 0.6 < exposure(tmp_path / "kwspi.service") <= 2.5


def test_env_example_names_only_real_options():
    from kwspi.deploy.cli import listen

    envvars = {p.envvar for p in listen.params if p.envvar}
    used = set(re.findall(r"^#?(KWSPI_[A-Z_]+)=", (SYSTEMD / "kwspi.env.example").read_text(), flags=re.M))
    assert used and used <= envvars, used - envvars
