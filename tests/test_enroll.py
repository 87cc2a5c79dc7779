"""kwspi enroll end to end on tone words: a tiny model trained on one "voice" (tones near
200-440 Hz) meets a user whose words are tones it never heard (1.1-1.9 kHz)."""

import json
import os
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import make_gsc
from kwspi.gsc import which_set
from deploy_fixtures import kwspi_command
from kwspi.cli import main
from kwspi.clips import load_clip
from kwspi.deploy import enroll
from kwspi.deploy.enroll import EnrollConfig, enroll_takes
from kwspi.deploy.engine import Detector
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.takes import read_takes
from kwspi.evaluate import evaluate_onnx
from kwspi.features import FeatureConfig, clip_features
from kwspi.modelinfo import decode_array, read_info
from kwspi.wavio import write_wav

RATE = 16000
gsc_unknown = "_unknown_"
WORDS = ("yes", "no", "up", "bed", "cat")  # make_gsc: tones at 200 + 60 * index Hz
KEYWORDS = "yes,no,up"
USER = {"yes": 560.0, "no": 680.0, "up": 800.0}  # the user's "voice"
OTHER = {"bed": 950.0, "cat": 1100.0}  # the user's other words, above their keywords


def user_clip(word: str, seed: int, start_s: float = 0.3, noise: float = 0.01) -> np.ndarray:
    """One second: the user's word (a tone with its octave, 0.35 s) in noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.35 * RATE)) / RATE
    f = {**USER, **OTHER}[word] * rng.uniform(0.97, 1.03)
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


def test_a_listener_reloads_into_the_enrolled_head(base, tmp_path):
    # kwspi listen's SIGHUP path: the base file is replaced by its enrolled version between
    # blocks; the user's "up", unheard before the reload, is heard after it.
    from kwspi.deploy.service import Listener

    model, _ = base
    path = tmp_path / "model.onnx"
    path.write_bytes(model.read_bytes())
    enrolled = enroll(model, write_takes(tmp_path / "me"))
    quiet = (0.01 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)
    said = np.concatenate([quiet, user_clip("up", seed=3), quiet])
    stream = np.concatenate([said, said])  # 6 s; the reload comes before block 6 (3.0 s)

    class Source:
        description = "scripted"

        def blocks(self, stop):
            for i, pos in enumerate(range(0, len(stream), RATE // 2)):
                if i == 6:
                    path.write_bytes(enrolled)
                    listener.reload()
                yield stream[pos:pos + RATE // 2]

    found = []
    listener = Listener(Source(), Detector(path, thresholds={"up": 0.6}), lambda: LoadedModel.load(path),
                        found.append)
    stats = listener.run()
    assert stats.reloads == 1 and [(d.label, d.time > 3.0) for d in found] == [("up", True)], found


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


def test_most_of_the_bank_is_other_speech_drawn_from_every_other_word_clip(base):
    # Training drew a tenth as many _unknown_ clips as it had keywords (about 12 here); the
    # bank wants 90 of other speech and takes every training clip of the other words there is.
    model, data = base
    other_words = [p for w in ("bed", "cat") for p in (data / w).glob("*.wav") if which_set(f"{w}/{p.name}") == "training"]
    info = read_info(model)
    labels = decode_array(info.bank["labels"])
    speech = labels == info.labels.index("_unknown_")
    assert len(labels) == 120 and 12 < len(other_words) < 90 and speech.sum() == len(other_words)
    assert len(np.unique(decode_array(info.bank["embeddings"])[speech], axis=0)) == len(other_words)


def test_thresholds_rise_until_the_new_head_fires_on_others_no_more_than_the_old():
    from kwspi.deploy.enroll import Examples, thresholds
    from kwspi.modelinfo import ModelInfo

    info = ModelInfo(labels=("yes", "_unknown_"), features=FeatureConfig(), thresholds={"default": 0.5})
    # 1-d embeddings: "yes" is positive. The old head fires on one other (x=0.6); the new head,
    # shifted, on three (x=0.3, 0.45, 0.6): the threshold must leave only one of them above it.
    ex = Examples(X=np.array([[1.0], [1.2]]), y=np.array([0, 0]), take=np.array([0, 1]))
    bank = (np.array([[-1.0], [0.0], [0.3], [0.45], [0.6]]), np.array([1, 1, 1, 1, 1]))
    old = (np.array([[4.0], [-4.0]]), np.array([-2.0, 2.0]))
    new = (np.array([[4.0], [-4.0]]), np.array([-0.5, 0.5]))
    p = lambda head, x: 1 / (1 + np.exp(-2 * (head[0][0, 0] * x + head[1][0])))
    assert sum(p(old, x) >= 0.5 for x in bank[0][:, 0]) == 1 and sum(p(new, x) >= 0.5 for x in bank[0][:, 0]) == 3
    t = thresholds(new, old, ex, bank, info)["yes"]
    assert p(new, 0.45) < t <= p(new, 0.6) + 1e-3
    assert thresholds(old, old, ex, bank, info)["yes"] == 0.5  # never below the model's own


def test_other_speech_longer_than_a_window_gives_every_window_of_it():
    from kwspi.deploy.enroll import windows

    talk = np.random.default_rng(0).standard_normal(3 * RATE).astype(np.float32)
    room = np.zeros(RATE * 2, np.float32) + 0.01
    got = windows(talk, room, EnrollConfig(speech_hop_s=0.5), np.random.default_rng(0))
    assert len(got) == 5 * 3  # windows at 0, 0.5, ..., 2 s; each clean and at two SNRs
    assert np.array_equal(got[3], talk[RATE // 2:RATE // 2 + RATE])


def test_the_users_other_speech_keeps_it_from_being_heard_as_keywords(base, tmp_path):
    # The user's other words sound near their keywords; enrolled without them, the head
    # takes them for keywords, and with a few seconds of them it learns they are not.
    model, _ = base
    plain = write_takes(tmp_path / "plain")
    talk = write_takes(tmp_path / "talk")
    (talk / "_unknown_").mkdir()
    said = np.concatenate([user_clip(w, seed=400 + n, start_s=0.3) for n in range(4) for w in OTHER])
    write_wav(talk / "_unknown_" / "talk.wav", said, RATE)
    heard = {}
    for folder in (plain, talk):
        enrolled = LoadedModel.load(_written(tmp_path / f"{folder.name}.onnx", enroll(model, folder)))
        other = [(gsc_unknown, user_clip(w, seed=s, start_s=0.1 + 0.1 * (s % 5), noise=0.03))
                 for w in OTHER for s in range(10)]
        heard[folder.name] = (accuracy(enrolled, other), accuracy(enrolled, user_test_clips()))
    assert heard["talk"][0] >= heard["plain"][0] + 0.3, heard
    assert heard["talk"][1] >= heard["plain"][1] - 0.1, heard


def _written(path, data: bytes):
    path.write_bytes(data)
    return path


def test_record_prompts_refuses_a_silent_take_and_enrolls_from_the_microphone(base, tmp_path):
    # ALSA's file plugin plays a raw file as the default microphone (tests/test_deploy_mic.py):
    # 2 s per take (the first one silent), 10 s of other speech, then the 20 s of room.
    pytest.importorskip("sounddevice", exc_type=OSError)
    from test_deploy_mic import ASOUNDRC

    model, _ = base
    quiet = lambda s: (0.001 * np.random.default_rng(int(s * 10)).standard_normal(int(s * RATE))).astype(np.float32)
    slots = [quiet(2.0)] + [np.concatenate([user_clip("yes", seed=200 + n, start_s=0.5), quiet(1.0)]) for n in range(2)]
    talk = [user_clip(w, seed=300 + n, start_s=0.3) for n in range(5) for w in OTHER]
    audio = np.concatenate(slots + talk + [quiet(25.0)])
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
    assert run.stderr.count("now talk for 10 s") == 1
    info = read_info(out)
    assert info.enrollment["takes"] == {"yes": 2} and info.enrollment["room_s"] == 20.0
    assert info.enrollment["unknown_takes"] == 1
