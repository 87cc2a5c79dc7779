import ast
import json
from pathlib import Path

import numpy as np
import pytest

from kwspi.train import augment
from kwspi.train.augment import AugmentConfig, AugmentResources, augment_waveform

RATE = 16000
N = RATE  # one 1-s clip
SHIFT_ONLY = AugmentConfig(background_noise=False)
NOISE_ONLY = AugmentConfig(time_shift=False)


def ones_noise(length=3 * RATE):
    return AugmentResources(RATE, (np.ones(length, np.float32),))


def draw_shift(rng, cfg=SHIFT_ONLY) -> int:
    """The shift in samples one draw applies, read off a single impulse."""
    x = np.zeros(N, np.float32)
    x[N // 2] = 1.0
    y = augment_waveform(x, rng, cfg, AugmentResources(RATE))
    (pos,) = np.flatnonzero(y)
    return int(pos) - N // 2


def draw_volume(rng, cfg=NOISE_ONLY) -> float:
    """The noise volume v one draw applies: silence mixed with all-ones noise is v everywhere."""
    y = augment_waveform(np.zeros(N, np.float32), rng, cfg, ones_noise())
    assert np.ptp(y) < 1e-7
    return float(y[0])


def test_shift_moves_content_and_fills_with_zeros():
    x = np.arange(1, 11, dtype=np.float32)
    assert augment.shift(x, 3).tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    assert augment.shift(x, -2).tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 0, 0]
    assert augment.shift(x, 0).tolist() == x.tolist()
    assert not augment.shift(x, 10).any() and not augment.shift(x, -25).any()
    assert x.tolist() == list(range(1, 11))  # the input is untouched


def test_time_shift_is_whole_ms_in_the_papers_range():
    rng = np.random.default_rng(0)
    shifts = np.array([draw_shift(rng) for _ in range(3000)])
    assert np.all(shifts % 16 == 0)  # whole milliseconds at 16 kHz
    ms = shifts // 16
    assert ms.min() == -100 and ms.max() == 99  # randint(-100, 100): [-100, 100)
    assert len(np.unique(ms)) > 190  # close to uniform over all 200 values
    assert abs(ms.mean() + 0.5) < 3


def test_time_shift_zero_fills_the_gap():
    rng = np.random.default_rng(1)
    for _ in range(50):
        y = augment_waveform(np.ones(N, np.float32), rng, SHIFT_ONLY, AugmentResources(RATE))
        gap = N - int(y.sum())
        assert gap % 16 == 0 and gap <= 1600
        if gap:
            zeros = np.flatnonzero(y == 0)
            assert zeros[0] == 0 or zeros[-1] == N - 1  # one contiguous run at one end
            assert len(zeros) == gap and np.all(np.diff(zeros) == 1)


def test_time_shift_scales_with_the_sample_rate():
    rng = np.random.default_rng(2)
    x = np.ones(8000, np.float32)
    outs = [augment_waveform(x, rng, SHIFT_ONLY, AugmentResources(8000)) for _ in range(300)]
    gaps = {8000 - int(y.sum()) for y in outs}
    assert all(g % 8 == 0 for g in gaps) and max(gaps) <= 800


def test_noise_is_mixed_with_probability_0_8_at_volume_up_to_0_1():
    rng = np.random.default_rng(3)
    v = np.array([draw_volume(rng) for _ in range(4000)])
    mixed = v > 0
    assert mixed.mean() == pytest.approx(0.8, abs=0.025)
    assert v.min() >= 0 and v.max() <= 0.1
    assert v[mixed].max() > 0.099 and v[mixed].min() < 0.001
    assert v[mixed].mean() == pytest.approx(0.05, abs=0.003)  # U(0, 0.1)


def test_noise_mix_follows_the_authors_formula_and_tf_alternative():
    x = np.full(N, 0.5, np.float32)
    res = AugmentResources(RATE, (np.full(2 * N, -1.0, np.float32),))
    cfg = AugmentConfig(time_shift=False, noise_prob=1.0)
    y = augment_waveform(x, np.random.default_rng(4), cfg, res)
    v = (0.5 - y[0]) / 1.5  # 0.5 * (1 - v) + (-1) * v
    assert 0 < v <= 0.1 and np.allclose(y, 0.5 * (1 - v) - v)
    loud = AugmentResources(RATE, (np.full(2 * N, 1.0, np.float32),))
    tf = augment_waveform(np.full(N, 0.95, np.float32), np.random.default_rng(5),
                          AugmentConfig(time_shift=False, noise_prob=1.0, noise_mix="tf"), loud)
    assert tf.max() <= 1.0 and tf[0] > 0.95  # x + v * noise, clipped to [-1, 1]


