"""Decision logic on hand-made posterior sequences, and the buffers in front of the model."""

import numpy as np
import pytest

from kwspi.deploy.decision import DecisionConfig, DecisionLogic, Detection, ThresholdError, resolve_thresholds
from kwspi.deploy.ringbuffer import FrameRing, StrideBuffer

LABELS = ("_silence_", "_unknown_", "yes", "no")


def post(yes=0.0, no=0.0, unknown=0.0):
    return np.array([1.0 - yes - no - unknown, unknown, yes, no])


def run(logic, sequence, stride_s=0.1, start=1.0):
    """Feed posteriors one window per hop; return (time, label) of each detection."""
    found = []
    for i, p in enumerate(sequence):
        d = logic.update(p, start + i * stride_s)
        if d is not None:
            found.append((round(d.time, 3), d.label))
    return found


def logic(thresholds=None, stride_s=0.1, smoothing_s=0.3, refractory_s=1.0, labels=LABELS, patience=1):
    thresholds = thresholds or {"yes": 0.5, "no": 0.5}
    return DecisionLogic(labels, thresholds, stride_s, DecisionConfig(smoothing_s, refractory_s, patience))


def test_one_word_fires_exactly_once_however_long_it_stays_high():
    word = [post()] * 3 + [post(yes=0.9)] * 25 + [post()] * 5
    assert run(logic(), word) == [(1.4, "yes")]  # the smoothed mean of 3 reaches 0.5 on the 2nd high window


def test_smoothing_ignores_a_single_spike_but_not_a_sustained_score():
    spike = [post()] * 3 + [post(yes=0.99)] + [post()] * 3
    assert run(logic(), spike) == []
    assert run(logic(smoothing_s=0.0), spike) == [(1.3, "yes")]  # no smoothing: one window is enough


def test_smoothing_is_time_based():
    # 0.3 s of smoothing: 3 windows at 100 ms, 15 at 20 ms, so the same audio gives the same decision.
    assert DecisionConfig(0.3).smoothing_windows(0.1) == 3
    assert DecisionConfig(0.3).smoothing_windows(0.02) == 15
    assert DecisionConfig(0.3).smoothing_windows(0.5) == 1
    spike_100 = [post()] * 3 + [post(yes=0.99)] * 1 + [post()] * 3  # 0.1 s high
    spike_20 = [post()] * 15 + [post(yes=0.99)] * 5 + [post()] * 15  # 0.1 s high
    assert run(logic(stride_s=0.1), spike_100) == run(logic(stride_s=0.02), spike_20, stride_s=0.02) == []


def test_patience_waits_for_that_many_windows_in_a_row_over_threshold():
    word = [post()] * 3 + [post(yes=0.9)] * 6 + [post()] * 12
    assert run(logic(smoothing_s=0.0, patience=1), word) == [(1.3, "yes")]
    assert run(logic(smoothing_s=0.0, patience=4), word) == [(1.6, "yes")]  # three windows later
    assert run(logic(smoothing_s=0.0, patience=7), word) == []  # six windows high: not enough
    broken = [post()] * 3 + ([post(yes=0.9)] * 2 + [post()]) * 5  # never three in a row
    assert run(logic(smoothing_s=0.0, patience=3), broken) == []
    assert run(logic(smoothing_s=0.0, patience=2), broken) == [(1.4, "yes"), (2.6, "yes")]  # refractory 1 s


def rule_without_patience(sequence, threshold=0.5, n=3, refractory_s=1.0, stride_s=0.1, start=1.0):
    """The decision rule as it was before patience, written out plainly."""
    found, armed, last = [], {"yes": True, "no": True}, {"yes": -np.inf, "no": -np.inf}
    for i in range(len(sequence)):
        t = start + i * stride_s
        smoothed = np.mean(sequence[max(0, i - n + 1):i + 1], axis=0)
        scores = {"yes": smoothed[2], "no": smoothed[3]}
        for k, v in scores.items():
            armed[k] |= v < threshold and t - last[k] >= refractory_s - 1e-9
        ready = [k for k, v in scores.items() if v >= threshold and armed[k]]
        if ready:
            k = max(ready, key=scores.get)
            armed[k], last[k] = False, t
            found.append((round(t, 3), k))
    return found


def test_patience_one_is_the_rule_without_patience():
    rng = np.random.default_rng(0)
    seq = [post(yes=a, no=b) for a, b, _ in rng.dirichlet([0.3, 0.3, 0.3], size=600)]
    fired = run(logic(patience=1), seq)
    assert len(fired) > 20 and DecisionConfig().patience == 1
    assert fired == rule_without_patience(seq)
    assert len(run(logic(patience=2), seq)) < len(fired)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_patience_must_be_a_whole_number_of_windows(bad):
    with pytest.raises(ValueError, match="patience"):
        DecisionConfig(patience=bad)


