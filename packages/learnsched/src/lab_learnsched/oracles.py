"""Search over query orders: exact optimum (branch and bound over all orders) and beam search.

Both evaluate orders on a copy of the current pool with the online policy (lru/clock), so "optimal" means
"fewest disk reads for this pool and these queries under this replacement policy". The lower bound used to
prune is the distinct-pages floor: every page a remaining query reads that is not cached now must be read
at least once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lab_learnsched.bufferpool import BufferPool

MAX_EXACT = 8  # 8! = 40,320 orders: exhaustive search stays well under a second with pruning


def _floor(pool: BufferPool, queries: Sequence[np.ndarray], remaining: list[int]) -> int:
    if not remaining:
        return 0
    u = np.unique(np.concatenate([queries[i] for i in remaining]))
    return int(u.shape[0] - pool.count_cached(u))


def exact_order(
    pool: BufferPool, queries: Sequence[np.ndarray], upper: int | None = None
) -> tuple[list[int], int]:
    """The order of `queries` with fewest reads from `pool` (not modified), by branch and bound.

    Exhaustive over all permutations (pruned only where the floor proves a branch cannot win), so the
    result is the exact optimum. Returns (order as indices, total reads).
    """
    n = len(queries)
    if n > MAX_EXACT + 2:
        raise ValueError(f"exact search over {n} queries is too expensive; use beam_order")
    if upper is None:
        _, upper = beam_order(pool, queries, width=4)
    best = [upper + 1, list(range(n))]

    def dfs(p: BufferPool, remaining: list[int], reads: int, prefix: list[int]) -> None:
        if not remaining:
            if reads < best[0]:
                best[0], best[1] = reads, prefix
            return
        if reads + _floor(p, queries, remaining) >= best[0]:
            return
        kids = []
        for i in remaining:
            c = p.copy()
            _, r = c.access(queries[i])
            kids.append((r, i, c))
        kids.sort(key=lambda k: k[0])
        for r, i, c in kids:
            if reads + r < best[0]:
                dfs(c, [j for j in remaining if j != i], reads + r, prefix + [i])

    dfs(pool, list(range(n)), 0, [])
    return best[1], int(best[0])


def beam_order(pool: BufferPool, queries: Sequence[np.ndarray], width: int = 32) -> tuple[list[int], int]:
    """Beam search over orders: keep the `width` prefixes with fewest reads (ties: lower floor)."""
    n = len(queries)
    beams: list[tuple[int, list[int], BufferPool]] = [(0, [], pool)]
    for _ in range(n):
        cand = []
        for reads, prefix, p in beams:
            used = set(prefix)
            for i in range(n):
                if i in used:
                    continue
                c = p.copy()
                _, r = c.access(queries[i])
                cand.append((reads + r, prefix + [i], c))
        if len(cand) > width:
            # tie-break equal reads by how many still-needed pages stay cached (more is better)
            keyed = []
            for reads, prefix, c in cand:
                rest = [j for j in range(n) if j not in set(prefix)]
                keyed.append((reads + _floor(c, queries, rest), reads, len(keyed)))
            keyed.sort()
            cand = [cand[k[2]] for k in keyed[:width]]
        beams = cand
    reads, order, _ = min(beams, key=lambda b: b[0])
    return order, int(reads)


def best_order(
    pool: BufferPool, queries: Sequence[np.ndarray], beam_width: int = 32
) -> tuple[list[int], int, bool]:
    """Exact optimum for <= MAX_EXACT queries, beam search beyond. Returns (order, reads, exact)."""
    if len(queries) <= MAX_EXACT:
        order, reads = exact_order(pool, queries)
        return order, reads, True
    order, reads = beam_order(pool, queries, beam_width)
    return order, reads, False
