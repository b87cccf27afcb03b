"""Synthetic expert presets, and the round robin that shows whether their plurality vote is stronger.

`noisy` (for the transcendence question): experts that are individually weak in different ways --
random-move rates 0.3..0.6, each its own blind spot and its own search depth -- so their errors rarely
coincide and the plurality vote (the T -> 0 limit of a model of their mixture) is much stronger than any
of them. `vote_round_robin` measures exactly that: the vote and every expert in one round robin, fitted
by maximum-likelihood Elo (the vote pinned at 0, so each expert's figure is its gap to the vote).
"""

from __future__ import annotations

import random
from pathlib import Path

from lab_shared.errors import LabError
from lab_transcendence.synth import Expert, Vote, fit_elo, play_many, player_spec, score_of

PRESETS = ("default", "noisy")
# (random-move rate, search depth) of the noisy experts, strongest first; blind spots are dealt by seed.
NOISY = [(0.3, 1), (0.4, 2), (0.5, 3), (0.6, 2)]


def noisy_experts(k: int, seed: int = 0) -> list[Expert]:
    """K experts: rates 0.3..0.6 and depths 1-3 (cycled), distinct blind spots (N B R Q, shuffled)."""
    if k < 2:
        raise LabError("the noisy preset needs at least 2 experts")
    rng = random.Random(f"noisy-{seed}")
    spots = ["N", "B", "R", "Q"]
    rng.shuffle(spots)
    out = []
    for i in range(k):
        if k <= len(NOISY):
            rate, depth = NOISY[round(i * (len(NOISY) - 1) / max(1, k - 1))]
        else:
            rate = round(0.3 + 0.3 * i / (k - 1), 3)
            depth = NOISY[i % len(NOISY)][1]
        out.append(Expert(name=f"expert{i}", random_rate=rate, blind_spot=spots[i % len(spots)], depth=depth))
    return out


def preset_experts(preset: str, k: int, seed: int, depth: int) -> list[Expert]:
    from lab_transcendence.synth import default_experts

    if preset == "noisy":
        return noisy_experts(k, seed)
    if preset == "default":
        return default_experts(k, seed, depth)
    raise LabError(f"unknown synth preset {preset!r} (choose {', '.join(PRESETS)})")


def vote_round_robin(
    experts: list[Expert],
    stockfish: str | Path,
    games: int,
    seed: int = 0,
    workers: int = 1,
    max_plies: int = 300,
) -> dict:
    """Vote + experts, every pair `games` games (colours alternating). Scores, crosstable, Elo vs the vote."""
    players: list[Expert | Vote] = [Vote(experts), *experts]
    tasks = []
    for i, a in enumerate(players):
        for b in players[i + 1 :]:
            for g in range(games):
                w, bl = (a, b) if g % 2 == 0 else (b, a)
                tasks.append((len(tasks), player_spec(w), player_spec(bl), seed, max_plies, "vote-rr"))
    records = []
    for _, g in play_many(tasks, stockfish, workers):
        records.append((g["white"], g["black"], score_of(g["result"])))
    fit = fit_elo(records, {"vote": 0.0}, prior_mean=0.0, prior_sd=1000.0)
    totals: dict[str, list[float]] = {p.name: [0.0, 0] for p in players}
    for w, b, s in records:
        totals[w][0] += s
        totals[w][1] += 1
        totals[b][0] += 1 - s
        totals[b][1] += 1
    rows = []
    for p in players:
        rows.append(
            {
                "player": p.name,
                "random_rate": getattr(p, "random_rate", None),
                "blind_spot": getattr(p, "blind_spot", None),
                "depth": getattr(p, "depth", None),
                "score": round(totals[p.name][0] / max(1, totals[p.name][1]), 3),
                "games": totals[p.name][1],
                "elo_vs_vote": 0.0 if p.name == "vote" else round(fit.ratings[p.name], 1),
                "se": 0.0 if p.name == "vote" else round(fit.se[p.name], 1),
            }
        )
    return {"games_per_pair": games, "rows": rows, "crosstable": fit.crosstable}


def format_round_robin(rr: dict) -> str:
    from lab_shared.report import markdown_table

    return markdown_table(rr["rows"], floatfmt=".3g")
