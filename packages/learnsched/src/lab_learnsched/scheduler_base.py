"""The scheduler contract: what a scheduler sees (`SchedState`) and the `Scheduler` base class.

A leaf module (it imports no scheduler, feature or agent module), so the baselines in schedulers.py, the
observation features and the trained agents can all build on it without importing one another in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lab_learnsched.bufferpool import BufferPool
from lab_learnsched.workload import Query
from lab_shared.errors import LabError


@dataclass
class SchedState:
    """What a scheduler sees at a decision point."""

    slots: list[Query | None]
    pool: BufferPool
    now: float = 0.0
    backlog: list[Query] = field(default_factory=list)
    done: int = 0  # queries already executed this episode

    def valid(self) -> np.ndarray:
        return np.array([q is not None for q in self.slots], dtype=bool)

    def valid_slots(self) -> list[int]:
        return [i for i, q in enumerate(self.slots) if q is not None]


def require_slots(state: SchedState) -> list[int]:
    v = state.valid_slots()
    if not v:
        raise LabError("scheduler asked to choose from an empty queue")
    return v


def fifo_key(q: Query) -> tuple[float, int]:
    return (q.arrival, q.qid)


class Scheduler:
    """Base class: `choose(state)` picks a slot. Subclasses set `name`."""

    name = "scheduler"

    def reset(self, seed: int | None = None) -> None:
        pass

    def choose(self, state: SchedState) -> int:
        raise NotImplementedError

    def _argbest(self, state: SchedState, key) -> int:
        """The valid slot minimising key(slot, query), FIFO among ties."""
        v = require_slots(state)
        return min(v, key=lambda i: (key(i, state.slots[i]), *fifo_key(state.slots[i])))
