"""Hooks in a process of their own (``--hook-process``): same results, another interpreter."""

import json
import logging
import os
import time

import pytest
from click.testing import CliRunner

from deploy_fixtures import make_stream, shared_centroid_model, write_wav
from kwspi import cli
from kwspi.deploy.decision import Detection
from kwspi.deploy.hookproc import ProcessHook
from kwspi.deploy.hooks import HookError, HookSet

HOOK = """
import os, sys
def on_detect(d):
    with open({out!r}, "a") as f:
        f.write(f"{{os.getpid()}} {{d.label}} {{d.time}}\\n")
    if d.label == "die":
        os._exit(3)
    if d.label == "raise":
        raise ValueError("bad luck")
"""


@pytest.fixture
def hook_file(tmp_path):
    out = tmp_path / "calls.txt"
    (tmp_path / "h.py").write_text(HOOK.format(out=str(out)))
    return f"{tmp_path}/h.py:on_detect", out


def calls(out):
    return [line.split() for line in out.read_text().splitlines()] if out.exists() else []


def test_listen_with_hook_process_calls_the_hook_in_another_process(tmp_path, tmp_path_factory, hook_file):
    spec, out = hook_file
    wav = write_wav(tmp_path / "s.wav", make_stream([("high", 1.5), ("low", 4.0)], 6.0))
    result = CliRunner().invoke(cli.main, ["listen", "--model", str(shared_centroid_model(tmp_path_factory)),
                                           "--input", str(wav), "--json", "--hook-process", "--hook", spec])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["label"] for line in result.stdout.splitlines()] == ["high", "low"]
    got = calls(out)
    assert [label for _, label, _ in got] == ["high", "low"]
    assert len({pid for pid, _, _ in got}) == 1 and int(got[0][0]) != os.getpid()


def test_a_hook_process_that_raises_or_dies_is_logged_and_the_next_detection_arrives(hook_file, caplog):
    spec, out = hook_file
    hooks = HookSet([(spec, ProcessHook(spec))])
    with caplog.at_level(logging.WARNING):
        for label in ("raise", "one", "die", "two"):
            hooks(Detection(label, 0.9, 1.0, time.time()))
            deadline = time.monotonic() + 30
            while len(calls(out)) < ["raise", "one", "die", "two"].index(label) + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert hooks.close(30) == 0
    got = calls(out)
    assert [label for _, label, _ in got] == ["raise", "one", "die", "two"]
    assert got[0][0] == got[2][0] != got[3][0]  # a new process after the one that died
    assert "ValueError: bad luck" in caplog.text and "ended with status 3; it starts again" in caplog.text


def test_a_hook_the_process_cannot_load_is_one_line(tmp_path):
    with pytest.raises(HookError, match=r"hook '.*nothere.py:f': no such file"):
        ProcessHook(f"{tmp_path}/nothere.py:f")
