"""Run schedulers on environment episodes and summarise hit ratio, reads, makespan, gaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab_learnsched.bufferpool import distinct_floor
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.schedulers import Scheduler
from lab_learnsched.workload import Query


@dataclass
class EpisodeResult:
    hits: int
    reads: int
    makespan: float
    floor: int
    order: list[int]

    @property
    def hit_ratio(self) -> float:
        return self.hits / max(self.hits + self.reads, 1)


def run_episode(
    env: BufferPoolEnv, scheduler: Scheduler, seed: int, queries: list[Query] | None = None
) -> EpisodeResult:
    """One episode of `scheduler` on `env` (episode fixed by `seed`, or the given `queries`)."""
    options = {"queries": queries} if queries is not None else None
    env.reset(seed=seed, options=options)
    scheduler.reset(seed)
    qs = [q for q in env.pending] + [q for q in env.slots if q is not None]
    floor = distinct_floor([q.pages for q in qs], env.pool.resident)
    hits = reads = 0
    order = []
    done = False
    info = {"now": env.now}
    while not done:
        a = scheduler.choose(env.state())
        _, _, done, _, info = env.step(a)
        hits += info["hits"]
        reads += info["reads"]
        order.append(info["qid"])
    return EpisodeResult(hits, reads, float(info["now"]), floor, order)


def episodes(env: BufferPoolEnv, seeds: list[int]) -> list[list[Query]]:
    """Fixed episodes (the same queries for every policy under comparison)."""
    out = []
    for s in seeds:
        env.reset(seed=s)
        out.append(
            sorted([q for q in env.pending] + [q for q in env.slots if q is not None], key=lambda q: q.qid)
        )
    return out


def summarize(results: list[EpisodeResult]) -> dict[str, float]:
    hr = np.array([r.hit_ratio for r in results])
    reads = np.array([r.reads for r in results], dtype=float)
    floor = np.array([r.floor for r in results], dtype=float)
    return {
        "hit_ratio": float(hr.mean()),
        "hit_ratio_std": float(hr.std()),
        "reads": float(reads.mean()),
        "reads_std": float(reads.std()),
        "makespan": float(np.mean([r.makespan for r in results])),
        "floor": float(floor.mean()),
        "gap_floor": float(np.mean((reads - floor) / np.maximum(floor, 1))),
        "episodes": len(results),
    }
