"""Shape-free features of the queued queries, for the permutation-invariant agent (agents/setnet.py).

Nothing here depends on the number or size of tables, the pool size or the queue size: every feature is a
fraction, a count relative to the pool, or a rank, so one network runs on any workload. Per queued query
(one token, `N_TOKEN` values; clipped to [0, CLIP]):

     0 valid                      8 evictions if run now / pool
     1 size / pool                9 of those victims, pages a known query still needs / pool
     2 cached fraction           10 the same weighted by how many queries need them / pool
     3 uncached (reads now)/pool 11 arrival rank in the window (0 oldest .. 1 newest)
     4 shared with the window    12 reads now, relative to the window's min and max
     5 shared with all known     13 reads now / the window's mean
     6 prefetch value: sum over its uncached pages of the other queries needing them / pool
     7 keep value: the same over its cached pages (running it refreshes them) / pool
    14 oldest in the window       15 victims needed / evictions
    16 two-step estimate: (reads now + min over other queued j of (j's reads now - pages of j this one
       brings in)) / pool, the lookahead:2 cost without evictions
    17 most pages it brings in for one other queued query / pool
    18 feature 16 relative to the window's min and max      19 fewest reads now in the window (1/0)
Pairwise terms need a bitmask per page, so windows wider than 64 slots get 16 = 3 and 17 = 0.

"known" = the window plus the backlog of queries that have arrived (predicted reuse). Victims are the
pages an LRU pool would evict (its tail, skipping the query's own pages); for the clock pool the needed
share of victims is estimated from the cached share. Globals (appended to every token, `N_GLOBAL`): pool
fill, log window size, log backlog, window reads-now / pool, window size / pool.

vecenv's kernels compile `set_features` into their own on-disk cache, which numba keys on vecenv.py alone:
after editing this file, touch vecenv.py (or its stale kernels keep the old features).
"""

from __future__ import annotations

import numpy as np

from lab_learnsched.bufferpool import njit
from lab_learnsched.features import unique_pages
from lab_learnsched.scheduler_base import SchedState

N_TOKEN = 20
N_GLOBAL = 5
CLIP = 10.0
# slot bit masks for the pairwise terms (slot 63: the sign bit)
_BIT = np.array([1 << k for k in range(63)] + [-(1 << 63)], np.int64)


@njit(cache=True)
def _ctz(low):
    """Index of the one set bit of `low` (a power of two below 2**63): the popcount of low - 1, in int64
    arithmetic that never overflows."""
    x = low - 1
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    x = x + (x >> 8)
    x = x + (x >> 16)
    x = x + (x >> 32)
    return x & 0x7F


