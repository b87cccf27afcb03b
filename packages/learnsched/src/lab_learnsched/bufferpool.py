"""Fast page-granular buffer pool simulator (numba kernels over flat numpy state).

Pages are global ids (see workload.Tables). Policies:
- `lru`: least recently used, a doubly linked list over pages (O(1) per access).
- `clock`: PostgreSQL's clock sweep: usage count +1 per hit up to 5, a new buffer starts at 1, the hand
  decrements counts until it finds a buffer with count 0 and evicts it.
- `min`: Belady's MIN (offline; evicts the page whose next use is farthest). It needs the whole future, so
  it exists only in `simulate_order`, not as an online `BufferPool`.

Use `BufferPool` online (the environment executes one query at a time and inspects the cached set) and
`simulate_order` for "this order of queries -> per-query hits and reads" under any policy. Every result is
checked against `bufferpool_naive.py` (plain Python) in the tests. Without numba the same kernels run as plain
Python (correct but slow).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lab_shared.errors import LabError

try:  # numba makes the per-page loops ~100x faster; the code is the same without it
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing

    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f


POLICIES = ("lru", "clock", "min")
ONLINE_POLICIES = ("lru", "clock")
MAX_USAGE = 5  # PostgreSQL's BM_MAX_USAGE_COUNT


@njit(cache=True)
def _lru_access(pages, prev, nxt, resident, state):
    """Access pages in order; state = [count, capacity]. Returns hits."""
    head = prev.shape[0] - 1
    hits = 0
    for i in range(pages.shape[0]):
        p = pages[i]
        if resident[p]:
            hits += 1
            a = prev[p]
            b = nxt[p]
            nxt[a] = b
            prev[b] = a
        else:
            if state[0] >= state[1]:
                v = prev[head]
                a = prev[v]
                nxt[a] = head
                prev[head] = a
                resident[v] = 0
                state[0] -= 1
            resident[p] = 1
            state[0] += 1
        f = nxt[head]
        nxt[p] = f
        prev[f] = p
        prev[p] = head
        nxt[head] = p
    return hits


@njit(cache=True)
def _clock_access(pages, buf_page, usage, page_buf, resident, state):
    """Access pages in order; state = [buffers used, capacity, hand]. Returns hits."""
    cap = state[1]
    hits = 0
    for i in range(pages.shape[0]):
        p = pages[i]
        b = page_buf[p]
        if b >= 0:
            hits += 1
            if usage[b] < 5:
                usage[b] += 1
            continue
        if state[0] < cap:
            b = state[0]
            state[0] += 1
        else:
            h = state[2]
            while usage[h] > 0:
                usage[h] -= 1
                h += 1
                if h == cap:
                    h = 0
            b = h
            h += 1
            if h == cap:
                h = 0
            state[2] = h
            old = buf_page[b]
            page_buf[old] = -1
            resident[old] = 0
        buf_page[b] = p
        page_buf[p] = b
        usage[b] = 1
        resident[p] = 1
    return hits


@njit(cache=True)
def _count_cached(pages, resident):
    c = 0
    for i in range(pages.shape[0]):
        c += resident[pages[i]]
    return c


@njit(cache=True)
def _belady_hits(trace, n_pages, cap):
    """Belady's MIN (demand paging): hit flag of every access of `trace`."""
    t_len = trace.shape[0]
    never = t_len + 1
    nextuse = np.empty(t_len, np.int64)
    last = np.full(n_pages, never, np.int64)
    for i in range(t_len - 1, -1, -1):
        nextuse[i] = last[trace[i]]
        last[trace[i]] = i
    slot_page = np.full(cap, -1, np.int64)
    slot_next = np.zeros(cap, np.int64)
    page_slot = np.full(n_pages, -1, np.int64)
    used = 0
    hit = np.zeros(t_len, np.uint8)
    for i in range(t_len):
        p = trace[i]
        s = page_slot[p]
        if s >= 0:
            hit[i] = 1
        else:
            if used < cap:
                s = used
                used += 1
            else:
                s = 0
                best = slot_next[0]
                for j in range(1, cap):
                    if slot_next[j] > best:
                        best = slot_next[j]
                        s = j
                page_slot[slot_page[s]] = -1
            slot_page[s] = p
            page_slot[p] = s
        slot_next[s] = nextuse[i]
    return hit


