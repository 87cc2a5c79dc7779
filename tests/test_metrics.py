import numpy as np

from kwspi.metrics import classification_report, softmax


def test_report_by_hand():
    r = classification_report([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["a", "b", "c", "d"])
    assert r["accuracy"] == 4 / 6 and r["n"] == 6
    assert r["per_class"] == {"a": 0.5, "b": 1.0, "c": 2 / 3, "d": None}
    assert r["confusion"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]


def test_softmax_is_stable_and_normalised():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])