@njit(cache=True)
def set_features(resident, prev, is_lru, cap, used, need, win, mark, member, sp, sl, sk, n_backlog, out):
    """Write the flat observation into `out`: globals, then a token per slot (empty slots zero).

    Slot i's query has the distinct pages sp[i, :sl[i]] (sl[i] = 0: empty slot) and arrival key sk[i].
    `member` (int64 per page, zero) is scratch for the slot bitmasks, `mark` (int8) for windows wider
    than 64 slots; both are left zeroed. One pass over each slot's pages gathers its counts and (bitmasks:
    the slots before it that hold the page) the pairwise counts; one walk of the LRU tail serves every slot.
    """
    s_n = sl.shape[0]
    head = resident.shape[0]
    capf = float(cap)
    out[:] = 0.0
    n_q = 0
    for i in range(s_n):
        if sl[i] > 0:
            n_q += 1
    if n_q == 0:
        return
    pair = s_n <= 64  # slot bitmasks per page: the pairwise terms, and "own page" in the victim walk
    # bring[i, k] = pages of slot k that running slot i reads from disk (so k then hits)
    bring = np.zeros((s_n, s_n) if pair else (1, 1), np.int64)
    ev = np.zeros(s_n, np.int64)  # evictions if run now
    cached = np.zeros(s_n, np.int64)
    m_min = 1 << 60
    m_max = 0
    m_sum = 0.0
    n_sum = 0.0
    walk = 0  # how far down the LRU tail any slot may look
    for i in range(s_n):
        n = sl[i]
        if n == 0:
            continue
        bit = _BIT[i] if pair else 1
        c = 0
        sh_w = 0
        sh_n = 0
        pre = 0
        keep = 0
        for j in range(n):
            p = sp[i, j]
            r = resident[p]
            c += r
            if win[p] > 1:
                sh_w += 1
            if need[p] > 1:
                sh_n += 1
                if r:
                    keep += need[p] - 1
                else:
                    pre += need[p] - 1
            if pair:
                before = member[p]  # slots < i holding p (never the sign bit: that is slot 63)
                member[p] = before | bit
                if before != 0 and r == 0:
                    while before != 0:
                        low = before & -before
                        k = _ctz(low)
                        bring[i, k] += 1
                        bring[k, i] += 1
                        before ^= low
        m = n - c
        e = used + m - cap
        if e < 0:
            e = 0
        if e > used:
            e = used
        ev[i] = e
        cached[i] = c
        if e > 0 and e + n > walk:
            walk = e + n
        rank = 0
        for k in range(s_n):
            if sl[k] > 0 and sk[k] < sk[i]:
                rank += 1
        o = N_GLOBAL + i * N_TOKEN
        out[o] = 1.0
        out[o + 1] = n / capf
        out[o + 2] = c / max(n, 1)
        out[o + 3] = m / capf
        out[o + 4] = sh_w / max(n, 1)
        out[o + 5] = sh_n / max(n, 1)
        out[o + 6] = pre / capf
        out[o + 7] = keep / capf
        out[o + 8] = e / capf
        out[o + 11] = rank / max(n_q - 1, 1)
        out[o + 14] = 1.0 if rank == 0 else 0.0
        m_min = min(m_min, m)
        m_max = max(m_max, m)
        m_sum += m
        n_sum += n
    # victims: the pages an LRU pool evicts, from its tail, skipping the query's own pages
    # (listed once, as far as the slots need: tail[:t_len], then on from `down`)
    tail = np.empty(walk if is_lru else 0, np.int64)
    t_len = 0
    down = prev[head] if is_lru else 0
    for i in range(s_n):
        e = ev[i]
        if sl[i] == 0 or e == 0:
            continue
        n = sl[i]
        dmg = 0
        wdmg = 0
        if is_lru:
            if not pair:
                for j in range(n):
                    mark[sp[i, j]] = 1
            bit = _BIT[i] if pair else 1
            got = 0
            stop = e + n
            t = 0
            while t < stop and got < e:
                if t == t_len:
                    if down == head:
                        break
                    tail[t_len] = down
                    t_len += 1
                    down = prev[down]
                v = tail[t]
                t += 1
                own = (member[v] & bit) != 0 if pair else mark[v] != 0
                if not own:
                    got += 1
                    if need[v] > 0:
                        dmg += 1
                        wdmg += need[v]
            if not pair:
                for j in range(n):
                    mark[sp[i, j]] = 0
        else:
            share = min(1.0, cached[i] / max(used, 1))
            dmg = int(e * share)
            wdmg = dmg
        o = N_GLOBAL + i * N_TOKEN
        out[o + 9] = dmg / capf
        out[o + 10] = wdmg / capf
        out[o + 15] = dmg / max(e, 1)
    if pair:
        for i in range(s_n):
            for j in range(sl[i]):
                member[sp[i, j]] = 0
    mean = m_sum / n_q
    la2_min = 1e18
    la2_max = -1e18
    for i in range(s_n):
        if sl[i] == 0:
            continue
        o = N_GLOBAL + i * N_TOKEN
        m = np.floor(out[o + 3] * capf + 0.5)  # back to the integer count
        out[o + 12] = (m - m_min) / max(m_max - m_min, 1)
        out[o + 13] = m / max(mean, 1.0)
        out[o + 19] = 1.0 if m == m_min else 0.0
        la2 = m
        best_bring = 0
        if pair and n_q > 1:
            nxt = 1e18
            for k in range(s_n):
                if k == i or sl[k] == 0:
                    continue
                mk = np.floor(out[N_GLOBAL + k * N_TOKEN + 3] * capf + 0.5)
                b = bring[i, k]
                if mk - b < nxt:
                    nxt = mk - b
                if b > best_bring:
                    best_bring = b
            la2 = m + nxt
        out[o + 16] = la2 / capf
        out[o + 17] = best_bring / capf
        la2_min = min(la2_min, la2)
        la2_max = max(la2_max, la2)
    for i in range(s_n):
        if sl[i] == 0:
            continue
        o = N_GLOBAL + i * N_TOKEN
        out[o + 18] = (out[o + 16] * capf - la2_min) / max(la2_max - la2_min, 1.0)
    out[0] = used / capf
    out[1] = np.log1p(n_q) / np.log(33.0)
    out[2] = np.log1p(n_backlog) / np.log(65.0)
    out[3] = m_sum / capf
    out[4] = n_sum / capf
    for f in range(N_GLOBAL + s_n * N_TOKEN):
        x = out[f]
        out[f] = 0.0 if x < 0.0 else (CLIP if x > CLIP else x)


