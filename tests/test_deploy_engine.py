"""The streaming engine: chunking invariance, timing of windows, hops, model swaps."""

import dataclasses

import numpy as np
import pytest

from deploy_fixtures import LABELS, centroid_model, int8_model, make_stream, save_model, centroid_graph, \
    graph_that_breaks_at_run_time, shared_centroid_model
from kwspi.deploy import Detector
from kwspi.deploy.decision import ThresholdError
from kwspi.deploy.engine import StrideError, StreamScorer
from kwspi.deploy.model import LoadedModel
from kwspi.features import FeatureConfig, mfcc
from kwspi.modelinfo import ModelFormatError, ModelInfo

EVENTS = [("low", 1.5), ("high", 4.0), ("_unknown_", 6.5), ("low", 9.0), ("high", 11.5)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return shared_centroid_model(tmp_path_factory)


@pytest.fixture(scope="module")
def stream():
    return make_stream(EVENTS, 14.0)


def detections(detector, x, chunk):
    out = []
    for i in range(0, len(x), chunk):
        out += detector.process(x[i:i + chunk])
    return [(d.label, round(d.time, 6), d.score) for d in out]


def test_each_burst_fires_once_with_its_label_and_unknown_never(model, stream):
    found = detections(Detector(model), stream, 16000)
    # 0.4 s bursts: the 3-window mean crosses 0.6 as the burst's end enters the window.
    assert [(label, t) for label, t, _ in found] == [("low", 1.9), ("high", 4.4), ("low", 9.4), ("high", 11.9)]
    assert all(0.6 <= score <= 1.0 for *_, score in found)


@pytest.mark.parametrize("stride_ms", [20, 50, 100])
def test_detections_do_not_depend_on_chunk_size(model, stream, stride_ms):
    # openWakeWord's frame-size test, made exact: identical labels, times and scores.
    runs = [detections(Detector(model, stride_ms=stride_ms), stream, size) for size in (1, 160, 1000, 16000)]
    assert len(runs[0]) == 4
    assert all(r == runs[0] for r in runs[1:])


def test_int8_posteriors_do_not_depend_on_chunk_size(tmp_path_factory):
    pytest.importorskip("torch")  # to export the network
    x = make_stream([("low", 0.5), ("high", 1.7)], 3.0)
    m = LoadedModel.load(int8_model(tmp_path_factory))
    runs = []
    for size in (1, 160, 1000, 16000):
        scorer = StreamScorer(m, 100)
        runs.append([w for i in range(0, len(x), size) for w in scorer.push(x[i:i + size])])
    assert [w.time for w in runs[0]] == pytest.approx(np.arange(1.0, 3.01, 0.1))
    for run in runs[1:]:
        assert [w.time for w in run] == [w.time for w in runs[0]]
        np.testing.assert_array_equal(np.array([w.posteriors for w in run]), [w.posteriors for w in runs[0]])


def test_window_is_the_batch_front_end_of_the_last_second(model):
    # Warm-up: nothing before the first full second; then the window ending at `time` holds
    # the batch front end's frames of the second before it (int16 input works too).
    x = (make_stream([("high", 0.8)], 2.05) * 32768).astype(np.int16)
    m = LoadedModel.load(model)
    seen = []
    m_run = m.run
    m.run = lambda: (seen.append(m.window_buffer.copy()), m_run())[1]
    windows = StreamScorer(m, 100).push(x)
    assert [round(w.time, 6) for w in windows] == [round(1.0 + 0.1 * i, 6) for i in range(11)]
    batch = mfcc(x).astype(np.float32)
    for w, features in zip(windows, seen):
        last = int(round(w.time * 16000)) // 320 - 2  # frame t spans samples [320 t, 320 t + 640)
        np.testing.assert_allclose(features, batch[:, last - 48:last + 1], rtol=1e-5, atol=1e-4)
        # the window written in place scores exactly as the copying path does
        np.testing.assert_array_equal(w.posteriors, LoadedModel.load(model).posteriors(features))


def test_hop_lies_between_one_frame_and_one_window(model):
    for hop in (10, 0, 1020):
        with pytest.raises(StrideError, match=r"between the model's frame step \(20 ms\) and its window"):
            Detector(model, stride_ms=hop)


def test_hop_of_50_ms_gives_windows_at_frame_ends(model):
    windows = StreamScorer(LoadedModel.load(model), 50).push(make_stream([], 1.3))
    assert [round(w.time, 6) for w in windows] == [1.0, 1.04, 1.1, 1.14, 1.2, 1.24, 1.3]


def test_same_detections_at_other_hops(model, stream):
    # Times are quantised to the hop, so they agree to within one hop.
    base = detections(Detector(model, stride_ms=100), stream, 16000)
    for hop in (20, 50):
        other = detections(Detector(model, stride_ms=hop), stream, 16000)
        assert [label for label, *_ in other] == [label for label, *_ in base]
        assert np.abs(np.array([t for _, t, _ in other]) - [t for _, t, _ in base]).max() <= 0.1 + 1e-9


def test_reset_starts_a_new_stream(model, stream):
    det = Detector(model)
    first = detections(det, stream, 16000)
    det.reset()
    assert det.time == 0.0
    assert detections(det, stream, 16000) == first


def test_thresholds_come_from_metadata_and_overrides(tmp_path, model, stream):
    assert Detector(model).thresholds == {"low": 0.6, "high": 0.6}
    per_label = centroid_model(tmp_path / "m.onnx", thresholds={"default": 0.6, "high": 1.0})
    assert [label for label, *_ in detections(Detector(per_label), stream, 16000)] == ["low", "low"]
    assert Detector(model, thresholds={"low": 0.99}).thresholds == {"low": 0.99, "high": 0.6}
    with pytest.raises(ThresholdError, match="the model's keywords are: low, high"):
        Detector(model, thresholds={"yes": 0.5})


def test_replace_model_keeps_the_stream_running(tmp_path, model, stream):
    det = Detector(model)
    half = 8 * 16000
    before = detections(det, stream[:half], 16000)
    renamed = centroid_model(tmp_path / "renamed.onnx", labels=("_silence_", "_unknown_", "LOW", "HIGH"))
    det.replace_model(renamed)
    after = detections(det, stream[half:], 16000)
    assert [(label, t) for label, t, _ in before + after] == [
        ("low", 1.9), ("high", 4.4), ("LOW", 9.4), ("HIGH", 11.9)]  # same clock, no warm-up gap


def test_replace_model_with_the_same_front_end_scores_on_the_very_next_hop(tmp_path, model, stream):
    det = Detector(model)
    det.process(stream[: 8 * 16000])
    renamed = LoadedModel.load(centroid_model(tmp_path / "renamed.onnx",
                                              labels=("_silence_", "_unknown_", "LOW", "HIGH")))
    det.replace_model(renamed)
    seen = []
    run = renamed.run
    renamed.run = lambda: (seen.append(renamed.window_buffer.copy()), run())[1]
    windows = det.scorer.push(stream[8 * 16000: 8 * 16000 + 1600])  # exactly one hop
    assert [round(w.time, 6) for w in windows] == [8.1]  # no warm-up gap
    # and the new model saw the full carried-over window, the same one the old model would have
    reference = StreamScorer(LoadedModel.load(model), 100)
    expected = reference.push(stream[: 8 * 16000 + 1600])[-1]
    np.testing.assert_array_equal(seen[0], reference.model.window_buffer)
    np.testing.assert_array_equal(windows[0].posteriors, renamed.posteriors(reference.model.window_buffer))
    assert expected.time == windows[0].time


def test_replace_model_with_another_front_end_warms_up_again(tmp_path, model, stream):
    cfg20 = FeatureConfig(n_mfcc=20)
    det = Detector(model)
    detections(det, stream[: 9 * 16000], 16000)
    det.replace_model(centroid_model(tmp_path / "m20.onnx", cfg=cfg20))
    assert det.model.features == cfg20
    hop = 1600
    for i in range(9):  # 0.1 .. 0.9 s after the swap: the new front end's window is not full yet
        pos = 9 * 16000 + i * hop
        assert det.scorer.push(stream[pos:pos + hop]) == [], f"window {i + 1} hop(s) after the swap"
    assert [round(w.time, 6) for w in det.scorer.push(stream[9 * 16000 + 9 * hop: 10 * 16000])] == [10.0]
    det = Detector(model)
    detections(det, stream[: 9 * 16000], 16000)
    det.replace_model(centroid_model(tmp_path / "m20b.onnx", cfg=cfg20))
    windows = det.scorer.push(stream[9 * 16000: 11 * 16000])
    assert round(windows[0].time, 6) == 10.0  # a full window of the new front end first
    assert round(det.time, 6) == 11.0


def test_failed_replace_leaves_the_old_model(tmp_path, model, stream):
    det = Detector(model, thresholds={"low": 0.7})
    other = centroid_model(tmp_path / "other.onnx", labels=("_silence_", "_unknown_", "up", "down"))
    with pytest.raises(ThresholdError):
        det.replace_model(other)
    assert det.model.path == model
    assert [label for label, *_ in detections(det, stream, 16000)] == ["low", "high", "low", "high"]


def test_model_whose_shape_contradicts_its_metadata_is_refused(tmp_path):
    graph = centroid_graph(FeatureConfig())
    info = ModelInfo(labels=LABELS + ("extra",), features=FeatureConfig())
    path = save_model(graph, tmp_path / "m.onnx", info.to_metadata())
    with pytest.raises(ModelFormatError, match=r"output shape .* does not match its metadata"):
        LoadedModel.load(path)
    info = dataclasses.replace(info, labels=LABELS, features=FeatureConfig(clip_ms=800))
    path = save_model(centroid_graph(FeatureConfig()), tmp_path / "m2.onnx", info.to_metadata())
    with pytest.raises(ModelFormatError, match=r"input shape"):
        LoadedModel.load(path)


@pytest.mark.parametrize("how, reason", [("crashes", "fails on a window of zeros"), ("nan", "not finite"),
                                         ("wide", r"output shape \[1, 10\]")])
def test_model_that_breaks_at_its_first_window_is_refused_at_load(tmp_path, how, reason):
    cfg = FeatureConfig()
    path = save_model(graph_that_breaks_at_run_time(cfg, how), tmp_path / "m.onnx",
                      ModelInfo(labels=LABELS, features=cfg).to_metadata())
    with pytest.raises(ModelFormatError, match=reason) as e:
        LoadedModel.load(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
