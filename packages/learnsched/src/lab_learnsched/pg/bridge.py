"""From PostgreSQL to the simulator: relations as simulator tables, probed instances as `Query`s, the
live buffer pool (pg_buffercache) as a `BufferPool`, and predicted reads of a schedule.

Simulator tables are the workload's relations, heaps and btree indexes alike (an index is just another
file of pages), in a fixed order: the heap tables, then the indexes, each with its size in pages at load time.

The pool model: PostgreSQL's clock sweep (bufferpool's `clock` policy) over the buffers not held by other
relations (catalogs, lab_meta: the planner re-reads them for every query, so they stay resident and take
that room away from the workload). Workload buffers keep their buffer order and usage counts from
pg_buffercache, so right after a restart (free buffers handed out in id order, clock hand at 0) the model
starts in PostgreSQL's exact state.
"""

from __future__ import annotations

import numpy as np

from lab_learnsched.bufferpool import BufferPool
from lab_learnsched.pg.execute import Snapshot
from lab_learnsched.pg.templates import Instance, Template
from lab_learnsched.workload import Query, Tables, make_query


def workload_relations(templates: list[Template]) -> list[str]:
    """Heap tables then indexes that the templates read, each once, in first-use order."""
    heaps: list[str] = []
    idx: list[str] = []
    for t in templates:
        for a in t.access:
            if a.table not in heaps:
                heaps.append(a.table)
            if a.index not in idx:
                idx.append(a.index)
    return heaps + idx


def make_tables(templates: list[Template], pages: dict[str, int]) -> Tables:
    rels = workload_relations(templates)
    return Tables(tuple(rels), tuple(max(1, int(pages[r])) for r in rels))


def to_queries(tables: Tables, insts: list[Instance], blocks: list[dict[str, np.ndarray]]) -> list[Query]:
    """Probed instances as simulator queries (qid and arrival order = instance order)."""
    return [
        make_query(tables, i.template, b, qid=i.qid, arrival=float(n))
        for n, (i, b) in enumerate(zip(insts, blocks))
    ]


def snapshot_pages(tables: Tables, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """Global page ids and usage counts of the workload's buffers, in buffer-id order."""
    offs = tables.offsets
    pages, usage = [], []
    for b, rel in enumerate(snap.relation):
        if rel and rel in offs and 0 <= snap.block[b] < tables.size(rel):
            pages.append(offs[rel] + int(snap.block[b]))
            usage.append(int(snap.usage[b]))
    return np.asarray(pages, np.int64), np.asarray(usage, np.int64)


def capacity(snap: Snapshot) -> int:
    """Buffers available to the workload: the pool minus those holding other relations."""
    return max(1, snap.nbuffers - snap.other)


def pool_from_snapshot(
    tables: Tables, snap: Snapshot, policy: str = "clock", cap: int | None = None
) -> BufferPool:
    """A simulator pool in the state pg_buffercache shows (clock: exact buffers and usage counts)."""
    cap = cap or capacity(snap)
    pages, usage = snapshot_pages(tables, snap)
    if pages.size > cap:  # keep the most used ones (can only happen if other relations left the pool)
        keep = np.sort(np.argsort(-usage, kind="stable")[:cap])
        pages, usage = pages[keep], usage[keep]
    if policy != "clock":
        order = np.argsort(usage, kind="stable")  # least used first = least recent for LRU
        return BufferPool.from_cached(tables.n_pages, cap, pages[order], policy)
    pool = BufferPool(tables.n_pages, cap, "clock")
    n = pages.size
    pool.buf_page[:n] = pages
    pool.usage[:n] = np.clip(usage, 0, 5)
    pool.page_buf[pages] = np.arange(n)
    pool.resident[pages] = 1
    pool.state[0] = n
    pool.state[2] = 0
    return pool


def predict_reads(pool: BufferPool, queries: list[Query]) -> np.ndarray:
    """Per-query reads the simulator predicts for running `queries` in this order from `pool` (copied)."""
    p = pool.copy()
    return np.array([p.access(q.pages)[1] for q in queries], dtype=np.int64)


def exact_layout_pool(tables: Tables, snap: Snapshot) -> BufferPool:
    """The whole pool as pg_buffercache shows it: every buffer in place, other relations' pages as extra
    pseudo-pages (ids from tables.n_pages on) that the workload never touches again, so they age out as in
    PostgreSQL. Right after a restart this is PostgreSQL's exact clock state; used to predict reads."""
    n, offs = tables.n_pages, tables.offsets
    pool = BufferPool(n + snap.nbuffers, snap.nbuffers, "clock")
    used = [b for b, r in enumerate(snap.relation) if r is not None]
    for b in used:
        rel = snap.relation[b]
        p = offs[rel] + int(snap.block[b]) if rel and rel in offs else n + b
        pool.buf_page[b], pool.usage[b] = p, min(5, int(snap.usage[b]))
        pool.page_buf[p], pool.resident[p] = b, 1
    if used and used != list(range(len(used))):
        # buffers were freed out of order (a dropped relation): the hand position is unknown anyway
        free = [b for b in range(snap.nbuffers) if snap.relation[b] is None]
        for b in free:  # model free buffers as pseudo-pages with usage 0: the sweep takes them first
            pool.buf_page[b], pool.usage[b] = n + b, 0
            pool.page_buf[n + b], pool.resident[n + b] = b, 1
        pool.state[0] = snap.nbuffers
    else:
        pool.state[0] = len(used)
    pool.state[2] = 0
    return pool
