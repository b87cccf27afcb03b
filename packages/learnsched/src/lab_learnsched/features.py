"""Observation features of a scheduling state (shared by the Gym env, the agents and the PostgreSQL side).

Layout of the flat float32 vector (T tables, B bins per table, S queue slots, F slot features):

    [ pool bitmap: T*B ]  fraction of each bin's pages cached (a downsampled per-table bitmap)
    [ globals: 3 ]        pool fill, queued/S, backlog/S
    S x [ query bitmap: T*B | F features ]

Slot features (0 for an empty slot): valid, size/capacity, cached fraction, cached/capacity,
uncached (= reads if run now)/capacity, arrival rank in the queue, fraction of its pages other queued
queries also read, fraction of its *uncached* pages other queued queries also read (what running it
would prefetch for the others). The last three give a learned policy the long-term signal that the
greedy heuristic lacks. Values are clipped to [0, CLIP].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab_learnsched.bufferpool import njit
from lab_learnsched.scheduler_base import SchedState
from lab_learnsched.workload import Query, Tables

N_GLOBAL = 3
N_SLOT_FEATURES = 8
CLIP = 10.0


def unique_pages(q: Query) -> np.ndarray:
    """The query's distinct pages (cached on the query; queries are immutable)."""
    u = q.__dict__.get("_upages")
    if u is None:
        u = q.__dict__["_upages"] = np.unique(q.pages)
    return u


@njit(cache=True)
def _slot_stats(resident, pages, offsets, counts):
    """Per slot: distinct pages, cached, read by another queued query too, and the latter among uncached."""
    n = offsets.shape[0] - 1
    out = np.zeros((n, 4), np.int64)
    for i in range(pages.shape[0]):
        counts[pages[i]] += 1
    for k in range(n):
        for j in range(offsets[k], offsets[k + 1]):
            p = pages[j]
            c = resident[p]
            sh = counts[p] > 1
            out[k, 0] += 1
            out[k, 1] += c
            out[k, 2] += sh
            out[k, 3] += sh and not c
    for i in range(pages.shape[0]):
        counts[pages[i]] = 0
    return out


@dataclass(frozen=True)
class ObsSpec:
    """Everything needed to rebuild the featurizer (saved with agent checkpoints)."""

    table_pages: tuple[int, ...]
    capacity: int
    queue_size: int
    bins: int = 32

    @property
    def bitmap_dim(self) -> int:
        return len(self.table_pages) * self.bins

    @property
    def slot_dim(self) -> int:
        return self.bitmap_dim + N_SLOT_FEATURES

    @property
    def dim(self) -> int:
        return self.bitmap_dim + N_GLOBAL + self.queue_size * self.slot_dim


class Featurizer:
    """Builds observation vectors; caches each query's bitmap (queries are immutable)."""

    def __init__(self, spec: ObsSpec):
        self.spec = spec
        b = spec.bins
        bins = []
        for t, n in enumerate(spec.table_pages):
            # page -> bin within its table (bins of near-equal size; tables smaller than B use fewer bins)
            bins.append(t * b + (np.arange(n, dtype=np.int64) * b) // n)
        self.bin_of_page = np.concatenate(bins)
        self.bin_sizes = np.maximum(np.bincount(self.bin_of_page, minlength=spec.bitmap_dim), 1).astype(
            np.float32
        )
        self.n_pages = int(self.bin_of_page.shape[0])
        self._counts = np.zeros(self.n_pages, np.int64)  # scratch for _slot_stats (left zeroed)

    @classmethod
    def for_tables(cls, tables: Tables, capacity: int, queue_size: int, bins: int = 32) -> Featurizer:
        return cls(ObsSpec(tables.pages, capacity, queue_size, bins))

    def query_bitmap(self, q: Query) -> np.ndarray:
        cached = q.__dict__.get("_bitmap")  # cached on the query itself (ids of freed arrays get reused)
        if cached is not None and cached[0] == self.spec:
            return cached[1]
        u = unique_pages(q)
        v = (np.bincount(self.bin_of_page[u], minlength=self.spec.bitmap_dim) / self.bin_sizes).astype(
            np.float32
        )
        q.__dict__["_bitmap"] = (self.spec, v)
        return v

    def observe(self, state: SchedState) -> np.ndarray:
        sp = self.spec
        res = state.pool.resident
        out = np.zeros(sp.dim, dtype=np.float32)
        bd = sp.bitmap_dim
        out[:bd] = np.bincount(self.bin_of_page, weights=res, minlength=bd) / self.bin_sizes
        valid = [i for i, q in enumerate(state.slots) if q is not None]
        cap = float(sp.capacity)
        out[bd] = state.pool.used / cap
        out[bd + 1] = len(valid) / sp.queue_size
        out[bd + 2] = min(len(state.backlog) / sp.queue_size, CLIP)
        if not valid:
            return out
        ups = [unique_pages(state.slots[i]) for i in valid]
        offs = np.zeros(len(ups) + 1, np.int64)
        offs[1:] = np.cumsum([len(u) for u in ups])
        stats = _slot_stats(res, np.concatenate(ups), offs, self._counts)
        order = sorted(valid, key=lambda i: (state.slots[i].arrival, state.slots[i].qid))
        rank = {i: r for r, i in enumerate(order)}
        base = bd + N_GLOBAL
        denom = max(len(valid) - 1, 1)
        for k, i in enumerate(valid):
            q = state.slots[i]
            n_u, n_cached, n_shared, n_shared_unc = stats[k]
            o = base + i * sp.slot_dim
            out[o : o + bd] = self.query_bitmap(q)
            f = o + bd
            out[f] = 1.0
            out[f + 1] = q.size / cap
            out[f + 2] = n_cached / max(n_u, 1)
            out[f + 3] = n_cached / cap
            out[f + 4] = (n_u - n_cached) / cap
            out[f + 5] = rank[i] / denom
            out[f + 6] = n_shared / max(n_u, 1)
            out[f + 7] = n_shared_unc / max(n_u - n_cached, 1)
        np.clip(out, 0.0, CLIP, out=out)
        return out
