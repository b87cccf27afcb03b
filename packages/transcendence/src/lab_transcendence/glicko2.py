"""Glicko-2 (Glickman, "Example of the Glicko-2 system", 2013), written out here.

Two ways to rate a player from a list of games against opponents of known rating:
- `rate_period`: all games form ONE rating period. The update is a function of the multiset of
  results, so the game order cannot change the answer (the method we report).
- `rate_sequential`: the paper's code, one rating period per game. The same record can give ratings
  tens of points apart depending on the order, which is why it is only an option for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SCALE = 173.7178  # Glicko-2 internal scale: mu = (r - 1500) / SCALE


@dataclass(frozen=True)
class Rating:
    """A Glicko-2 rating on the public (Elo-like) scale."""

    rating: float = 1500.0
    rd: float = 350.0
    vol: float = 0.06


@dataclass(frozen=True)
class Result:
    """One game from the rated player's side: the opponent's rating, deviation and the score (1, 0.5, 0)."""

    opp_rating: float
    opp_rd: float
    score: float


def _g(phi: float) -> float:
    return 1.0 / math.sqrt(1.0 + 3.0 * phi * phi / (math.pi * math.pi))


def _expected(mu: float, mu_j: float, phi_j: float) -> float:
    return 1.0 / (1.0 + math.exp(-_g(phi_j) * (mu - mu_j)))


def _new_volatility(phi: float, sigma: float, delta: float, v: float, tau: float, eps: float = 1e-6) -> float:
    """Step 5 of the algorithm: the Illinois variant of regula falsi on f(x)."""
    a = math.log(sigma * sigma)

    def f(x: float) -> float:
        ex = math.exp(x)
        num = ex * (delta * delta - phi * phi - v - ex)
        den = 2.0 * (phi * phi + v + ex) ** 2
        return num / den - (x - a) / (tau * tau)

    big_a = a
    if delta * delta > phi * phi + v:
        big_b = math.log(delta * delta - phi * phi - v)
    else:
        k = 1
        while f(a - k * tau) < 0:
            k += 1
        big_b = a - k * tau
    f_a, f_b = f(big_a), f(big_b)
    for _ in range(200):
        if abs(big_b - big_a) <= eps:
            break
        big_c = big_a + (big_a - big_b) * f_a / (f_b - f_a)
        f_c = f(big_c)
        if f_c * f_b <= 0:
            big_a, f_a = big_b, f_b
        else:
            f_a = f_a / 2.0
        big_b, f_b = big_c, f_c
    return math.exp(big_a / 2.0)


def rate_period(player: Rating, results: Iterable[Result], tau: float = 0.5) -> Rating:
    """One Glicko-2 rating period: update `player` from all `results` at once (order-free)."""
    results = list(results)
    mu = (player.rating - 1500.0) / SCALE
    phi = player.rd / SCALE
    if not results:  # step 6 only: the deviation grows, the rating stays
        phi_star = math.sqrt(phi * phi + player.vol * player.vol)
        return Rating(player.rating, phi_star * SCALE, player.vol)
    v_inv = 0.0
    delta_sum = 0.0
    for r in results:
        mu_j = (r.opp_rating - 1500.0) / SCALE
        phi_j = r.opp_rd / SCALE
        g = _g(phi_j)
        e = _expected(mu, mu_j, phi_j)
        v_inv += g * g * e * (1.0 - e)
        delta_sum += g * (r.score - e)
    v = 1.0 / v_inv
    delta = v * delta_sum
    sigma = _new_volatility(phi, player.vol, delta, v, tau)
    phi_star = math.sqrt(phi * phi + sigma * sigma)
    phi_new = 1.0 / math.sqrt(1.0 / (phi_star * phi_star) + 1.0 / v)
    mu_new = mu + phi_new * phi_new * delta_sum
    return Rating(1500.0 + SCALE * mu_new, SCALE * phi_new, sigma)


def rate_sequential(player: Rating, results: Sequence[Result], tau: float = 0.5) -> Rating:
    """The paper's method: one rating period per game, in the given order (order-dependent)."""
    for r in results:
        player = rate_period(player, [r], tau)
    return player


def expected_score(rating: float, opp_rating: float, opp_rd: float = 0.0) -> float:
    """Glicko-2's expected score of `rating` against an opponent (Elo's formula when opp_rd = 0)."""
    return _expected((rating - 1500.0) / SCALE, (opp_rating - 1500.0) / SCALE, opp_rd / SCALE)
