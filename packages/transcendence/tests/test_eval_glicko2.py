"""Glicko-2 against Glickman's worked example, and order (in)dependence of the two methods."""

import random

import pytest

from lab_transcendence.glicko2 import Rating, Result, expected_score, rate_period, rate_sequential


def test_glickman_worked_example():
    # Glickman (2013), "Example of the Glicko-2 system": 1500/200/0.06 vs 1400/30 (win), 1550/100 (loss),
    # 1700/300 (loss), tau = 0.5 -> r' = 1464.06, RD' = 151.52, sigma' = 0.05999.
    games = [Result(1400, 30, 1.0), Result(1550, 100, 0.0), Result(1700, 300, 0.0)]
    r = rate_period(Rating(1500, 200, 0.06), games, tau=0.5)
    assert r.rating == pytest.approx(1464.06, abs=0.01)
    assert r.rd == pytest.approx(151.52, abs=0.01)
    assert r.vol == pytest.approx(0.05999, abs=1e-5)


def test_period_is_order_free_sequential_is_not():
    rng = random.Random(0)
    games = [Result(rng.choice([1554, 1867, 2148]), 0.0, rng.choice([0.0, 0.5, 1.0])) for _ in range(60)]
    start = Rating(1500, 500, 0.06)
    ref = rate_period(start, games)
    seq = []
    for _ in range(5):
        rng.shuffle(games)
        r = rate_period(start, games)
        assert r.rating == pytest.approx(ref.rating, abs=1e-9)
        assert r.rd == pytest.approx(ref.rd, abs=1e-9)
        seq.append(rate_sequential(start, games).rating)
    assert max(seq) - min(seq) > 1.0  # the paper's game-by-game update depends on the order


def test_no_games_only_grows_deviation():
    r = rate_period(Rating(1600, 100, 0.06), [])
    assert r.rating == 1600 and r.rd > 100


def test_expected_score_is_elo_for_fixed_opponent():
    assert expected_score(1900, 1500, 0) == pytest.approx(1 / (1 + 10 ** (-400 / 400)), abs=1e-3)
    assert expected_score(1500, 1500) == pytest.approx(0.5)
