"""Gymnasium environment: pick which queued query runs next on a simulated buffer pool.

Registered as `learnsched/BufferPool-v0` when this module is imported; `gymnasium.make(
"lab_learnsched.env:learnsched/BufferPool-v0", workload="default")` imports it for you.

- Episode: `workload.generate(seed)` queries arrive (batch: all at t=0; poisson: over time) into a backlog;
  the queue window holds `queue_size` of them (earliest arrivals first); the pool starts cold.
- Observation: `features.Featurizer` (per-table downsampled pool bitmap + per-slot query bitmaps and
  features), a flat float32 Box.
- Action: a queue slot; `action_masks()` marks the occupied ones. An empty slot (which only an unmasked
  random agent picks) is replaced by the FIFO choice and flagged `info["invalid_action"] = True`.
- Reward: minus disk reads of the executed query divided by `reward_scale` (default: mean query size of
  the workload, so a fully missed average query costs about -1).
- Time: a read costs `read_cost`, a hit `hit_cost` time units; `info["now"]` at the end is the makespan.
- info: hits, reads, qid, template, slot, now, invalid_action.
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np

from lab_learnsched.bufferpool import ONLINE_POLICIES, BufferPool
from lab_learnsched.features import CLIP, Featurizer
from lab_learnsched.schedulers import SchedState
from lab_learnsched.workload import Query, Workload
from lab_learnsched.workload_sources import load_workload
from lab_shared.errors import LabError

ENV_ID = "learnsched/BufferPool-v0"


class BufferPoolEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self,
        workload: Workload | str = "default",
        buffer_pages: int | None = None,
        queue_size: int | None = None,
        policy: str = "lru",
        bins: int = 32,
        reward_scale: float | None = None,
        read_cost: float = 1.0,
        hit_cost: float = 0.01,
        episode_queries: int | None = None,
    ):
        self.workload = load_workload(workload) if isinstance(workload, str) else workload
        w = self.workload
        self.buffer_pages = int(buffer_pages or w.buffer_pages or max(1, w.tables.n_pages // 4))
        self.queue_size = int(queue_size or w.queue_size)
        if policy not in ONLINE_POLICIES:
            raise LabError(f"environment policy must be one of {ONLINE_POLICIES}, got '{policy}'")
        if self.queue_size < 1:
            raise LabError(f"queue size must be >= 1, got {self.queue_size}")
        if self.buffer_pages < 1:
            raise LabError(f"buffer must hold >= 1 page, got {self.buffer_pages}")
        if self.buffer_pages >= w.tables.n_pages:
            raise LabError(
                f"buffer of {self.buffer_pages} pages holds all {w.tables.n_pages} pages of data: "
                "every order reads the same; use a smaller buffer"
            )
        self.policy = policy
        self.episode_queries = episode_queries or w.queries
        self.read_cost, self.hit_cost = float(read_cost), float(hit_cost)
        self.feat = Featurizer.for_tables(w.tables, self.buffer_pages, self.queue_size, bins)
        if reward_scale is None:
            sample = w.generate(12345, n=min(64, max(8, self.episode_queries)))
            reward_scale = float(np.mean([q.size for q in sample]))
        self.reward_scale = float(reward_scale)
        self.observation_space = gym.spaces.Box(0.0, CLIP, shape=(self.feat.spec.dim,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.queue_size)
        self.pool = BufferPool(w.tables.n_pages, self.buffer_pages, policy)
        self.slots: list[Query | None] = [None] * self.queue_size
        self.pending: deque[Query] = deque()
        self.now = 0.0
        self.done_count = 0
        self.total_queries = 0

    # -- episode mechanics ---------------------------------------------------------------------------
    def _admit(self) -> None:
        """Move arrived queries into empty slots; if the queue is empty, jump to the next arrival."""
        if not any(q is not None for q in self.slots) and self.pending and self.pending[0].arrival > self.now:
            self.now = self.pending[0].arrival
        for i in range(self.queue_size):
            if self.slots[i] is None and self.pending and self.pending[0].arrival <= self.now:
                self.slots[i] = self.pending.popleft()

    def state(self) -> SchedState:
        """The scheduler's view (shares the live pool: schedulers must copy before simulating)."""
        backlog = [q for q in self.pending if q.arrival <= self.now]
        return SchedState(list(self.slots), self.pool, self.now, backlog, self.done_count)

    def action_masks(self) -> np.ndarray:
        return np.array([q is not None for q in self.slots], dtype=bool)

    def _obs(self) -> np.ndarray:
        return self.feat.observe(self.state())

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        queries = (options or {}).get("queries")
        if queries is None:
            queries = self.workload.generate(self.np_random, n=self.episode_queries)
        if not queries:
            raise LabError("episode has no queries (empty queue)")
        self.pool.reset()
        warm = (options or {}).get("warm")
        if warm is not None:
            self.pool.access(np.asarray(warm, dtype=np.int64))
        self.pending = deque(sorted(queries, key=lambda q: (q.arrival, q.qid)))
        self.total_queries = len(queries)
        self.slots = [None] * self.queue_size
        self.now = float(self.pending[0].arrival)
        self.done_count = 0
        self._admit()
        return self._obs(), {"queries": self.total_queries}

    def step(self, action):
        a = int(action)
        invalid = not (0 <= a < self.queue_size) or self.slots[a] is None
        if invalid:
            valid = [i for i, q in enumerate(self.slots) if q is not None]
            a = min(valid, key=lambda i: (self.slots[i].arrival, self.slots[i].qid))
        q = self.slots[a]
        hits, reads = self.pool.access(q.pages)
        self.now += reads * self.read_cost + hits * self.hit_cost
        self.slots[a] = None
        self.done_count += 1
        self._admit()
        terminated = self.done_count == self.total_queries
        info = {
            "hits": hits,
            "reads": reads,
            "qid": q.qid,
            "template": q.template,
            "slot": a,
            "now": self.now,
            "invalid_action": invalid,
        }
        return self._obs(), -reads / self.reward_scale, terminated, False, info


def register_env() -> None:
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="lab_learnsched.env:BufferPoolEnv")


register_env()
