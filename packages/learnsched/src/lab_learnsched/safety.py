"""The safety net: a learned scheduler is used only if it beats the best heuristic on validation episodes.

`best_heuristic(score)` picks, among `schedulers.HEURISTICS`, the rule with the fewest mean reads under
`score` (a function scheduler -> mean reads on validation episodes: the simulator's `sim_scorer`, or
PostgreSQL episodes on the pg side). `validate_agent(agent, score)` compares the agent with it and returns
a `Verdict`; `Guarded` runs the agent when the verdict passed and the heuristic otherwise, and says which
in its name. `guard(agent, score)` does both. Bench tables print `Verdict.status`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lab_learnsched.schedulers import HEURISTICS, SchedState, Scheduler, make_scheduler

Score = Callable[[Scheduler], float]  # mean disk reads of a scheduler on validation episodes


@dataclass
class Verdict:
    agent: str
    heuristic: str  # the best heuristic on the validation episodes
    agent_reads: float
    heuristic_reads: float
    passed: bool  # the agent read strictly less than the best heuristic

    @property
    def margin(self) -> float:
        """Relative reads of the agent vs the heuristic (negative: the agent reads less)."""
        return (self.agent_reads - self.heuristic_reads) / max(self.heuristic_reads, 1e-9)

    @property
    def status(self) -> str:
        word = "better" if self.passed else "worse: falls back to " + self.heuristic
        return f"validation {100 * self.margin:+.1f}% reads vs {self.heuristic} ({word})"

    def to_dict(self) -> dict:
        return {**asdict(self), "margin": self.margin, "status": self.status}


def best_heuristic(score: Score, candidates: Sequence[str] = HEURISTICS) -> tuple[str, dict[str, float]]:
    """(the candidate with fewest mean reads, every candidate's mean reads); ties: the earlier candidate."""
    reads = {c: float(score(make_scheduler(c))) for c in candidates}
    return min(candidates, key=lambda c: reads[c]), reads


def validate_agent(
    agent: Scheduler, score: Score, candidates: Sequence[str] = HEURISTICS, heuristic: str | None = None
) -> Verdict:
    """Score the agent and the best heuristic (or the given one) on the same validation episodes."""
    if heuristic is None:
        heuristic, reads = best_heuristic(score, candidates)
        h_reads = reads[heuristic]
    else:
        h_reads = float(score(make_scheduler(heuristic)))
    a_reads = float(score(agent))
    return Verdict(getattr(agent, "name", "agent"), heuristic, a_reads, h_reads, a_reads < h_reads)


class Guarded(Scheduler):
    """The agent if its verdict passed, else the best heuristic."""

    def __init__(self, agent: Scheduler, verdict: Verdict):
        self.agent, self.verdict = agent, verdict
        self.fallback = make_scheduler(verdict.heuristic)
        self.active = agent if verdict.passed else self.fallback
        self.name = f"guarded:{agent.name}" if verdict.passed else f"guarded:{verdict.heuristic}"

    def reset(self, seed: int | None = None) -> None:
        self.active.reset(seed)

    def choose(self, state: SchedState) -> int:
        return self.active.choose(state)


def guard(agent: Scheduler, score: Score, candidates: Sequence[str] = HEURISTICS) -> Guarded:
    """Validate `agent` against the best of `candidates` under `score` and wrap it (see module docstring)."""
    return Guarded(agent, validate_agent(agent, score, candidates))


def sim_scorer(env, seeds: Sequence[int]) -> Score:
    """Mean reads on fixed simulator episodes of `env` (the validation episodes of a workload)."""
    from lab_learnsched.evaluate import episodes, run_episode

    eps = episodes(env, list(seeds))

    def score(s: Scheduler) -> float:
        return float(np.mean([run_episode(env, s, sd, q).reads for sd, q in zip(seeds, eps)]))

    return score
