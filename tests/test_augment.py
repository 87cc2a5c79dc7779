import ast
import json
from pathlib import Path

import numpy as np
import pytest

from kwspi.train.speech import augment
from kwspi.train.speech.augment import AugmentConfig, AugmentResources, augment_waveform

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


# --- beyond the paper: speed, reverb, eq, SNR range, SpecAugment ---------------------

def only(**on):
    """A config with just the named steps on."""
    return AugmentConfig(time_shift=False, background_noise=False, **on)


def peak_hz(x) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x))) * RATE / len(x))


def test_the_papers_config_keeps_its_json_and_hash_after_the_extras_were_added():
    # Cached features and stored checkpoints are keyed by this; the extras must not change it.
    assert AugmentConfig().to_json() == ('{"augment_version":1,"background_noise":true,"noise_max":0.1,'
                                         '"noise_mix":"paper","noise_prob":0.8,"shift_ms":100,"time_shift":true}')
    extra = augment.with_extras(["speed", "reverb", "eq", "snr", "specaugment"])
    assert AugmentConfig.from_json(extra.to_json()) == extra and extra.hash() != AugmentConfig().hash()
    assert AugmentConfig.from_json(AugmentConfig(rt60_s=(0.2, 0.3)).to_json()).rt60_s == (0.2, 0.3)
    with pytest.raises(ValueError, match="loud"):
        augment.with_extras(["loud"])


def test_speed_moves_the_pitch_by_the_drawn_factor_and_keeps_the_length():
    x = np.sin(2 * np.pi * 500 * np.arange(N) / RATE).astype(np.float32) * 0.5
    cfg = only(speed=True, speed_range=0.2)
    for seed in range(3):
        factor = np.random.default_rng(seed).uniform(0.8, 1.2)  # the step's first draw
        y = augment_waveform(x, np.random.default_rng(seed), cfg, AugmentResources(RATE))
        assert y.shape == x.shape and y.dtype == np.float32
        assert peak_hz(y[N // 4: 3 * N // 4]) == pytest.approx(500 * factor, abs=5)


def test_eq_gains_stay_within_the_range_and_zero_db_is_the_identity():
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32) * 0.05
    flat = augment_waveform(x, np.random.default_rng(1), only(eq=True, eq_db=0.0), AugmentResources(RATE))
    np.testing.assert_allclose(flat, x, atol=1e-6)
    y = augment_waveform(x, np.random.default_rng(1), only(eq=True, eq_db=6.0), AugmentResources(RATE))
    gain_db = 20 * np.log10(np.abs(np.fft.rfft(y))[1:] / np.abs(np.fft.rfft(x))[1:])
    assert gain_db.max() <= 6.01 and gain_db.min() >= -6.01 and np.ptp(gain_db) > 1.0


def test_reverb_adds_a_decaying_tail_at_the_same_loudness():
    x = np.zeros(N, np.float32)
    x[1000:2600] = np.sin(np.arange(1600) * 0.3) * 0.5  # 0.1 s burst, then silence
    y = augment_waveform(x, np.random.default_rng(0), only(reverb=True, reverb_prob=1.0, rt60_s=(0.4, 0.4)),
                         AugmentResources(RATE))
    assert augment.rms(y) == pytest.approx(augment.rms(x), rel=1e-3)
    tail_early, tail_late = np.abs(y[2800:4400]).mean(), np.abs(y[8000:9600]).mean()
    assert tail_early > 1e-3 and tail_late < tail_early / 10  # 0.1 s vs ~0.4 s after the burst
    h = augment.room_impulse(np.random.default_rng(0), 0.5, RATE)
    assert len(h) == RATE // 2 and h[0] == 1.0


def test_noise_at_a_drawn_snr_has_that_snr():
    x = np.sin(np.arange(N) * 0.05).astype(np.float32) * 0.1
    noise = np.random.default_rng(0).standard_normal(3 * N).astype(np.float32)
    mixed = augment.mix_at_snr(x, noise[:N], 12.0)
    assert 20 * np.log10(augment.rms(x) / augment.rms(mixed - x)) == pytest.approx(12.0, abs=0.01)
    cfg = AugmentConfig(time_shift=False, noise_prob=1.0, noise_mix="snr", snr_db=(5.0, 5.0))
    y = augment_waveform(x, np.random.default_rng(3), cfg, AugmentResources(RATE, (noise,)))
    assert 20 * np.log10(augment.rms(x) / augment.rms(y - x)) == pytest.approx(5.0, abs=0.01)


def test_spec_augment_masks_runs_with_the_coefficient_mean():
    f = np.random.default_rng(0).standard_normal((10, 49)).astype(np.float32)
    before = f.copy()
    cfg = AugmentConfig(spec_augment=True, time_masks=1, time_mask_frames=8, freq_masks=0)
    changed = [augment.spec_augment(f, np.random.default_rng(s), cfg) for s in range(20)]
    means = f.mean(axis=1, keepdims=True)
    for g in changed:
        cols = np.flatnonzero((g != f).any(axis=0))
        assert len(cols) <= 8 and (len(cols) == 0 or np.ptp(cols) == len(cols) - 1)  # one run of frames
        np.testing.assert_allclose(g[:, cols], np.broadcast_to(means, (10, len(cols))))
    assert any((g != f).any() for g in changed) and np.array_equal(f, before)
