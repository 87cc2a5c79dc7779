"""``kwspi eval`` on a folder with clips that cannot be read: they are skipped and counted."""

import json
import struct

from click.testing import CliRunner

from conftest import make_gsc
from deploy_fixtures import centroid_model
from kwspi import cli, gsc


def test_eval_skips_and_counts_unreadable_clips_and_reads_streamed_headers(tmp_path):
    data = make_gsc(tmp_path / "gsc", words=("yes", "no", "up"), n_speakers=24)
    model = centroid_model(tmp_path / "m.onnx", labels=("yes", "no", "_silence_", "_unknown_"))
    tests = sorted(p for p in data.glob("yes/*.wav") if gsc.which_set(f"yes/{p.name}") == "testing")
    rate_0, text, streamed = tests[:3]
    raw = bytearray(rate_0.read_bytes())
    raw[24:28] = struct.pack("<I", 0)
    rate_0.write_bytes(bytes(raw))
    text.write_text("not audio")
    raw = bytearray(streamed.read_bytes())
    raw[40:44] = struct.pack("<I", 0xFFFFFFFF)  # what `arecord -t wav -` leaves in a file
    streamed.write_bytes(bytes(raw))
    result = CliRunner().invoke(cli.main, ["eval", "--model", str(model), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["skipped"] == 2


def test_eval_breaks_a_synthetic_set_down_by_engine_and_voice(tmp_path):
    import numpy as np

    from kwspi.evaluate import breakdown

    y, pred = np.array([0, 1, 1, 2, 3]), np.array([0, 1, 0, 2, 0])
    catalogue = {"a": {"engine": "piper", "voice": "joe"}, "b": {"engine": "espeak", "voice": "en-us"}}
    by_engine = breakdown(y, pred, ["a", "a", "b", None, "b"], catalogue, "engine")
    assert by_engine == {"espeak": {"accuracy": 0.0, "n": 2}, "piper": {"accuracy": 1.0, "n": 2}}  # silence left out
    assert set(breakdown(y, pred, ["a", "a", "b", None, "b"], catalogue, "voice")) == {"espeak:en-us", "piper:joe"}

    data = make_gsc(tmp_path / "gsc", words=("yes", "no", "up"), n_speakers=24)
    model = centroid_model(tmp_path / "m.onnx", labels=("yes", "no", "_silence_", "_unknown_"))
    ids = sorted({gsc.speaker_of(p.name) for p in data.glob("*/*.wav")})
    rows = [f"{s},{'rhvoice' if i % 2 else 'mbrola'},v{i % 3}" for i, s in enumerate(ids)]
    (data / gsc.CATALOGUE).write_text("speaker,engine,voice\n" + "\n".join(rows) + "\n")
    report = json.loads(CliRunner().invoke(cli.main, ["eval", "--model", str(model), "--data", str(data),
                                                      "--json"]).stdout)
    assert set(report["per_engine"]) == {"mbrola", "rhvoice"}
    silence = sum(report["confusion"][2])  # labels: yes, no, _silence_, _unknown_
    assert sum(v["n"] for v in report["per_engine"].values()) == report["n"] - silence
