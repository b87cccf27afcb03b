"""Continual-learning metrics on a known accuracy matrix."""

import pytest

from lab_sfa.metrics import mean_std, summarize


def test_summarize_known_matrix():
    R = [
        [0.9, 0.1, 0.2],
        [0.6, 0.8, 0.3],
        [0.5, 0.7, 0.7],
    ]
    m = summarize(R, r0=[0.1, 0.1, 0.1])
    assert m["acc"] == pytest.approx((0.5 + 0.7 + 0.7) / 3)
    assert m["plasticity"] == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    assert m["bwt"] == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    assert m["forgetting"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)
    assert m["fwt"] == pytest.approx(((0.1 - 0.1) + (0.3 - 0.1)) / 2)


def test_summarize_single_task_and_bad_shape():
    assert summarize([[0.7]]) == {"acc": 0.7, "plasticity": 0.7, "bwt": 0.0, "forgetting": 0.0}
    with pytest.raises(ValueError):
        summarize([[0.1, 0.2]])


def test_mean_std():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(2**0.5))
    assert mean_std([5.0]) == (5.0, 0.0)