def test_noise_excerpt_comes_from_a_random_file_and_offset():
    ramp = np.arange(3 * N, dtype=np.float32) / (3 * N)
    res = AugmentResources(RATE, (ramp, -ramp))
    cfg = AugmentConfig(time_shift=False, noise_prob=1.0)
    rng = np.random.default_rng(6)
    starts, signs = set(), set()
    for _ in range(40):
        y = augment_waveform(np.zeros(N, np.float32), rng, cfg, res)
        excerpt = y / (y[1] - y[0]) / (3 * N)  # undo the volume: back to ramp values
        assert np.allclose(np.diff(excerpt), excerpt[1] - excerpt[0], atol=1e-4)  # contiguous
        starts.add(round(abs(excerpt[0]) * 3 * N))
        signs.add(np.sign(y[-1]))
    assert len(starts) > 30  # random offsets
    assert signs == {1.0, -1.0}  # both files used


def test_noise_shorter_than_the_clip_is_repeated():
    short = np.linspace(-1, 1, 1000, dtype=np.float32)
    out = augment.noise_excerpt(short, N, np.random.default_rng(0))
    assert len(out) == N and np.array_equal(out[:1000], short) and np.array_equal(out[1000:2000], short)


def test_silence_gets_noise_too():
    res = AugmentResources(RATE, (np.random.default_rng(0).standard_normal(5 * RATE).astype(np.float32),))
    rng = np.random.default_rng(7)
    outs = [augment_waveform(np.zeros(N, np.float32), rng, AugmentConfig(), res) for _ in range(200)]
    noisy = np.mean([np.abs(y).max() > 0 for y in outs])
    assert noisy == pytest.approx(0.8, abs=0.08)


def test_without_noise_recordings_the_noise_step_does_nothing():
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    y = augment_waveform(x, np.random.default_rng(0), NOISE_ONLY, AugmentResources(RATE))
    assert np.array_equal(x, y)


def test_same_seed_same_output_other_seed_other_output():
    res = AugmentResources(RATE, (np.random.default_rng(0).standard_normal(5 * RATE).astype(np.float32),))
    x = np.random.default_rng(1).standard_normal(N).astype(np.float32)
    cfg = AugmentConfig(noise_prob=1.0)
    a = augment_waveform(x, np.random.default_rng(42), cfg, res)
    b = augment_waveform(x, np.random.default_rng(42), cfg, res)
    c = augment_waveform(x, np.random.default_rng(43), cfg, res)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, x)


def test_disabled_steps_leave_the_clip_alone():
    x = np.random.default_rng(1).standard_normal(N).astype(np.float32)
    off = AugmentConfig(time_shift=False, background_noise=False)
    assert not off.any_enabled and AugmentConfig().any_enabled
    assert np.array_equal(augment_waveform(x, np.random.default_rng(0), off, ones_noise()), x)
    f = np.ones((10, 49), np.float32)
    assert np.array_equal(augment.augment_features(f, np.random.default_rng(0), AugmentConfig()), f)


def test_config_json_and_hash_are_canonical():
    cfg = AugmentConfig()
    d = json.loads(cfg.to_json())
    assert d["shift_ms"] == 100 and d["noise_prob"] == 0.8 and d["noise_max"] == 0.1
    assert d["noise_mix"] == "paper" and d["augment_version"] == augment.AUGMENT_VERSION
    assert list(d) == sorted(d)
    assert cfg.hash() == AugmentConfig().hash() and len(cfg.hash()) == 16
    changes = [dict(shift_ms=50), dict(noise_prob=0.5), dict(noise_max=0.2),
               dict(time_shift=False), dict(background_noise=False), dict(noise_mix="tf")]
    others = [AugmentConfig(**c) for c in changes]
    assert len({cfg.hash()} | {o.hash() for o in others}) == 1 + len(others)


@pytest.mark.parametrize(
    "bad", [dict(shift_ms=-1), dict(noise_prob=1.5), dict(noise_max=-0.1), dict(noise_mix="add")]
)
def test_config_rejects_invalid_values(bad):
    with pytest.raises(ValueError):
        AugmentConfig(**bad)


def test_every_step_has_a_config_flag():
    names = {f for f in AugmentConfig.__dataclass_fields__}
    for flag, step in augment.WAVEFORM_STEPS + augment.FEATURE_STEPS:
        assert flag in names and callable(step)


def test_augment_module_does_not_import_torch():
    tree = ast.parse(Path(augment.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "torch" not in imported and "numpy" in imported