def test_threshold_is_per_keyword():
    seq = [post(yes=0.7)] * 5 + [post()] * 12 + [post(no=0.7)] * 5
    assert run(logic({"yes": 0.8, "no": 0.6}), seq) == [(2.9, "no")]


def test_rearms_only_after_score_fell_below_threshold_and_the_refractory_passed():
    high, low = post(yes=0.9), post()
    # Dips below threshold after 0.5 s: too early, the second word is ignored ...
    quick = [high] * 3 + [low] * 3 + [high] * 6 + [low] * 3
    assert run(logic(smoothing_s=0.0), quick) == [(1.0, "yes")]
    # ... whereas after the refractory (1 s) a new rise fires again.
    slow = [high] * 3 + [low] * 10 + [high] * 3
    assert run(logic(smoothing_s=0.0), slow) == [(1.0, "yes"), (2.3, "yes")]
    # Staying above threshold past the refractory never re-fires.
    assert run(logic(smoothing_s=0.0), [high] * 40) == [(1.0, "yes")]


def test_silence_and_unknown_never_fire():
    seq = [np.array([1.0, 0, 0, 0])] * 10 + [np.array([0.0, 1.0, 0, 0])] * 10
    everything = logic({"_silence_": 0.1, "_unknown_": 0.1, "yes": 0.5, "no": 0.5})
    assert run(everything, seq) == []


def test_at_most_one_detection_per_window_the_highest_score():
    both = [np.array([0.0, 0.0, 0.55, 0.45])] * 3
    assert run(logic({"yes": 0.4, "no": 0.4}, smoothing_s=0.0), both) == [(1.0, "yes"), (1.1, "no")]


def test_reset_rearms_and_forgets_history():
    lg = logic(smoothing_s=0.0)
    assert run(lg, [post(yes=0.9)] * 2) == [(1.0, "yes")]
    lg.reset()
    assert run(lg, [post(yes=0.9)], start=1.2) == [(1.2, "yes")]


def test_detection_json_shape():
    d = Detection("yes", 0.971234, 12.3400001, 1.7e9)
    assert d.as_json() == {"label": "yes", "score": 0.9712, "time": 12.34}


def test_resolve_thresholds():
    defaults = {"yes": 0.7, "no": 0.6}
    assert resolve_thresholds(LABELS, defaults) == {"yes": 0.7, "no": 0.6}
    assert resolve_thresholds(LABELS, defaults, 0.9) == {"yes": 0.9, "no": 0.9}
    assert resolve_thresholds(LABELS, defaults, {"no": 0.8}) == {"yes": 0.7, "no": 0.8}
    assert resolve_thresholds(LABELS, defaults, {"default": 0.9, "no": 0.8}) == {"yes": 0.9, "no": 0.8}
    with pytest.raises(ThresholdError, match=r"unknown label 'maybe'; the model's keywords are: yes, no"):
        resolve_thresholds(LABELS, defaults, {"maybe": 0.5})
    with pytest.raises(ThresholdError, match="never fires"):
        resolve_thresholds(LABELS, defaults, {"_unknown_": 0.5})
    with pytest.raises(ThresholdError, match=r"in \(0, 1\]"):
        resolve_thresholds(LABELS, defaults, 1.5)


def test_hop_buffer_regroups_any_chunking_into_identical_blocks():
    x = np.random.default_rng(0).standard_normal(10_000)
    want = x[: 10_000 // 1600 * 1600].reshape(-1, 1600)
    for size in (1, 7, 1600, 1601, 10_000):
        hb = StrideBuffer(1600)
        blocks = [b for i in range(0, len(x), size) for b in hb.split(x[i:i + size])]
        np.testing.assert_array_equal(np.array(blocks), want)
        assert hb.pending == 10_000 % 1600


def test_frame_ring_keeps_the_last_frames_in_order():
    ring = FrameRing(2, 5)
    frames = np.arange(2 * 13, dtype=np.float32).reshape(13, 2).T  # [2, 13], column t = (2t, 2t+1)
    for chunk in (frames[:, :3], frames[:, 3:4], frames[:, 4:11], frames[:, 11:13]):
        ring.extend(chunk)
    assert ring.full and ring.count == 13
    np.testing.assert_array_equal(ring.window(), frames[:, 8:13])
    ring.reset()
    ring.extend(frames[:, :2])
    assert not ring.full
    np.testing.assert_array_equal(ring.window()[:, -2:], frames[:, :2])


def test_reset_disarmed_waits_for_the_score_to_drop_first():
    lg = logic(smoothing_s=0.0)
    lg.reset(armed=False)
    assert run(lg, [post(yes=0.9)] * 3 + [post()] + [post(yes=0.9)]) == [(1.4, "yes")]
