"""Schedulers: given the queue and the buffer pool, pick the queue slot that runs next.

Contract (shared by the simulator environment and the PostgreSQL backend):

- `SchedState` (defined in scheduler_base.py, with the `Scheduler` base class): `slots` (fixed-size queue
  window; a `Query` or None per slot), `pool` (a `BufferPool` with the current cached set; on PostgreSQL a
  model built with `BufferPool.from_cached` from pg_buffercache), `now` (simulated or wall time) and
  `backlog` (queries that have arrived but wait outside the window).
- `Scheduler.choose(state) -> int` returns a valid slot index; `reset(seed)` starts a new episode.
- `make_scheduler(spec)` builds one from a spec string:
  `fifo`, `random`, `shortest`, `greedy` (most cached pages: the paper's named heuristic),
  `lookahead[:k]` (fewest reads with a k-step lookahead; k=1 is greedy-fewest-reads),
  `planner[:width[:depth[:budget]]]` (beam search over exact simulations, see planner.py),
  `optimal[:beam]` (exact optimum by branch and bound when the queue holds the whole remaining batch of
  <= 8 queries, else beam search of the given width over the queue; replans whenever the queue changes), `agent:CHECKPOINT` (a trained DQN/PPO agent)
  and `agent+la:CHECKPOINT` (the agent's value used as a one-step lookahead).
Ties are always broken FIFO (earliest arrival, then query id), so every baseline is deterministic.
"""

from __future__ import annotations

import numpy as np

from lab_learnsched.bufferpool import BufferPool
from lab_learnsched.oracles import MAX_EXACT, beam_order, exact_order
from lab_learnsched.scheduler_base import SchedState, Scheduler, require_slots
from lab_learnsched.workload import Query
from lab_shared.errors import LabError

BASELINES = ("fifo", "random", "shortest", "greedy", "lookahead", "optimal", "planner")
# the hand-written rules the "best heuristic" of a run is chosen from (per workload, on validation episodes)
HEURISTICS = ("fifo", "shortest", "greedy", "lookahead:1", "lookahead:2")


class Fifo(Scheduler):
    name = "fifo"

    def choose(self, state: SchedState) -> int:
        return self._argbest(state, lambda i, q: 0)


class RandomScheduler(Scheduler):
    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def choose(self, state: SchedState) -> int:
        return int(self.rng.choice(require_slots(state)))


class Shortest(Scheduler):
    """Shortest job first: fewest pages to read."""

    name = "shortest"

    def choose(self, state: SchedState) -> int:
        return self._argbest(state, lambda i, q: q.size)


class GreedyMostCached(Scheduler):
    """The paper's heuristic: run the query with the most of its pages in the buffer pool."""

    name = "greedy"

    def choose(self, state: SchedState) -> int:
        return self._argbest(state, lambda i, q: -state.pool.count_cached(q.pages))


class Lookahead(Scheduler):
    """Fewest disk reads over the next k queries (exhaustive over the queued ones), first step taken."""

    def __init__(self, k: int = 2):
        if k < 1:
            raise LabError(f"lookahead depth must be >= 1, got {k}")
        self.k = k
        self.name = f"lookahead{k}"

    def _best(self, pool: BufferPool, queries: list[Query], depth: int) -> int:
        if depth == 0 or not queries:
            return 0
        best = None
        for j, q in enumerate(queries):
            c = pool.copy()
            _, r = c.access(q.pages)
            tot = r + self._best(c, queries[:j] + queries[j + 1 :], depth - 1)
            best = tot if best is None else min(best, tot)
        return best

    def choose(self, state: SchedState) -> int:
        v = require_slots(state)
        qs = [state.slots[i] for i in v]

        def cost(i: int, q: Query) -> int:
            c = state.pool.copy()
            _, r = c.access(q.pages)
            return r + self._best(c, [o for o in qs if o is not q], self.k - 1)

        return self._argbest(state, cost)


class Optimal(Scheduler):
    """Plans the best order of the queued queries and follows it, replanning when the queue changes.

    Exact (branch and bound) when the queue holds the whole rest of the batch (<= 8 queries, empty
    backlog): then the plan is the true optimum. While queries still wait outside the window the plan is
    only a window optimum anyway, so beam search (much cheaper) plans it.
    """

    def __init__(self, beam: int = 32):
        if beam < 1:
            raise LabError(f"optimal beam width must be >= 1, got {beam}")
        self.beam = beam
        self.name = "optimal"
        self.plan: list[int] = []  # qids

    def reset(self, seed: int | None = None) -> None:
        self.plan = []

    def choose(self, state: SchedState) -> int:
        v = require_slots(state)
        qids = {state.slots[i].qid: i for i in v}
        if set(self.plan) != set(qids):
            qs = [state.slots[i].pages for i in v]
            if len(qs) <= MAX_EXACT and not state.backlog:
                order, _ = exact_order(state.pool, qs)
            else:
                order, _ = beam_order(state.pool, qs, self.beam)
            self.plan = [state.slots[v[j]].qid for j in order]
        return qids[self.plan.pop(0)]


def agent_specs(paths: list[str] | None, lookahead: bool) -> list[str]:
    """Scheduler specs for trained agents (`agent:PATH`, plus `agent+la:PATH` if asked); LabError if missing."""
    from pathlib import Path

    specs = []
    for a in paths or []:
        if not Path(a).exists():
            raise LabError(f"agent checkpoint not found: {a}")
        specs += [f"agent:{a}", f"agent+la:{a}"] if lookahead else [f"agent:{a}"]
    return specs


def make_scheduler(spec: str, seed: int = 0) -> Scheduler:
    """Build a scheduler from `name[:arg]` (see module docstring)."""
    name, _, arg = spec.partition(":")
    try:
        if name == "fifo":
            return Fifo()
        if name == "random":
            return RandomScheduler(seed)
        if name == "shortest":
            return Shortest()
        if name == "greedy":
            return GreedyMostCached()
        if name == "lookahead":
            return Lookahead(int(arg) if arg else 2)
        if name == "optimal":
            return Optimal(int(arg) if arg else 32)
        if name == "planner":
            from lab_learnsched.planner import Planner

            return Planner(*[int(x) for x in arg.split(":")] if arg else [])
    except (ValueError, TypeError):  # TypeError: too many `:` arguments
        raise LabError(f"scheduler '{spec}': bad argument '{arg}'") from None
    if name in ("agent", "agent+la"):
        if not arg:
            raise LabError(f"scheduler '{name}' needs a checkpoint: {name}:PATH")
        from lab_learnsched.agents.policy import load_agent

        return load_agent(arg, lookahead=(name == "agent+la"))
    raise LabError(
        f"unknown scheduler '{spec}' (choose from {', '.join(BASELINES)}, agent:PATH, agent+la:PATH)"
    )
