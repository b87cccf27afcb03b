"""Exact access sets of arbitrary SELECTs by tracing: run each instance alone on a cold, large pool and read
which blocks of which relation pg_buffercache then holds (in buffer order = first-access order).

This is how TPC-H queries (joins, subqueries, no hand-written access lists) become simulator queries. It
needs our own cluster (restarts, a temporary shared_buffers large enough that no scan goes through a ring
buffer: four times the largest relation); the pool size is restored afterwards. Results are cached per load
id like probes (`<cache>/trace-<load id>.json`), so training instances are traced once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from lab_learnsched.pg.conn import Target
from lab_learnsched.pg.execute import PgExecutor
from lab_learnsched.pg.probe import cache_dir
from lab_learnsched.pg.templates import Instance, params_to_json
from lab_shared.errors import LabError
from lab_shared.io import atomic_write_text
from lab_shared.logs import get_logger

log = get_logger("lab.sched.pg")


def trace_key(sql: str, inst: Instance) -> str:
    blob = json.dumps([sql, params_to_json(inst.params)], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


def trace_pool_size(pages: dict[str, int]) -> str:
    """A shared_buffers that holds everything and keeps every relation below a quarter of the pool."""
    need = max(4 * max(pages.values(), default=1), sum(pages.values())) + 512
    return f"{(need * 8 + 1023) // 1024}MB"


class TraceCache:
    """Traced blocks per instance, persisted per load id (JSON, written atomically)."""

    def __init__(self, load_id: str, root: Path | None = None):
        self.path = (root or cache_dir()) / f"trace-{load_id}.json"
        self.data: dict[str, dict[str, list[int]]] = {}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                self.data = {}

    def get_or_trace(
        self, target: Target, templates: dict[str, Any], insts: list[Instance], relations: list[str],
        pages: dict[str, int],
    ) -> list[dict[str, np.ndarray]]:  # fmt: skip
        todo = [i for i in insts if trace_key(templates[i.template].sql, i) not in self.data]
        if todo:
            if target.cluster is None:
                raise LabError(
                    "tracing access sets needs our own cluster (`lab sched pg up`), not a --dsn server"
                )
            self._trace(target, templates, todo, relations, pages)
        return [
            {
                r: np.asarray(b, np.int64)
                for r, b in self.data[trace_key(templates[i.template].sql, i)].items()
            }
            for i in insts
        ]

    def _trace(
        self, target: Target, templates: dict, insts: list[Instance], relations: list[str], pages
    ) -> None:
        cluster = target.cluster
        old = cluster.shared_buffers
        big = trace_pool_size(pages)
        log.info("tracing %d instances on a cold %s pool (cached after the first time)", len(insts), big)
        cluster.set_shared_buffers(big)
        try:
            with PgExecutor(target, relations) as ex:
                for n, inst in enumerate(insts):
                    ex.reset()
                    ex.warm(templates, [inst])
                    ex.run(templates[inst.template], inst)
                    snap = ex.snapshot()
                    blocks: dict[str, list[int]] = {}
                    for rel, blk in zip(snap.relation, snap.block.tolist()):  # buffer order = first access
                        if rel:
                            blocks.setdefault(rel, []).append(int(blk))
                    if not blocks:
                        raise LabError(f"{inst.template}: the traced run read no block of the workload")
                    self.data[trace_key(templates[inst.template].sql, inst)] = blocks
                    if n % 50 == 49:
                        self.save()
        finally:
            self.save()
            cluster.set_shared_buffers(old)

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data))
