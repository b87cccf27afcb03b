"""A planner: beam search over the exact simulator with a per-decision budget (a strong, slow reference).

At each decision it searches over the next `depth` choices from the current state (pool, queue window and
the backlog of queries that have already arrived, admitted into freed slots in arrival order, exactly as
the environment does). Every node is scored by its exact reads so far plus the reads of completing all
known queries with a base rule, simulated exactly on a copy of the pool (numba kernels): the better of
"fewest uncached pages" and "most cached pages" completions. The `width` best nodes of a level are
expanded further; the first choice of the best-scored node is taken. `budget` caps the completions
simulated per decision (the width shrinks for wide queues). It is online: queries that have not arrived
yet are not seen (for batch arrivals every query of the episode is known).

Because each node is scored by a full completion, the planner is never worse than its base rules on the
states it visits (a rollout policy improves on its base policy); it is not the exact optimum, which is
only computable for small batches (oracles.exact_order).
"""

from __future__ import annotations

import numpy as np

from lab_learnsched.bufferpool import _clock_access, _lru_access, njit
from lab_learnsched.scheduler_base import SchedState, Scheduler, require_slots
from lab_shared.errors import LabError


@njit(cache=True)
def _complete(
    resident,
    lru_prev,
    lru_nxt,
    clk_buf,
    clk_usage,
    clk_pbuf,
    state,
    is_lru,
    pages,
    offs,
    window,
    backlog,
    bpos,
    rule,
):
    """Reads of finishing every known query with a base rule (0: fewest uncached, 1: most cached).

    Works on copies: the caller's pool arrays are not modified.
    """
    res = resident.copy()
    st = state.copy()
    if is_lru:
        prev = lru_prev.copy()
        nxt = lru_nxt.copy()
    else:
        buf = clk_buf.copy()
        usage = clk_usage.copy()
        pbuf = clk_pbuf.copy()
    win = window.copy()
    b = bpos
    total = 0
    while True:
        best = -1
        best_key = 0
        for s in range(win.shape[0]):
            q = win[s]
            if q < 0:
                continue
            c = 0
            for j in range(offs[q], offs[q + 1]):
                c += res[pages[j]]
            n = offs[q + 1] - offs[q]
            key = (n - c) if rule == 0 else -c
            if best < 0 or key < best_key or (key == best_key and q < win[best]):
                best = s
                best_key = key
        if best < 0:
            break
        q = win[best]
        qp = pages[offs[q] : offs[q + 1]]
        if is_lru:
            h = _lru_access(qp, prev, nxt, res, st)
        else:
            h = _clock_access(qp, buf, usage, pbuf, res, st)
        total += qp.shape[0] - h
        if b < backlog.shape[0]:
            win[best] = backlog[b]
            b += 1
        else:
            win[best] = -1
    return total


_EMPTY = np.zeros(1, np.int64)


def _complete_pool(pool, pages, offs, window, backlog, bpos, rule) -> int:
    if pool.policy == "lru":
        return int(
            _complete(
                pool.resident,
                pool.prev,
                pool.nxt,
                _EMPTY,
                _EMPTY,
                _EMPTY,
                pool.state,
                True,
                pages,
                offs,
                window,
                backlog,
                bpos,
                rule,
            )
        )
    return int(
        _complete(
            pool.resident,
            _EMPTY,
            _EMPTY,
            pool.buf_page,
            pool.usage,
            pool.page_buf,
            pool.state,
            False,
            pages,
            offs,
            window,
            backlog,
            bpos,
            rule,
        )
    )


class Planner(Scheduler):
    """Beam search (width, depth) over exact simulations, completions by base rules; see module docstring."""

    def __init__(self, width: int = 4, depth: int = 3, budget: int = 256):
        if width < 1 or depth < 1 or budget < 1:
            raise LabError(f"planner needs width, depth and budget >= 1, got {width}, {depth}, {budget}")
        self.width, self.depth, self.budget = width, depth, budget
        self.name = f"planner:{width}:{depth}:{budget}"

    def choose(self, state: SchedState) -> int:
        valid = require_slots(state)
        if len(valid) == 1:
            return valid[0]
        known = [state.slots[i] for i in valid] + list(state.backlog)
        sizes = np.array([q.pages.shape[0] for q in known], np.int64)
        offs = np.zeros(len(known) + 1, np.int64)
        offs[1:] = np.cumsum(sizes)
        pages = np.concatenate([q.pages for q in known]).astype(np.int64)
        # query index = rank in arrival order, so the kernels' index tie-break is the FIFO tie-break
        order = sorted(range(len(known)), key=lambda k: (known[k].arrival, known[k].qid))
        rank = np.empty(len(known), np.int64)
        rank[order] = np.arange(len(known))
        inv = np.array(order, np.int64)
        pages_r = np.concatenate([pages[offs[k] : offs[k + 1]] for k in inv])
        offs_r = np.zeros(len(known) + 1, np.int64)
        offs_r[1:] = np.cumsum(sizes[inv])
        window = np.full(len(state.slots), -1, np.int64)
        for j, i in enumerate(valid):
            window[i] = rank[j]
        backlog = rank[len(valid) :].copy()
        # node: (score, reads so far, first slot, pool, window, backlog position)
        nodes = [(0, 0, -1, state.pool, window, 0)]
        best = None
        self.first_scores: dict[int, int] = {}  # best score found per first slot (distill.py's soft labels)
        spent = 0
        n_valid = len(valid)
        width = max(1, min(self.width, self.budget // (2 * n_valid * self.depth) or 1))
        for _ in range(self.depth):
            kids = []
            for _, reads, first, pool, win, bpos in nodes:
                for s in np.flatnonzero(win >= 0):
                    q = int(win[s])
                    c = pool.copy()
                    _, r = c.access(pages_r[offs_r[q] : offs_r[q + 1]])
                    w2 = win.copy()
                    b2 = bpos
                    if b2 < backlog.shape[0]:
                        w2[s] = backlog[b2]
                        b2 += 1
                    else:
                        w2[s] = -1
                    done = reads + r
                    if (w2 >= 0).any():
                        tail = min(
                            _complete_pool(c, pages_r, offs_r, w2, backlog, b2, 0),
                            _complete_pool(c, pages_r, offs_r, w2, backlog, b2, 1),
                        )
                        spent += 2
                    else:
                        tail = 0
                    f = int(s) if first < 0 else first
                    kids.append((done + tail, done, f, c, w2, b2))
                    self.first_scores[f] = min(self.first_scores.get(f, done + tail), done + tail)
            if not kids:
                break
            # equal scores: prefer the FIFO-earlier first choice (deterministic)
            kids.sort(key=lambda k: (k[0], rank_of(window, k[2])))
            if best is None or kids[0][0] < best[0]:
                best = kids[0]
            nodes = [k for k in kids[:width] if (k[4] >= 0).any()]
            if not nodes or spent >= self.budget:
                break
        return int(best[2])


def rank_of(window: np.ndarray, slot: int) -> int:
    return int(window[slot])
