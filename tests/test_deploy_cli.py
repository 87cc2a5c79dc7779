"""``kwspi listen`` and ``kwspi devices`` in-process: output formats, hooks, and every user error."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from deploy_fixtures import FakeSounddevice, centroid_graph, make_stream, save_model, shared_centroid_model, \
    write_wav
from kwspi import cli
from kwspi.features import FeatureConfig
from kwspi.modelinfo import ModelInfo

EVENTS = [("high", 1.5), ("low", 4.0), ("_unknown_", 6.5), ("high", 9.0)]
EXPECTED = [("high", 1.9), ("low", 4.4), ("high", 9.4)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(shared_centroid_model(tmp_path_factory))


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return str(write_wav(tmp_path_factory.mktemp("wav") / "s.wav", make_stream(EVENTS, 11.0)))


def invoke(*args):
    return CliRunner().invoke(cli.main, ["listen", *args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_json_output_is_one_flushed_object_per_detection(model, wav):
    result = invoke("--model", model, "--input", wav, "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["label"], r["time"]) for r in rows] == EXPECTED
    assert all(set(r) == {"label", "score", "time"} and 0.6 <= r["score"] <= 1 for r in rows)


def test_human_output_and_thresholds_from_the_command_line(model, wav):
    result = invoke("--model", model, "--input", wav)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[2] for line in lines] == ["high", "low", "high"]
    assert lines[0].split()[:2] == ["1.90", "s"]
    only_low = invoke("--model", model, "--input", wav, "--threshold", "0.6", "--threshold", "high=1.0", "--json")
    assert [json.loads(line)["label"] for line in only_low.stdout.splitlines()] == ["low"]


def test_exec_runs_with_label_score_and_time(model, wav, tmp_path):
    out = tmp_path / "exec.txt"
    result = invoke("--model", model, "--input", wav, "--exec", f'echo "$KWSPI_LABEL $KWSPI_TIME" >> {out}')
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == [f"{label} {t:.3f}" for label, t in EXPECTED]


def test_hooks_get_detections_and_a_raising_hook_does_not_stop_the_next(model, wav, tmp_path, caplog):
    log = tmp_path / "hook.log"
    (tmp_path / "h.py").write_text(
        "import json\n"
        "n = 0\n"
        "def on_detect(d):\n"
        "    global n\n"
        "    n += 1\n"
        "    if n == 1:\n"
        "        raise ValueError('first one fails')\n"
        f"    open({str(log)!r}, 'a').write(json.dumps([d.label, d.time, d.wall_time > 1e9]) + '\\n')\n"
    )
    result = invoke("--model", model, "--input", wav, "--hook", f"{tmp_path}/h.py:on_detect")
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in log.read_text().splitlines()] == [["low", 4.4, True], ["high", 9.4, True]]
    assert "first one fails" in caplog.text


def test_bad_model_files_are_one_line_errors(tmp_path, wav):
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    plain = save_model(centroid_graph(FeatureConfig()), tmp_path / "plain.onnx", None)
    meta = ModelInfo(labels=("_silence_", "_unknown_", "low", "high"), features=FeatureConfig()).to_metadata()
    future = save_model(centroid_graph(FeatureConfig()), tmp_path / "future.onnx",
                        {**meta, "kwspi.features": meta["kwspi.features"].replace('"frontend_version":1',
                                                                                  '"frontend_version":99')})
    cfg8k = FeatureConfig(sample_rate=8000, high_hz=4000.0)
    narrow = save_model(centroid_graph(cfg8k), tmp_path / "8k.onnx",
                        ModelInfo(labels=("_silence_", "_unknown_", "low", "high"), features=cfg8k).to_metadata())
    cases = [
        (narrow, "front end at 8000 Hz; the runtime listens at 16000 Hz"),
        (tmp_path / "missing.onnx", "no such file"),
        (tmp_path, "is a directory"),
        (tmp_path / "junk.onnx", "is not a valid ONNX model"),
        (plain, "lacks kwspi metadata"),
        (future, "front end version 99 is not supported"),
    ]
    for path, reason in cases:
        assert_one_line_error(invoke("--model", str(path), "--input", wav), str(path), reason)


def test_missing_bundled_model_is_a_one_line_error(monkeypatch, tmp_path, wav):
    import kwspi.modelinfo

    monkeypatch.setattr(kwspi.modelinfo, "bundled_model_path", lambda: tmp_path / "default.onnx")
    assert_one_line_error(invoke("--input", wav), str(tmp_path / "default.onnx"),
                          "the bundled model is missing from this install; pass --model PATH")


@pytest.mark.parametrize("content,reason", [(b"", "is empty"), (b"RIFF\x24\x00\x00\x00WAVEfmt ", "truncated")])
def test_bad_wav_is_a_one_line_error(model, tmp_path, content, reason):
    (tmp_path / "bad.wav").write_bytes(content)
    assert_one_line_error(invoke("--model", model, "--input", str(tmp_path / "bad.wav")), "bad.wav", reason)


def test_option_errors(model, wav, tmp_path):
    assert_one_line_error(invoke("--model", model, "--input", wav, "--threshold", "yes=0.5"),
                          "unknown label 'yes'", "keywords are: low, high")
    assert_one_line_error(invoke("--model", model, "--input", wav, "--stride-ms", "10"),
                          "between the model's frame step")
    assert_one_line_error(invoke("--model", model, "--input", wav, "--hook", "no_such_module_xyz:f"),
                          "cannot import no_such_module_xyz")
    (tmp_path / "h.py").write_text("x = 1\n")
    assert_one_line_error(invoke("--model", model, "--input", wav, "--hook", f"{tmp_path}/h.py:on_detect"),
                          "has no attribute 'on_detect'")
    for args in (["--threshold", "high"], ["--device", "x"], ["--realtime", "--device", "x"]):
        result = invoke("--model", model, "--input", wav, *args)
        assert result.exit_code == 2 and "Traceback" not in result.output


def test_devices_lists_inputs_or_says_there_are_none(monkeypatch):
    fake = FakeSounddevice([("USB PnP Sound Device", 1), ("HDMI out", 0), ("default", 32)], default=2)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    result = CliRunner().invoke(cli.main, ["devices"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[1].split() == ["0", "1", "48000", "USB", "PnP", "Sound", "Device"]
    assert lines[2].split() == ["*", "2", "32", "48000", "default"]
    assert "HDMI" not in result.output
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSounddevice([]))
    result = CliRunner().invoke(cli.main, ["devices"])
    assert result.exit_code == 0 and "No audio input devices found" in result.output


def test_microphone_errors_are_one_line(monkeypatch, model):
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSounddevice([]))
    assert_one_line_error(invoke("--model", model), "no audio input device found", "kwspi devices")
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSounddevice([("USB mic", 1), ("USB cam", 2)]))
    assert_one_line_error(invoke("--model", model, "--device", "blue"), "no input device matches 'blue'",
                          "[0] USB mic; [1] USB cam")
    assert_one_line_error(invoke("--model", model, "--device", "usb"), "several input devices match 'usb'")
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSounddevice([("USB mic", 1)], default=0, busy=True))
    assert_one_line_error(invoke("--model", model), "accepts none of", "(last error: ", "Device unavailable")
    monkeypatch.setitem(sys.modules, "sounddevice",
                        FakeSounddevice([("USB mic", 1)], default=0, start_error="Device unavailable [-9985]"))
    assert_one_line_error(invoke("--model", model), "cannot open input device [0] USB mic", "Device unavailable")


def test_missing_portaudio_names_the_package(monkeypatch, model):
    class NoPortAudio:
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    assert_one_line_error(invoke("--model", model), "PortAudio library not found", "apt install libportaudio2")
    assert_one_line_error(CliRunner().invoke(cli.main, ["devices"]), "libportaudio2")


def test_help_has_examples():
    for name in ("listen", "devices"):
        result = CliRunner().invoke(cli.main, [name, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output
    assert np  # numpy is imported for the fixtures' sake


def test_8_khz_input_is_warned_about_the_band_it_lacks(tmp_path, model, caplog):
    import logging

    from deploy_fixtures import make_stream as stream_at

    wav = write_wav(tmp_path / "phone.wav", stream_at([("low", 0.5)], 2.0, rate=8000), rate=8000)
    with caplog.at_level(logging.WARNING, logger="kwspi.deploy.cli"):
        result = invoke("--model", model, "--input", str(wav))
    assert result.exit_code == 0, result.output
    assert "8000 Hz input has nothing above 4000 Hz; the model listens up to 8000 Hz" in caplog.text


def test_kwspi_hook_takes_paths_with_spaces_and_several_hooks(model, wav, tmp_path):
    folder = tmp_path / "my hooks"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name} hook.py").write_text(
            f"def on_detect(d):\n    open({str(tmp_path / name)!r}, 'a').write(d.label + '\\n')\n")
    env = {"KWSPI_HOOK": f"{folder}/a hook.py:on_detect  {folder}/b hook.py:on_detect"}
    result = CliRunner().invoke(cli.main, ["listen", "--model", model, "--input", wav], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a").read_text().split() == (tmp_path / "b").read_text().split() == ["high", "low", "high"]
