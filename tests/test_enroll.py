"""kwspi enroll end to end on tone words: a tiny model trained on one "voice" (tones near
200-440 Hz) meets a user whose words are tones it never heard (1.1-1.9 kHz)."""

import json
import os
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import make_gsc
from deploy_fixtures import kwspi_command
from kwspi.cli import main
from kwspi.clips import load_clip
from kwspi.deploy import enroll
from kwspi.deploy.enroll import EnrollConfig, enroll_takes
from kwspi.deploy.engine import Detector
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.takes import read_takes
from kwspi.evaluate import evaluate_onnx
from kwspi.features import clip_features
from kwspi.modelinfo import read_info
from kwspi.wavio import write_wav

RATE = 16000
WORDS = ("yes", "no", "up", "bed", "cat")  # make_gsc: tones at 200 + 60 * index Hz
KEYWORDS = "yes,no,up"
USER = {"yes": 560.0, "no": 680.0, "up": 800.0}  # the user's "voice"


def user_clip(word: str, seed: int, start_s: float = 0.3, noise: float = 0.01) -> np.ndarray:
    """One second: the user's word (a tone with its octave, 0.35 s) in noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.35 * RATE)) / RATE
    f = USER[word] * rng.uniform(0.97, 1.03)
    tone = 0.3 * np.sin(2 * np.pi * f * t) + 0.15 * np.sin(4 * np.pi * f * t)
    x = noise * rng.standard_normal(RATE)
    i = int(start_s * RATE)
    x[i:i + len(tone)] += tone * np.hanning(len(tone))
    return x.astype(np.float32)


def write_takes(folder, words=USER, takes=3, room=True):
    for word in words:
        (folder / word).mkdir(parents=True, exist_ok=True)
        for n in range(takes):
            write_wav(folder / word / f"me_nohash_{n}.wav", user_clip(word, seed=100 + n, start_s=0.2), RATE)
    if room:
        (folder / "_background_noise_").mkdir(exist_ok=True)
        rng = np.random.default_rng(7)
        write_wav(folder / "_background_noise_" / "room.wav", (0.02 * rng.standard_normal(8 * RATE)).astype(np.float32),
                  RATE)
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("enroll")
    data = make_gsc(tmp / "tones", words=WORDS, n_speakers=24, clips_per_speaker=2)
    run = tmp / "run"
    result = CliRunner().invoke(main, ["train", "dscnn-s", "--data", str(data), "--out", str(run), "--keywords",
                                       KEYWORDS, "--epochs", "15", "--batch-size", "32", "--lr", "0.1", "--views", "1"])
    assert result.exit_code == 0, result.output
    model = tmp / "base.onnx"
    result = CliRunner().invoke(main, ["export", str(run / "checkpoint.pt"), "--out", str(model),
                                       "--calibration-size", "100", "--bank-size", "120"])
    assert result.exit_code == 0, result.output
    return model, data


def accuracy(model: LoadedModel, clips) -> float:
    labels = model.info.labels
    return float(np.mean([labels[int(model.posteriors(clip_features(x)).argmax())] == w for w, x in clips]))


def user_test_clips():
    # Other positions, other noise than the takes: the same voice at other moments.
    return [(w, user_clip(w, seed=s, start_s=0.1 + 0.1 * (s % 5), noise=0.03)) for w in USER for s in range(10)]


def others_clips(data):
    return [(w, load_clip(p, RATE, RATE)[0]) for w in ("yes", "no", "up") for p in sorted((data / w).glob("*.wav"))]


def test_enrolled_model_hears_the_user_and_still_hears_the_others(base, tmp_path):
    model, data = base
    out = tmp_path / "mine.onnx"
    result = CliRunner().invoke(main, ["enroll", "--model", str(model), "--clips", str(write_takes(tmp_path / "me")),
                                       "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    before, after = LoadedModel.load(model), LoadedModel.load(out)
    mine, others = user_test_clips(), others_clips(data)
    assert accuracy(before, mine) <= 0.5
    assert accuracy(after, mine) >= accuracy(before, mine) + 0.4
    assert accuracy(after, others) >= accuracy(before, others) - 0.05
    summary = json.loads(result.output)
    assert summary["takes"] == {"yes": 3, "no": 3, "up": 3}
    held = summary["held_out_takes"]
    assert held["after"] > held["before"] and held["windows"] == 9 * 3 * 5  # takes x (clean + 2 SNRs) x shifts

    # kwspi eval scores the model listen runs: the enrolled head, not the graph's own layer.
    me = tmp_path / "me-test"
    for n, (w, x) in enumerate(user_test_clips()):
        (me / w).mkdir(parents=True, exist_ok=True)
        write_wav(me / w / f"me_nohash_{n}.wav", x, RATE)
    scored = {m: evaluate_onnx(m, me, "all")["per_class"] for m in (model, out)}
    for m, per_class in scored.items():
        engine = LoadedModel.load(m)
        for w in USER:
            clips = [(w, x) for v, x in user_test_clips() if v == w]
            assert per_class[w] == pytest.approx(accuracy(engine, clips), abs=1e-4)


def test_the_bank_keeps_one_keyword_from_taking_over(base, tmp_path):
    # Enrolling "yes" alone: without the bank the re-fit learns that everything is "yes".
    model, data = base
    takes = read_takes(write_takes(tmp_path / "me", words={"yes": 0}), LoadedModel.load(model).info.labels)
    with_bank = LoadedModel.load(_written(tmp_path / "a.onnx", enroll_takes(model, takes)))
    no_bank = LoadedModel.load(_written(tmp_path / "b.onnx", enroll_takes(model, takes, EnrollConfig(bank_share=0))))
    others = others_clips(data)
    base_acc = accuracy(LoadedModel.load(model), others)
    assert accuracy(with_bank, others) >= base_acc - 0.05
    assert accuracy(no_bank, others) < accuracy(with_bank, others) - 0.1
    assert accuracy(with_bank, [c for c in user_test_clips() if c[0] == "yes"]) >= 0.9


def test_the_enrolled_file_keeps_the_graph_and_tells_what_it_learned(base, tmp_path):
    model, _ = base
    data = enroll(model, write_takes(tmp_path / "me", takes=2, room=False))
    out = _written(tmp_path / "mine.onnx", data)
    info, base_info = read_info(out), read_info(model)
    assert info.enrollment["base_sha256"] and info.enrollment["takes"] == {"yes": 2, "no": 2, "up": 2}
    assert info.enrollment["room_s"] == 0 and info.head and info.labels == base_info.labels
    assert out.stat().st_size < 250_000
    assert all(0 < v <= 1 for v in info.thresholds.values())
    text = CliRunner().invoke(main, ["info", str(out)]).output
    assert "enrolled    from base.onnx" in text and "held_out_takes" in text
    # The engine listens with the enrolled head: the user's "up" is heard in a stream.
    quiet = (0.01 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)
    stream = np.concatenate([quiet, user_clip("up", seed=3), quiet])
    found = Detector(LoadedModel.load(out), thresholds={"up": 0.6}).process(stream)
    assert [d.label for d in found] == ["up"], found
    assert Detector(LoadedModel.load(model), thresholds={"up": 0.6}).process(stream) == []


def test_bad_input_is_one_line_and_exit_2(base, tmp_path):
    model, _ = base
    old = tmp_path / "old.onnx"
    from kwspi.modelfile import write_model
    from dataclasses import replace

    write_model(model, replace(read_info(model), embedding={}, classifier={}, bank={}), old)
    silent = write_takes(tmp_path / "silent", words={"yes": 0}, room=False)
    write_wav(silent / "yes" / "quiet.wav", np.zeros(RATE, np.float32), RATE)
    stranger = write_takes(tmp_path / "stranger", room=False)
    (stranger / "hello").mkdir()
    write_wav(stranger / "hello" / "a.wav", user_clip("yes", 1), RATE)
    (tmp_path / "empty" / "_unknown_").mkdir(parents=True)
    cases = [
        (["--clips", str(tmp_path / "empty")], "no keyword folder"),
        (["--clips", str(stranger)], "does not know hello"),
        (["--clips", str(silent)], "quiet.wav: silent"),
        (["--clips", str(write_takes(tmp_path / "ok")), "--model", str(old)], "re-export it with `kwspi export`"),
        (["--record", "--keywords", "yes,hello"], "does not know hello"),
    ]
    for args, message in cases:
        if "--model" not in args:
            args = args + ["--model", str(model)]
        result = CliRunner().invoke(main, ["enroll", *args, "--out", str(tmp_path / "x.onnx")])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.onnx").exists()


def _written(path, data: bytes):
    path.write_bytes(data)
    return path


def test_record_prompts_refuses_a_silent_take_and_enrolls_from_the_microphone(base, tmp_path):
    # ALSA's file plugin plays a raw file as the default microphone (tests/test_deploy_mic.py):
    # 2 s per take (the first one silent), then the 20 s of room.
    pytest.importorskip("sounddevice", exc_type=OSError)
    from test_deploy_mic import ASOUNDRC

    model, _ = base
    quiet = lambda s: (0.001 * np.random.default_rng(int(s * 10)).standard_normal(int(s * RATE))).astype(np.float32)
    slots = [quiet(2.0)] + [np.concatenate([user_clip("yes", seed=200 + n, start_s=0.5), quiet(1.0)]) for n in range(2)]
    audio = np.concatenate(slots + [quiet(25.0)])
    home = tmp_path / "home"
    home.mkdir()
    (home / "mic.raw").write_bytes(np.round(audio * 32767).astype("<i2").tobytes())
    (home / ".asoundrc").write_text(ASOUNDRC.format(raw=home / "mic.raw"))
    out = tmp_path / "mine.onnx"
    run = subprocess.run(kwspi_command("enroll", "--model", str(model), "--record", "--keywords", "yes", "--takes", "2",
                                       "--out", str(out)),
                         capture_output=True, text=True, env={**os.environ, "HOME": str(home)}, timeout=120)
    assert run.returncode == 0, run.stderr
    prompts = [line for line in run.stderr.splitlines() if line.startswith("say ")]
    assert prompts == ["say 'yes' (1 of 2)", "say 'yes' (1 of 2)", "say 'yes' (2 of 2)"]
    assert "that take was silent" in run.stderr and "recording 20 s of the room" in run.stderr
    info = read_info(out)
    assert info.enrollment["takes"] == {"yes": 2} and info.enrollment["room_s"] == 20.0
