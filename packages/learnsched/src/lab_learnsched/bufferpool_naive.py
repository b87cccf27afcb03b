"""Plain, obviously-correct (slow) buffer pool simulators: the oracle the fast simulator is tested against.

Written for clarity, not speed: a Python list in recency order for LRU, explicit buffers with usage
counts and a hand for the clock sweep, and a literal scan of the future for Belady's MIN.
"""

from __future__ import annotations

from collections.abc import Sequence


def lru_hits(trace: Sequence[int], capacity: int) -> list[bool]:
    """LRU: `cache` lists resident pages, least recently used first."""
    cache: list[int] = []
    out = []
    for p in trace:
        if p in cache:
            out.append(True)
            cache.remove(p)
        else:
            out.append(False)
            if len(cache) == capacity:
                cache.pop(0)
        cache.append(p)
    return out


def clock_hits(trace: Sequence[int], capacity: int, max_usage: int = 5) -> list[bool]:
    """PostgreSQL-style clock sweep with usage counts capped at `max_usage`."""
    pages: list[int | None] = [None] * capacity
    usage = [0] * capacity
    hand = 0
    out = []
    for p in trace:
        if p in pages:
            b = pages.index(p)
            usage[b] = min(usage[b] + 1, max_usage)
            out.append(True)
            continue
        out.append(False)
        if None in pages:
            b = pages.index(None)
        else:
            while usage[hand] > 0:
                usage[hand] -= 1
                hand = (hand + 1) % capacity
            b = hand
            hand = (hand + 1) % capacity
        pages[b] = p
        usage[b] = 1
    return out


def min_hits(trace: Sequence[int], capacity: int) -> list[bool]:
    """Belady's MIN: on a miss with a full cache, evict the page used farthest in the future (or never)."""
    cache: list[int] = []
    out = []
    for i, p in enumerate(trace):
        if p in cache:
            out.append(True)
            continue
        out.append(False)
        if len(cache) == capacity:
            cache.remove(max(cache, key=lambda q: _next_use(trace, i, q)))
        cache.append(p)
    return out


def _next_use(trace: Sequence[int], i: int, q: int) -> int:
    """Index of the next access of page q after position i (len+1 if never)."""
    for j in range(i + 1, len(trace)):
        if trace[j] == q:
            return j
    return len(trace) + 1


HITS = {"lru": lru_hits, "clock": clock_hits, "min": min_hits}


def simulate_order_naive(
    queries: Sequence[Sequence[int]], capacity: int, policy: str = "lru", warm: Sequence[int] = ()
) -> tuple[list[int], list[int]]:
    """Same contract as bufferpool.simulate_order: per-query (hits, reads)."""
    trace = list(warm) + [int(p) for q in queries for p in q]
    flags = HITS[policy](trace, capacity)[len(warm) :]
    hits, reads, i = [], [], 0
    for q in queries:
        f = flags[i : i + len(q)]
        i += len(q)
        hits.append(sum(f))
        reads.append(len(f) - sum(f))
    return hits, reads
