import json

import numpy as np
import pytest
import python_speech_features as psf
from hypothesis import given, settings
from hypothesis import strategies as st

from kwspi.errors import FeatureConfigError
from kwspi.features import CMVN_MODES, FeatureConfig, StreamingMfcc, clip_features, cmvn_, frame_count, mfcc


def _speechlike(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    envelope = np.clip(np.sin(2 * np.pi * 1.3 * t), 0, None)
    return 0.3 * envelope * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(n)


def test_defaults_give_the_paper_input_shape():
    cfg = FeatureConfig()
    assert (cfg.win_samples, cfg.hop_samples, cfg.n_frames) == (640, 320, 49)
    assert mfcc(np.zeros(16000), cfg).shape == (10, 49)
    assert clip_features(np.zeros(12345, np.float32), FeatureConfig(n_mfcc=40)).shape == (40, 49)


def test_matches_python_speech_features_reference():
    x = _speechlike(16000)
    cfg = FeatureConfig(n_mfcc=20)
    ref = psf.mfcc(x, 16000, 0.04, 0.02, 20, 40, 1024, 0, 8000, 0.97, 22, True, np.hamming)
    np.testing.assert_allclose(mfcc(x, cfg), ref.T, rtol=0, atol=1e-9)


def test_int16_and_float_input_agree():
    x = (_speechlike(8000) * 32767).astype(np.int16)
    np.testing.assert_allclose(mfcc(x), mfcc(x.astype(np.float64) / 32768), atol=1e-12)


def test_digital_silence_is_finite_and_floored():
    f = mfcc(np.zeros(16000))
    assert np.isfinite(f).all()
    assert f[0].min() == pytest.approx(np.log(1e-10))


def test_partial_trailing_frame_is_not_padded():
    cfg = FeatureConfig()
    assert frame_count(639, cfg) == 0
    assert frame_count(640, cfg) == 1
    assert frame_count(959, cfg) == 1
    assert frame_count(960, cfg) == 2
    assert mfcc(np.zeros(959), cfg).shape == (10, 1)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 9000),
    cuts=st.lists(st.integers(0, 9000), max_size=25),
    n_mfcc=st.sampled_from([10, 20, 30, 40]),
    append_energy=st.booleans(),
)
def test_streaming_equals_batch_for_any_chunking(n, cuts, n_mfcc, append_energy):
    cfg = FeatureConfig(n_mfcc=n_mfcc, append_energy=append_energy)
    x = _speechlike(n, seed=n)
    bounds = sorted({0, n, *[c for c in cuts if c <= n]})
    stream = StreamingMfcc(cfg)
    parts = [stream.push(x[a:b]) for a, b in zip(bounds, bounds[1:])]
    got = np.concatenate(parts, axis=1) if parts else np.zeros((n_mfcc, 0))
    want = mfcc(x, cfg)
    assert got.shape == want.shape
    assert stream.frames_emitted == want.shape[1]
    if want.size:
        assert np.abs(got - want).max() < 1e-9


def test_streaming_reset_starts_over():
    x = _speechlike(4000)
    s = StreamingMfcc()
    first = s.push(x)
    s.push(_speechlike(3000, seed=5))
    s.reset()
    np.testing.assert_array_equal(s.push(x), first)


def test_naive_per_chunk_mfcc_would_differ():
    # Guards the reason StreamingMfcc exists: restarting pre-emphasis per chunk is wrong.
    cfg = FeatureConfig()
    x = _speechlike(16000)
    whole = mfcc(x, cfg)
    naive = mfcc(x[320 * 10: 320 * 10 + 640], cfg)[:, 0]
    assert np.abs(naive - whole[:, 10]).max() > 1e-3


