"""A vectorized environment for training the shape-free agent: many episodes stepped in one call.

`SetVecEnv` is a `gymnasium.vector.VectorEnv` over `num_envs` episodes, each on its own workload (drawn
per episode from a list: domain randomization), pool size and queue size. The episode mechanics are those
of `env.BufferPoolEnv` (queue window filled in arrival order, cold pool, reward = -reads / mean query size
of the workload), but the observation is the shape-free token set of `setfeatures` padded to `max_queue`
slots, and the bookkeeping is incremental: the per-page counts of queued and known queries are updated
when a query arrives, enters the window or runs, instead of being rebuilt every step. `episodes` replays fixed
episodes instead of generating them (benchmarks measure the env, not the generator). Finished episodes
reset at once (same-step autoreset; `infos["episode_reads"]` etc. mark them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from lab_learnsched.bufferpool import BufferPool
from lab_learnsched.features import unique_pages
from lab_learnsched.setfeatures import CLIP, SlotPages, flat_dim, set_features
from lab_learnsched.workload import Query, Workload
from lab_shared.errors import LabError


class Episode:
    """One episode's state with incremental page counts; `observe` writes its flat observation."""

    def __init__(
        self,
        wl: Workload,
        buffer_pages: int | None = None,
        queue_size: int | None = None,
        policy: str = "lru",
    ):
        self.wl = wl
        self.cap = int(buffer_pages or wl.buffer_pages or max(1, wl.tables.n_pages // 4))
        self.queue = int(queue_size or wl.queue_size)
        if self.cap >= wl.tables.n_pages:
            raise LabError(f"buffer of {self.cap} pages holds all {wl.tables.n_pages} pages of {wl.name}")
        n = wl.tables.n_pages
        self.pool = BufferPool(n, self.cap, policy)
        self.need = np.zeros(n, np.int32)
        self.win = np.zeros(n, np.int32)
        self.mark = np.zeros(n, np.int8)
        self.member = np.zeros(n, np.int64)
        self._prev0 = np.zeros(1, np.int64)
        sample = wl.generate(12345, n=min(64, max(8, wl.queries)))
        self.scale = float(np.mean([q.size for q in sample]))
        self.sp = SlotPages(self.queue, 256)

    def reset(self, seed: int | None = None, queries: list[Query] | None = None) -> None:
        if queries is None:
            queries = self.wl.generate(seed)
        self.pool.reset()
        self.need[:] = 0
        self.win[:] = 0
        self.arrivals = deque(sorted(queries, key=lambda q: (q.arrival, q.qid)))  # not yet arrived
        self.backlog: deque[Query] = deque()  # arrived, waiting outside the window
        self.slots: list[Query | None] = [None] * self.queue
        self.sp.sl[:] = 0
        self.now = float(self.arrivals[0].arrival)
        self.total, self.done = len(queries), 0
        self.hits = self.reads = 0
        self._admit()

    def _admit(self) -> None:
        if not self.sp.sl.any() and not self.backlog and self.arrivals:
            self.now = max(self.now, self.arrivals[0].arrival)
        while self.arrivals and self.arrivals[0].arrival <= self.now:
            q = self.arrivals.popleft()
            self.need[unique_pages(q)] += 1
            self.backlog.append(q)
        if not self.backlog:
            return
        for i in range(self.queue):
            if self.slots[i] is None and self.backlog:
                q = self.backlog.popleft()
                self.win[unique_pages(q)] += 1
                self.slots[i] = q
                self.sp.put(i, q)

    def mask(self) -> np.ndarray:
        return self.sp.sl > 0

    def step(self, a: int) -> tuple[float, dict]:
        q = self.slots[a]
        if q is None:  # an empty slot (only an unmasked agent picks one): FIFO instead
            a = min(
                (i for i, x in enumerate(self.slots) if x is not None),
                key=lambda i: (self.slots[i].arrival, self.slots[i].qid),
            )
            q = self.slots[a]
        h, r = self.pool.access(q.pages)
        self.hits += h
        self.reads += r
        self.now += r + 0.01 * h
        u = unique_pages(q)
        self.win[u] -= 1
        self.need[u] -= 1
        self.slots[a] = None
        self.sp.clear(a)
        self.done += 1
        self._admit()
        return -r / self.scale, {"hits": h, "reads": r, "qid": q.qid}

    @property
    def finished(self) -> bool:
        return self.done == self.total

    def observe(self, out: np.ndarray) -> None:
        """Write the flat observation (globals, then `queue` slot tokens; `out` may be longer: padding)."""
        pool = self.pool
        is_lru = pool.policy == "lru"
        sp = self.sp
        set_features(
            pool.resident,
            pool.prev if is_lru else self._prev0,
            is_lru,
            pool.capacity,
            pool.used,
            self.need,
            self.win,
            self.mark,
            self.member,
            sp.sp,
            sp.sl,
            sp.sk,
            len(self.backlog),
            out,
        )


class SetVecEnv(gym.vector.VectorEnv):
    """`num_envs` episodes in lockstep; each reset draws a workload with `pick(rng)` (or cycles a list)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(
        self,
        workloads: Sequence[Workload] | Callable[[np.random.Generator], Workload],
        num_envs: int = 8,
        max_queue: int = 32,
        seed: int = 0,
        seed_base: int = 10_000_000,
        policy: str = "lru",
        episodes: list[list[Query]] | None = None,
    ):
        self.episodes = episodes  # fixed episodes to cycle through (benchmarks) instead of generated ones
        self.num_envs = int(num_envs)
        self.max_queue = int(max_queue)
        self.rng = np.random.default_rng(seed)
        self.policy = policy
        if callable(workloads):
            self._pick = workloads
        else:
            wls = list(workloads)
            if not wls:
                raise LabError("SetVecEnv needs at least one workload")
            self._pick = lambda rng: wls[int(rng.integers(len(wls)))]
        self._cache: dict[int, Episode] = {}
        self.seed_base, self.seed_pos = int(seed_base), 0
        dim = flat_dim(self.max_queue)
        self.single_observation_space = gym.spaces.Box(0.0, CLIP, shape=(dim,), dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(self.max_queue)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.eps: list[Episode] = [None] * self.num_envs  # type: ignore[list-item]
        self.obs = np.zeros((self.num_envs, dim), np.float32)

    def _episode(self, wl: Workload, i: int) -> Episode:
        """A free Episode object for `wl` (one per env slot and workload, reused across episodes)."""
        key = (id(wl), i)
        ep = self._cache.get(key)
        if ep is None or ep.wl is not wl:
            ep = self._cache[key] = Episode(wl, policy=self.policy)
            if ep.queue > self.max_queue:
                raise LabError(f"workload {wl.name}: queue {ep.queue} > max_queue {self.max_queue}")
        return ep

    def _new(self, i: int) -> None:
        self.seed_pos += 1
        ep = self._episode(self._pick(self.rng), i)
        if self.episodes is not None:
            ep.reset(queries=self.episodes[self.seed_pos % len(self.episodes)])
        else:
            ep.reset(self.seed_base + self.seed_pos)
        self.eps[i] = ep
        ep.observe(self.obs[i])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.eps = [None] * self.num_envs  # type: ignore[list-item]
        for i in range(self.num_envs):
            self._new(i)
        return self.obs.copy(), {}

    def action_masks(self) -> np.ndarray:
        m = np.zeros((self.num_envs, self.max_queue), bool)
        for i, ep in enumerate(self.eps):
            m[i, : ep.queue] = ep.sp.sl > 0
        return m

    def step(self, actions):
        n = self.num_envs
        rew = np.zeros(n, np.float32)
        term = np.zeros(n, bool)
        ep_reads = np.full(n, -1, np.int64)
        ep_hits = np.full(n, -1, np.int64)
        for i in range(n):
            ep = self.eps[i]
            a = int(actions[i])
            r, _ = ep.step(a if a < ep.queue else 0)
            rew[i] = r
            if ep.finished:
                term[i] = True
                ep_reads[i], ep_hits[i] = ep.reads, ep.hits
                self._new(i)
            else:
                ep.observe(self.obs[i])
        infos = {"episode_reads": ep_reads, "episode_hits": ep_hits}
        return self.obs.copy(), rew, term, np.zeros(n, bool), infos
