"""A vectorized environment for training the shape-free agent: many episodes stepped in one call.

`SetVecEnv` is a `gymnasium.vector.VectorEnv` over `num_envs` episodes, each on its own workload (drawn
per episode from a list: domain randomization), pool size and queue size. The episode mechanics are those
of `env.BufferPoolEnv` (queue window filled in arrival order, cold pool, reward = -reads / mean query size
of the workload), but the observation is the shape-free token set of `setfeatures` padded to `max_queue`
slots, and the bookkeeping is incremental and compiled: an episode is flat arrays (its queries' pages in
arrival order, the window, per-page counts of queued and known queries, the pool), and one numba call per
step runs the query, updates the counts and the window and writes the next observation. `episodes` replays fixed
episodes instead of generating them (benchmarks measure the env, not the generator). Finished episodes
reset at once (same-step autoreset; `infos["episode_reads"]` etc. mark them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from lab_learnsched.bufferpool import BufferPool, _clock_access, _lru_access, njit
from lab_learnsched.features import unique_pages
from lab_learnsched.setfeatures import CLIP, SlotPages, flat_dim, set_features
from lab_learnsched.workload import Query, Workload
from lab_shared.errors import LabError


@njit(cache=True)
def _admit(st, now, qa, qp, qo, need, win, wslot, sp, sl, sk):
    """Arrivals up to `now` join the known set; free slots take the backlog in arrival order.

    st = [arrived, admitted, done, total]; the backlog is queries admitted..arrived-1 (arrival order).
    """
    n = st[3]
    if st[1] == st[0] and st[0] < n:
        empty = True
        for i in range(wslot.shape[0]):
            if wslot[i] >= 0:
                empty = False
                break
        if empty and qa[st[0]] > now[0]:
            now[0] = qa[st[0]]
    while st[0] < n and qa[st[0]] <= now[0]:
        q = st[0]
        for j in range(qo[q], qo[q + 1]):
            need[qp[j]] += 1
        st[0] += 1
    for i in range(wslot.shape[0]):
        if st[1] >= st[0]:
            break
        if wslot[i] < 0:
            q = st[1]
            st[1] += 1
            wslot[i] = q
            k = 0
            for j in range(qo[q], qo[q + 1]):
                p = qp[j]
                win[p] += 1
                sp[i, k] = p
                k += 1
            sl[i] = k
            sk[i] = q


@njit(cache=True)
def _step(
    a,
    st,
    now,
    qa,
    qp,
    qo,
    ap,
    ao,
    need,
    win,
    wslot,
    sp,
    sl,
    sk,
    is_lru,
    resident,
    prev,
    nxt,
    buf,
    usage,
    pbuf,
    pstate,
    cap,
    mark,
    member,
    out,
    res,
):
    """Run slot `a` (an empty slot: the FIFO one), update counts and window, write the next observation.

    res = [hits, reads, query index, slot].
    """
    if a < 0 or a >= wslot.shape[0] or wslot[a] < 0:
        best = -1
        for i in range(wslot.shape[0]):
            if wslot[i] >= 0 and (best < 0 or wslot[i] < wslot[best]):
                best = i
        a = best
    q = wslot[a]
    pages = ap[ao[q] : ao[q + 1]]
    if is_lru:
        h = _lru_access(pages, prev, nxt, resident, pstate)
    else:
        h = _clock_access(pages, buf, usage, pbuf, resident, pstate)
    r = pages.shape[0] - h
    now[0] += r + 0.01 * h
    for j in range(qo[q], qo[q + 1]):
        p = qp[j]
        win[p] -= 1
        need[p] -= 1
    wslot[a] = -1
    sl[a] = 0
    st[2] += 1
    _admit(st, now, qa, qp, qo, need, win, wslot, sp, sl, sk)
    nb = st[0] - st[1]
    set_features(resident, prev, is_lru, cap, pstate[0], need, win, mark, member, sp, sl, sk, nb, out)
    res[0] = h
    res[1] = r
    res[2] = q
    res[3] = a


class Episode:
    """One episode as flat arrays (queries in arrival order, window, per-page counts, pool); one numba call
    per step runs the query, updates the counts and window and writes the next observation."""

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
        self._z = np.zeros(1, np.int64)
        sample = wl.generate(12345, n=min(64, max(8, wl.queries)))
        self.scale = float(np.mean([q.size for q in sample]))
        self.sp = SlotPages(self.queue, 256)
        self.wslot = np.full(self.queue, -1, np.int64)
        self.st = np.zeros(4, np.int64)
        self.now_a = np.zeros(1, np.float64)
        self.res = np.zeros(4, np.int64)
        self.out = np.zeros(flat_dim(self.queue), np.float32)

    def _pool_args(self):
        p = self.pool
        if p.policy == "lru":
            return True, p.resident, p.prev, p.nxt, self._z, self._z, self._z, p.state
        return False, p.resident, self._z, self._z, p.buf_page, p.usage, p.page_buf, p.state

    def bind(self, out: np.ndarray) -> None:
        """Write observations straight into `out` (e.g. a row of the vector env's batch; extra = padding)."""
        self.out = out

    def reset(self, seed: int | None = None, queries: list[Query] | None = None) -> None:
        if queries is None:
            queries = self.wl.generate(seed)
        if not queries:
            raise LabError("episode has no queries (empty queue)")
        qs = self.qs = sorted(queries, key=lambda q: (q.arrival, q.qid))
        ups = [unique_pages(q) for q in qs]
        self.qp = np.concatenate(ups).astype(np.int64)
        self.qo = np.zeros(len(qs) + 1, np.int64)
        np.cumsum([u.shape[0] for u in ups], out=self.qo[1:])
        same = all(u is q.pages for u, q in zip(ups, qs))
        self.ap = self.qp if same else np.concatenate([q.pages for q in qs]).astype(np.int64)
        self.ao = self.qo if same else np.concatenate([[0], np.cumsum([q.size for q in qs])]).astype(np.int64)
        self.qa = np.array([q.arrival for q in qs], np.float64)
        width = int(max(u.shape[0] for u in ups))
        if width > self.sp.sp.shape[1]:
            self.sp = SlotPages(self.queue, max(width, 2 * self.sp.sp.shape[1]))
        self.pool.reset()
        self.need[:] = 0
        self.win[:] = 0
        self.wslot[:] = -1
        self.sp.sl[:] = 0
        self.st[:] = (0, 0, 0, len(qs))
        self.now_a[0] = self.qa[0]
        self.hits = self.reads = 0
        sp = self.sp
        _admit(
            self.st,
            self.now_a,
            self.qa,
            self.qp,
            self.qo,
            self.need,
            self.win,
            self.wslot,
            sp.sp,
            sp.sl,
            sp.sk,
        )
        sp = self.sp
        self._args = (
            self.st,
            self.now_a,
            self.qa,
            self.qp,
            self.qo,
            self.ap,
            self.ao,
            self.need,
            self.win,
            self.wslot,
            sp.sp,
            sp.sl,
            sp.sk,
            *self._pool_args(),
            self.cap,
            self.mark,
            self.member,
        )
        is_lru, res, prev = self._pool_args()[:3]
        set_features(
            res,
            prev,
            is_lru,
            self.cap,
            self.pool.state[0],
            self.need,
            self.win,
            self.mark,
            self.member,
            sp.sp,
            sp.sl,
            sp.sk,
            int(self.st[0] - self.st[1]),
            self.out,
        )

    @property
    def now(self) -> float:
        return float(self.now_a[0])

    @property
    def total(self) -> int:
        return int(self.st[3])

    @property
    def done(self) -> int:
        return int(self.st[2])

    @property
    def finished(self) -> bool:
        return self.st[2] == self.st[3]

    def mask(self) -> np.ndarray:
        return self.sp.sl > 0

    def run(self, a: int) -> int:
        """Run slot `a` and write the next observation; returns the reads (hits in self.res[0])."""
        _step(a, *self._args, self.out, self.res)
        r = int(self.res[1])
        self.hits += int(self.res[0])
        self.reads += r
        return r

    def step(self, a: int) -> tuple[float, dict]:
        r = self.run(int(a))
        return -r / self.scale, {"hits": int(self.res[0]), "reads": r, "qid": self.qs[int(self.res[2])].qid}

    def observe(self, out: np.ndarray) -> None:
        """Copy the current observation (globals, then `queue` slot tokens) into `out` (longer: padding)."""
        if out is self.out:
            return
        n = min(out.shape[0], self.out.shape[0])
        out[:n] = self.out[:n]
        out[n:] = 0.0


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
        ep.bind(self.obs[i])
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
        acts = np.asarray(actions).tolist()
        for i in range(n):
            ep = self.eps[i]
            a = acts[i]
            rew[i] = -ep.run(a if a < ep.queue else 0) / ep.scale
            if ep.st[2] == ep.st[3]:
                term[i] = True
                ep_reads[i], ep_hits[i] = ep.reads, ep.hits
                self._new(i)
        infos = {"episode_reads": ep_reads, "episode_hits": ep_hits}
        return self.obs.copy(), rew, term, np.zeros(n, bool), infos