class SlotPages:
    """The window's queries as fixed arrays for the kernel: distinct pages per slot, lengths, arrival keys."""

    def __init__(self, queue: int, width: int = 256):
        self.sp = np.zeros((queue, width), np.int64)
        self.sl = np.zeros(queue, np.int64)
        self.sk = np.zeros(queue, np.float64)

    def put(self, i: int, q) -> None:
        u = unique_pages(q)
        if u.shape[0] > self.sp.shape[1]:
            grown = np.zeros((self.sp.shape[0], max(u.shape[0], 2 * self.sp.shape[1])), np.int64)
            grown[:, : self.sp.shape[1]] = self.sp
            self.sp = grown
        self.sp[i, : u.shape[0]] = u
        self.sl[i] = u.shape[0]
        self.sk[i] = q.arrival + 1e-9 * q.qid  # FIFO order: arrival, then query id

    def clear(self, i: int) -> None:
        self.sl[i] = 0


def flat_dim(queue: int) -> int:
    """Length of a flat observation for a window of `queue` slots: globals, then one token per slot."""
    return N_GLOBAL + queue * N_TOKEN


class SetFeaturizer:
    """Observations for a `SchedState` from any source (simulator or PostgreSQL); counts built from scratch.

    `observe(state)` returns the flat float32 vector of `flat_dim(len(state.slots))` values, slot i's token
    at N_GLOBAL + i * N_TOKEN (empty slots all zero, valid flag 0).
    """

    def __init__(self) -> None:
        self._n = -1
        self._slots: SlotPages | None = None

    def _scratch(self, n_pages: int, queue: int) -> None:
        if n_pages != self._n:
            self._n = n_pages
            self.need = np.zeros(n_pages, np.int32)
            self.win = np.zeros(n_pages, np.int32)
            self.mark = np.zeros(n_pages, np.int8)
            self.member = np.zeros(n_pages, np.int64)
        if self._slots is None or self._slots.sl.shape[0] != queue:
            self._slots = SlotPages(queue)

    def observe(self, state: SchedState) -> np.ndarray:
        pool = state.pool
        s = len(state.slots)
        self._scratch(pool.n_pages, s)
        sp = self._slots
        ups = []
        for i, q in enumerate(state.slots):
            if q is None:
                sp.clear(i)
            else:
                sp.put(i, q)
                ups.append(unique_pages(q))
        back = [unique_pages(q) for q in state.backlog]
        for u in ups:
            self.win[u] += 1
            self.need[u] += 1
        for u in back:
            self.need[u] += 1
        out = np.zeros(flat_dim(s), np.float32)
        is_lru = pool.policy == "lru"
        prev = pool.prev if is_lru else np.zeros(1, np.int64)
        set_features(
            pool.resident,
            prev,
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
            len(state.backlog),
            out,
        )
        for u in ups:
            self.win[u] -= 1
            self.need[u] -= 1
        for u in back:
            self.need[u] -= 1
        return out