class BufferPool:
    """An online buffer pool of `capacity` pages over `n_pages` global pages (policy lru or clock)."""

    def __init__(self, n_pages: int, capacity: int, policy: str = "lru"):
        if policy not in ONLINE_POLICIES:
            if policy == "min":
                raise LabError("policy 'min' is offline (needs the future): use simulate_order(..., 'min')")
            raise LabError(f"unknown buffer policy '{policy}' (choose from {', '.join(POLICIES)})")
        if capacity < 1:
            raise LabError(f"buffer capacity must be >= 1 page, got {capacity}")
        if n_pages < 1:
            raise LabError(f"need at least one page, got {n_pages}")
        self.n_pages, self.capacity, self.policy = int(n_pages), int(capacity), policy
        self.reset()

    def reset(self) -> None:
        """Empty (cold) pool."""
        n, cap = self.n_pages, self.capacity
        self.resident = np.zeros(n, np.uint8)
        if self.policy == "lru":
            self.prev = np.full(n + 1, n, np.int64)
            self.nxt = np.full(n + 1, n, np.int64)
            self.state = np.array([0, cap], np.int64)
        else:
            self.buf_page = np.full(cap, -1, np.int64)
            self.usage = np.zeros(cap, np.int64)
            self.page_buf = np.full(n, -1, np.int64)
            self.state = np.array([0, cap, 0], np.int64)

    def access(self, pages: np.ndarray) -> tuple[int, int]:
        """Read `pages` (int64 global ids) in order; returns (hits, reads)."""
        if self.policy == "lru":
            h = _lru_access(pages, self.prev, self.nxt, self.resident, self.state)
        else:
            h = _clock_access(pages, self.buf_page, self.usage, self.page_buf, self.resident, self.state)
        return int(h), int(pages.shape[0] - h)

    def count_cached(self, pages: np.ndarray) -> int:
        """How many of `pages` are in the pool now (repeats counted)."""
        return int(_count_cached(pages, self.resident))

    @property
    def used(self) -> int:
        return int(self.state[0])

    def copy(self) -> BufferPool:
        """An independent copy (for lookahead and search)."""
        new = object.__new__(BufferPool)
        new.n_pages, new.capacity, new.policy = self.n_pages, self.capacity, self.policy
        new.resident = self.resident.copy()
        new.state = self.state.copy()
        if self.policy == "lru":
            new.prev, new.nxt = self.prev.copy(), self.nxt.copy()
        else:
            new.buf_page, new.usage, new.page_buf = (
                self.buf_page.copy(),
                self.usage.copy(),
                self.page_buf.copy(),
            )
        return new

    @classmethod
    def from_cached(cls, n_pages: int, capacity: int, pages: np.ndarray, policy: str = "lru") -> BufferPool:
        """A pool warmed with `pages` (e.g. a pg_buffercache snapshot; the last ones most recent)."""
        pool = cls(n_pages, capacity, policy)
        pool.access(np.asarray(pages, dtype=np.int64))
        return pool


def simulate_order(
    n_pages: int,
    queries: Sequence[np.ndarray],
    capacity: int,
    policy: str = "lru",
    warm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run `queries` (each an int64 array of global pages, access order) in the given order.

    Returns per-query (hits, reads) arrays. `warm` pages are accessed first, uncounted (a warm start).
    """
    qs = [np.asarray(q, dtype=np.int64) for q in queries]
    if policy == "min":
        if capacity < 1:
            raise LabError(f"buffer capacity must be >= 1 page, got {capacity}")
        pre = np.asarray(warm if warm is not None else np.zeros(0), dtype=np.int64)
        trace = np.concatenate([pre] + qs) if qs else pre
        hit = _belady_hits(trace, n_pages, capacity)[pre.shape[0] :]
        bounds = np.cumsum([0] + [q.shape[0] for q in qs])
        hits = np.array([int(hit[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])], dtype=np.int64)
        return hits, np.array([q.shape[0] for q in qs], dtype=np.int64) - hits
    pool = BufferPool(n_pages, capacity, policy)
    if warm is not None:
        pool.access(np.asarray(warm, dtype=np.int64))
    hits = np.zeros(len(qs), np.int64)
    reads = np.zeros(len(qs), np.int64)
    for i, q in enumerate(qs):
        hits[i], reads[i] = pool.access(q)
    return hits, reads


def distinct_floor(queries: Sequence[np.ndarray], cached: np.ndarray | None = None) -> int:
    """Lower bound on disk reads of any order: distinct pages touched that are not cached at the start."""
    if not queries:
        return 0
    u = np.unique(np.concatenate([np.asarray(q, dtype=np.int64) for q in queries]))
    if cached is not None:
        u = u[cached[u] == 0]
    return int(u.shape[0])
