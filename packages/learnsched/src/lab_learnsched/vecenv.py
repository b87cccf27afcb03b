"""A vectorized environment for training the shape-free agent: many episodes stepped in one call.

`SetVecEnv` is a `gymnasium.vector.VectorEnv` over `num_envs` episodes, each on its own workload (drawn
per episode from a list: domain randomization), pool size and queue size. The episode mechanics are those
of `env.BufferPoolEnv` (queue window filled in arrival order, cold pool, reward = -reads / mean query size
of the workload), but the observation is the shape-free token set of `setfeatures` padded to `max_queue`
slots, and the bookkeeping is incremental and compiled: an episode is flat arrays (its queries' pages in
arrival order, the window, per-page counts of queued and known queries, the pool), all episodes' arrays are
rows of one `Store`, and one numba call per step runs every episode's query, updates its counts and window
and writes its next observation (`Episode.run` does the same for one episode, e.g. in a Ray worker).
`episodes` replays fixed episodes (prepared once) instead of generating them (benchmarks measure the env,
not the generator). Finished episodes reset at once (same-step autoreset; `infos["episode_reads"]` etc.
mark them).
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


@njit(cache=True)
def _begin(st, now, qa, qp, qo, need, win, wslot, sp, sl, sk, is_lru, resident, prev, nxt, buf, usage, pbuf,
           pstate, cap, mark, member, out, n_q):  # fmt: skip
    """A new episode on row views: cold pool (BufferPool.reset in place), zero counts, admit, observe."""
    n = resident.shape[0]
    resident[:] = 0
    if is_lru:
        prev[:] = n
        nxt[:] = n
    else:
        buf[:] = -1
        usage[:] = 0
        pbuf[:] = -1
    pstate[0] = 0
    pstate[1] = cap
    pstate[2] = 0
    need[:] = 0
    win[:] = 0
    wslot[:] = -1
    sl[:] = 0
    st[0] = 0
    st[1] = 0
    st[2] = 0
    st[3] = n_q
    now[0] = qa[0]
    _admit(st, now, qa, qp, qo, need, win, wslot, sp, sl, sk)
    set_features(
        resident, prev, is_lru, cap, pstate[0], need, win, mark, member, sp, sl, sk, st[0] - st[1], out
    )


@njit(cache=True)
def _step_rows(acts, qn, npg, caps, scale, is_lru, ST, NOW, QA, QP, QO, AP, AO, NEED, WIN, WSLOT, SP, SL, SK,
               RESID, PREV, NXT, BUF, USAGE, PBUF, PST, MARK, MEMBER, OBS, RES, ACC, rew, term):  # fmt: skip
    """One step of every row (= `_step` on each row's views, as Episode.run does it), rewards and ends."""
    for e in range(acts.shape[0]):
        q, n, nq = qn[e], npg[e], ST[e, 3]
        a = acts[e]
        if a >= q:
            a = 0
        _step(a, ST[e], NOW[e], QA[e, :nq], QP[e], QO[e, : nq + 1], AP[e], AO[e, : nq + 1], NEED[e, :n],
              WIN[e, :n], WSLOT[e, :q], SP[e, :q], SL[e, :q], SK[e, :q], is_lru, RESID[e, :n], PREV[e, : n + 1],
              NXT[e, : n + 1], BUF[e, : caps[e]], USAGE[e, : caps[e]], PBUF[e, :n], PST[e], caps[e], MARK[e, :n],
              MEMBER[e, :n], OBS[e], RES[e])  # fmt: skip
        r = RES[e, 1]
        ACC[e, 0] += RES[e, 0]
        ACC[e, 1] += r
        rew[e] = -r / scale[e]
        term[e] = ST[e, 2] == ST[e, 3]


class Prepared:
    """An episode's queries as the flat arrays the kernels read (arrival order; built once, replayable)."""

    def __init__(self, queries: list[Query]):
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
        self.width = int(max(u.shape[0] for u in ups))


_PAGE = ("need", "win", "mark", "member", "resident", "pbuf")  # one value per page
_TYPES = {
    "need": np.int32,
    "win": np.int32,
    "mark": np.int8,
    "resident": np.uint8,
    "qa": np.float64,
    "sk": np.float64,
    "scale": np.float64,
}  # fmt: skip  (the rest: int64)


class Store:
    """The state of `rows` episodes as 2-D arrays (row = env slot) so one kernel call steps them all.

    Every Episode's arrays are views of its row's prefix; the arrays grow (copied, views rebuilt) when an
    episode needs more room: more pages, queries, page references or wider slots.
    """

    def __init__(self, rows: int, max_queue: int, policy: str):
        self.rows, self.max_queue, self.is_lru = rows, max_queue, policy == "lru"
        self.obs = np.zeros((rows, flat_dim(max_queue)), np.float32)
        self.owner: list[Episode | None] = [None] * rows
        self.dims = {"n": 0, "q": 0, "p": 0, "a": 0, "c": 0, "w": 0}
        self.a: dict[str, np.ndarray] = {}
        for k in ("st", "res", "pst", "acc"):
            self.a[k] = np.zeros((rows, 4), np.int64)
        self.a["now"] = np.zeros((rows, 1), np.float64)
        for k in ("qn", "npg", "caps"):
            self.a[k] = np.zeros(rows, np.int64)
        self.a["scale"] = np.ones(rows, np.float64)
        self._alloc(1, 1, 1, 1, 1, 1)

    def _shapes(self, n, q, p, a, c, w) -> dict[str, tuple]:
        r, s = self.rows, self.max_queue
        lru = self.is_lru
        shp = {k: (r, n) for k in _PAGE}
        shp.update(prev=(r, n + 1 if lru else 1), nxt=(r, n + 1 if lru else 1), qa=(r, q), qo=(r, q + 1),
                   ao=(r, q + 1), qp=(r, p), ap=(r, a), buf=(r, 1 if lru else c), usage=(r, 1 if lru else c),
                   wslot=(r, s), sl=(r, s), sk=(r, s), sp=(r, s, w))  # fmt: skip
        if lru:
            shp["pbuf"] = (r, 1)
        return shp

    def _alloc(self, n, q, p, a, c, w) -> None:
        for k, shape in self._shapes(n, q, p, a, c, w).items():
            new = np.zeros(shape, _TYPES.get(k, np.int64))
            old = self.a.get(k)
            if old is not None:
                new[tuple(slice(0, m) for m in old.shape)] = old
            self.a[k] = new
        self.dims = dict(n=n, q=q, p=p, a=a, c=c, w=w)
        self.gen = getattr(self, "gen", -1) + 1
        a = self.a
        self._args = (a["qn"], a["npg"], a["caps"], a["scale"], self.is_lru, a["st"], a["now"], a["qa"], a["qp"],
                      a["qo"], a["ap"], a["ao"], a["need"], a["win"], a["wslot"], a["sp"], a["sl"], a["sk"],
                      a["resident"], a["prev"], a["nxt"], a["buf"], a["usage"], a["pbuf"], a["pst"], a["mark"],
                      a["member"], self.obs, a["res"], a["acc"])  # fmt: skip

    def ensure(self, n: int, q: int, p: int, a: int, c: int, w: int) -> None:
        """Room for an episode of n pages, q queries, p distinct and a read page references, pool c, width w."""
        want = dict(n=n, q=q, p=p, a=a, c=c, w=w)
        d = self.dims
        if all(want[k] <= d[k] for k in d):
            return
        self._alloc(*(d[k] if want[k] <= d[k] else max(want[k], int(d[k] * 1.5)) for k in d))
        for ep in self.owner:  # the live episodes move to the new arrays; the others re-attach on load
            if ep is not None:
                ep._attach()

    def step(self, acts: np.ndarray, rew: np.ndarray, term: np.ndarray) -> None:
        _step_rows(acts, *self._args, rew, term)


def _scale(wl: Workload) -> float:
    """Reward scale: the mean query size of a sample (as BufferPoolEnv; kept on the workload)."""
    s = wl.__dict__.get("_vec_scale")
    if s is None or s[0] != wl.queries:
        sample = wl.generate(12345, n=min(64, max(8, wl.queries)))
        s = wl.__dict__["_vec_scale"] = (wl.queries, float(np.mean([q.size for q in sample])))
    return s[1]


class Episode:
    """One episode as flat arrays (queries in arrival order, window, per-page counts, pool); one numba call
    per step runs the query, updates the counts and window and writes the next observation. The arrays are
    row `row` of a `Store` (a vector env's, or a private one-row store)."""

    def __init__(
        self,
        wl: Workload,
        buffer_pages: int | None = None,
        queue_size: int | None = None,
        policy: str = "lru",
        store: Store | None = None,
        row: int = 0,
    ):
        self.wl = wl
        self.cap = int(buffer_pages or wl.buffer_pages or max(1, wl.tables.n_pages // 4))
        self.queue = int(queue_size or wl.queue_size)
        if self.cap >= wl.tables.n_pages:
            raise LabError(f"buffer of {self.cap} pages holds all {wl.tables.n_pages} pages of {wl.name}")
        self.n = wl.tables.n_pages
        self.pool = BufferPool(self.n, self.cap, policy)
        self.scale = _scale(wl)
        self.store = store if store is not None else Store(1, self.queue, policy)
        self.row = int(row)
        if self.queue > self.store.max_queue:
            raise LabError(f"workload {wl.name}: queue {self.queue} > max_queue {self.store.max_queue}")
        self.out = self.store.obs[self.row]
        self._bound = False
        self._gen = -1  # the store generation the views were taken from
        self.prep: Prepared | None = None

    def _attach(self) -> None:
        """Views of this episode's row of the store (again after the store grows; the query arrays are whole
        rows: the kernels read them through the offsets and the query count)."""
        a, e, n, q = self.store.a, self.row, self.n, self.queue
        self._gen = self.store.gen
        self.st, self.now_a, self.res, self.acc = a["st"][e], a["now"][e], a["res"][e], a["acc"][e]
        self.qa, self.qo, self.ao, self.qp, self.ap = (a[k][e] for k in ("qa", "qo", "ao", "qp", "ap"))
        self.need, self.win, self.mark, self.member = (a[k][e, :n] for k in ("need", "win", "mark", "member"))
        self.wslot = a["wslot"][e, :q]
        sp = self.sp = object.__new__(SlotPages)
        sp.sp, sp.sl, sp.sk = a["sp"][e, :q], a["sl"][e, :q], a["sk"][e, :q]
        pool = self.pool
        pool.resident, pool.state = a["resident"][e, :n], a["pst"][e, :3]
        if pool.policy == "lru":
            pool.prev, pool.nxt = a["prev"][e, : n + 1], a["nxt"][e, : n + 1]
            args = (True, pool.resident, pool.prev, pool.nxt, a["buf"][e], a["usage"][e], a["pbuf"][e])
        else:
            pool.buf_page, pool.usage = a["buf"][e, : self.cap], a["usage"][e, : self.cap]
            pool.page_buf = a["pbuf"][e, :n]
            args = (False, pool.resident, a["prev"][e], a["nxt"][e], pool.buf_page, pool.usage, pool.page_buf)
        self._args = (self.st, self.now_a, self.qa, self.qp, self.qo, self.ap, self.ao, self.need, self.win,
                      self.wslot, sp.sp, sp.sl, sp.sk, *args, pool.state, self.cap, self.mark, self.member)  # fmt: skip
        if not self._bound:
            self.out = self.store.obs[e]

    def bind(self, out: np.ndarray) -> None:
        """Write observations straight into `out` (e.g. a row of the vector env's batch; extra = padding)."""
        self.out, self._bound = out, True

    def reset(self, seed: int | None = None, queries: list[Query] | None = None) -> None:
        if queries is None:
            queries = self.wl.generate(seed)
        self.load(Prepared(queries))

    def load(self, p: Prepared) -> None:
        """Start the episode `p` (e.g. one prepared ahead of time and replayed)."""
        s, e = self.store, self.row
        self.prep, self.qs = p, p.qs
        nq = len(p.qs)
        s.ensure(self.n + 1, nq, p.qp.shape[0], p.ap.shape[0], self.cap, p.width)
        s.owner[e] = self
        if self._gen != s.gen:
            self._attach()
        a = s.a
        self.qa[:nq] = p.qa
        self.qo[: nq + 1] = p.qo
        self.ao[: nq + 1] = p.ao
        self.qp[: p.qp.shape[0]] = p.qp
        self.ap[: p.ap.shape[0]] = p.ap
        a["qn"][e], a["npg"][e], a["caps"][e], a["scale"][e] = self.queue, self.n, self.cap, self.scale
        a["sl"][e] = 0  # slots past this workload's queue stay empty (masked)
        self.acc[:] = 0
        g = self._args
        _begin(*g[:5], *g[7:21], self.cap, self.mark, self.member, self.out, nq)

    @property
    def hits(self) -> int:
        return int(self.acc[0])

    @property
    def reads(self) -> int:
        return int(self.acc[1])

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
        self.acc[0] += self.res[0]
        self.acc[1] += r
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
    """`num_envs` episodes in lockstep; each reset draws a workload with `pick(rng)` (or cycles a list).

    All rows live in one `Store`, so a step is one compiled call over every episode (the Python side only
    starts new episodes); `episodes` (fixed, replayed) are prepared once.
    """

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
        self._prepared: dict[int, Prepared] = {}
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
        self._cache: dict[tuple[int, int], Episode] = {}
        self.seed_base, self.seed_pos = int(seed_base), 0
        dim = flat_dim(self.max_queue)
        self.single_observation_space = gym.spaces.Box(0.0, CLIP, shape=(dim,), dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(self.max_queue)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.eps: list[Episode] = [None] * self.num_envs  # type: ignore[list-item]
        self.store = Store(self.num_envs, self.max_queue, policy)
        self.obs = self.store.obs

    def _episode(self, wl: Workload, i: int) -> Episode:
        """A free Episode object for `wl` (one per env slot and workload, reused across episodes)."""
        key = (id(wl), i)
        ep = self._cache.get(key)
        if ep is None or ep.wl is not wl:
            ep = self._cache[key] = Episode(wl, policy=self.policy, store=self.store, row=i)
        return ep

    def _new(self, i: int) -> None:
        self.seed_pos += 1
        ep = self._episode(self._pick(self.rng), i)
        if self.episodes is not None:
            k = self.seed_pos % len(self.episodes)
            p = self._prepared.get(k)
            if p is None:
                p = self._prepared[k] = Prepared(self.episodes[k])
            ep.load(p)
        else:
            ep.reset(self.seed_base + self.seed_pos)
        self.eps[i] = ep

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.eps = [None] * self.num_envs  # type: ignore[list-item]
        for i in range(self.num_envs):
            self._new(i)
        return self.obs.copy(), {}

    def action_masks(self) -> np.ndarray:
        return self.store.a["sl"] > 0

    def step(self, actions):
        n = self.num_envs
        rew = np.zeros(n, np.float32)
        term = np.zeros(n, bool)
        ep_reads = np.full(n, -1, np.int64)
        ep_hits = np.full(n, -1, np.int64)
        self.store.step(np.asarray(actions, np.int64).reshape(n), rew, term)
        if term.any():
            acc = self.store.a["acc"]
            for i in np.flatnonzero(term).tolist():
                ep_hits[i], ep_reads[i] = acc[i, 0], acc[i, 1]
                self._new(i)
        infos = {"episode_reads": ep_reads, "episode_hits": ep_hits}
        return self.obs.copy(), rew, term, np.zeros(n, bool), infos