def test_json_round_trip_and_hash():
    cfg = FeatureConfig(n_mfcc=20)
    text = cfg.to_json()
    assert json.loads(text)["frontend_version"] == 1
    assert FeatureConfig.from_json(text) == cfg
    assert cfg.hash() == FeatureConfig(n_mfcc=20).hash()
    assert cfg.hash() != FeatureConfig(n_mfcc=10).hash()
    assert len(cfg.hash()) == 16


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.update(frontend_version=99), "version 99"),
        (lambda d: d.update(colour="red"), "unknown keys"),
        (lambda d: d.update(window="kaiser"), "window"),
        (lambda d: d.update(n_fft=512), "n_fft"),
    ],
)
def test_from_json_refuses_what_it_cannot_reproduce(mutate, match):
    d = json.loads(FeatureConfig().to_json())
    mutate(d)
    with pytest.raises(FeatureConfigError, match=match):
        FeatureConfig.from_json(json.dumps(d))


def test_invalid_configs_are_refused():
    with pytest.raises(FeatureConfigError):
        FeatureConfig(n_mfcc=41)
    with pytest.raises(FeatureConfigError):
        FeatureConfig(hop_ms=50)
    with pytest.raises(FeatureConfigError):
        FeatureConfig(high_hz=9000.0)
    with pytest.raises(FeatureConfigError, match="not valid JSON"):
        FeatureConfig.from_json("{")


# --- per-window cepstral normalisation ------------------------------------------------------


def test_cmvn_is_keyed_only_when_on():
    # Hashes of front ends made before the field existed (they name caches and models).
    assert FeatureConfig().hash() == "24ce4e7008cd4ebd"
    assert FeatureConfig(n_mfcc=40).hash() == "076d4af9017a013a"
    assert "cmvn" not in json.loads(FeatureConfig().to_json())
    hashes = {FeatureConfig(cmvn=mode).hash() for mode in CMVN_MODES}
    assert len(hashes) == 3
    for mode in CMVN_MODES:
        assert FeatureConfig.from_json(FeatureConfig(cmvn=mode).to_json()).cmvn == mode
    with pytest.raises(FeatureConfigError, match="cmvn"):
        FeatureConfig(cmvn="global")
    # A model exported before the field existed: no cmvn key, the same hash, no normalisation.
    from kwspi.modelinfo import bundled_model_path, read_info
    assert read_info(bundled_model_path()).features.cmvn == "none"


def test_cmvn_normalises_each_coefficient_over_the_window():
    x = np.random.default_rng(0).standard_normal(16000) * 0.1
    plain = clip_features(x)
    mean = clip_features(x, FeatureConfig(cmvn="mean"))
    meanvar = clip_features(x, FeatureConfig(cmvn="meanvar"))
    np.testing.assert_allclose(mean.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(mean.std(axis=1), plain.std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(meanvar.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(meanvar.std(axis=1), 1, rtol=1e-4)
    assert meanvar.dtype == np.float32
    silence = clip_features(np.zeros(16000), FeatureConfig(cmvn="meanvar"))
    assert np.all(silence == 0)  # no spread, no division by zero


def test_cmvn_streaming_window_equals_the_batch_front_end(tmp_path):
    # The engine normalises the window it hands the model exactly as training's clip_features
    # normalises a clip: both call cmvn_ on the same float32 frames.
    from deploy_fixtures import centroid_graph, centroid_info, make_stream, save_model
    from kwspi.deploy.engine import StreamScorer
    from kwspi.deploy.model import LoadedModel

    cfg = FeatureConfig(cmvn="meanvar")
    path = save_model(centroid_graph(FeatureConfig()), tmp_path / "m.onnx", centroid_info(cfg).to_metadata())
    m = LoadedModel.load(path)
    assert m.features == cfg
    seen = []
    m_run = m.run
    m.run = lambda: (seen.append(m.window_buffer.copy()), m_run())[1]
    x = make_stream([("high", 0.8)], 1.65)
    windows = StreamScorer(m, 100).push(x)
    batch = mfcc(x).astype(np.float32)
    assert len(seen) == len(windows) == 7
    for w, window in zip(windows, seen):
        last = int(round(w.time * 16000)) // 320 - 2
        expected = cmvn_(batch[:, last - 48:last + 1].copy(), "meanvar")
        np.testing.assert_allclose(window, expected, rtol=1e-4, atol=1e-4)
        assert np.abs(window.mean(axis=1)).max() < 1e-5
    first = x[:16000]
    np.testing.assert_array_equal(clip_features(first, cfg), cmvn_(clip_features(first), "meanvar"))
