"""Which blocks a query instance reads, per relation (heap and index), found by probing; cached on disk.

Heap: the pages of the rows the index condition selects, `(ctid::text::point)[0]` of
`SELECT ctid FROM table WHERE <index condition>`. An index scan or bitmap heap scan reads exactly these.
Index: the btree's structure read once per index with pageinspect (leaf pages with the heap TIDs they hold,
internal pages with their downlinks). The scan reads the root-to-leaf path down to its first leaf, then
walks right along the leaves holding a matching entry; the leaves are found from the matching rows' TIDs.
The btree metapage is not counted: the backend caches it after planning (relcache), queries don't re-read it.

Every instance's blocks are cached in `<cache>/probe-<load id>.json` (load id: a fresh one per `lab sched pg
load`), so a workload of real SQL becomes a simulator workload once and agents train on it in simulation.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lab_learnsched.pg.conn import first_line
from lab_learnsched.pg.templates import Instance, Template, params_to_json, read_only
from lab_shared.errors import LabError
from lab_shared.io import atomic_write_text

if TYPE_CHECKING:
    import psycopg

TID = "((%s::text::point)[0]::bigint * 65536 + (%s::text::point)[1]::bigint)"


def cache_dir() -> Path:
    """$LAB_PG_CACHE, else <$LAB_RUNS or runs>/sched-pg/cache."""
    env = os.environ.get("LAB_PG_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("LAB_RUNS", "runs")) / "sched-pg" / "cache"


@dataclass
class IndexMap:
    """A btree's shape: heap TID -> leaf page, leaf chain order, parent of every page, root."""

    name: str
    tid_keys: np.ndarray  # sorted heap TIDs (block * 65536 + offset) held by leaf items
    tid_leaf: np.ndarray  # the leaf page of each
    leaf_pos: dict[int, int]  # leaf page -> position in the left-to-right chain
    parent: dict[int, int]
    root: int

    def leaves_of(self, tids: np.ndarray) -> np.ndarray:
        """Leaf pages holding entries for `tids`, in chain (key) order."""
        if tids.size == 0:
            return np.zeros(0, np.int64)
        i = np.searchsorted(self.tid_keys, tids)
        i = np.clip(i, 0, max(0, self.tid_keys.size - 1))
        ok = self.tid_keys[i] == tids if self.tid_keys.size else np.zeros(tids.size, bool)
        if not ok.all():
            raise LabError(
                f"index {self.name}: {int((~ok).sum())} matching rows have no entry (index changed?)"
            )
        leaves = np.unique(self.tid_leaf[i])
        return np.array(sorted(leaves.tolist(), key=self.leaf_pos.__getitem__), dtype=np.int64)

    def path_to(self, leaf: int) -> list[int]:
        """Root-to-leaf pages above `leaf` (root first), excluding the leaf."""
        out, p = [], leaf
        while p in self.parent:
            p = self.parent[p]
            out.append(p)
        return out[::-1]


def read_index_map(conn: psycopg.Connection, index: str) -> IndexMap:
    """Walk a btree with pageinspect (reads every page of it; done once per index before measuring)."""
    import psycopg

    try:
        nblocks = conn.execute(
            "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int", (index,)
        ).fetchone()[0]
        root = conn.execute("SELECT root FROM bt_metap(%s)", (index,)).fetchone()[0]
        stats = conn.execute(
            "SELECT s.blkno, s.btpo_level, s.btpo_prev, s.btpo_next FROM generate_series(1, %s - 1) b, "
            "LATERAL bt_page_stats(%s, b::bigint) s WHERE s.type IN ('l', 'i', 'r')",
            (nblocks, index),
        ).fetchall()
        items = conn.execute(
            "SELECT s.blkno, s.btpo_level, (i.ctid::text::point)[0]::bigint, "
            f"CASE WHEN s.btpo_level = 0 THEN {TID % ('u.t', 'u.t')} END "
            "FROM generate_series(1, %s - 1) b, LATERAL bt_page_stats(%s, b::bigint) s, "
            "LATERAL bt_page_items(%s, b::bigint) i, "
            "LATERAL unnest(CASE WHEN s.btpo_level = 0 THEN coalesce(i.tids, ARRAY[i.htid]) ELSE ARRAY[NULL::tid] END) u(t) "
            "WHERE s.type IN ('l', 'i', 'r') AND NOT (s.btpo_next <> 0 AND i.itemoffset = 1)",
            (nblocks, index, index),
        ).fetchall()
    except psycopg.Error as e:
        raise LabError(f"cannot read the structure of index {index}: {first_line(e)}") from None
    level = {int(b): int(lv) for b, lv, _, _ in stats}
    nxt = {int(b): int(n) for b, lv, _, n in stats if lv == 0}
    firsts = [int(b) for b, lv, prev, _ in stats if lv == 0 and prev == 0]
    leaf_pos: dict[int, int] = {}
    if firsts:
        b, pos = firsts[0], 0
        while b and b not in leaf_pos and b in nxt:
            leaf_pos[b] = pos
            pos += 1
            b = nxt[b]
    parent: dict[int, int] = {}
    keys, leaves = [], []
    for blk, lv, down, tid in items:
        if lv > 0:
            parent[int(down)] = int(blk)
        elif tid is not None:
            keys.append(int(tid))
            leaves.append(int(blk))
    k = np.asarray(keys, dtype=np.int64)
    lf = np.asarray(leaves, dtype=np.int64)
    order = np.argsort(k, kind="stable")
    if root not in level:
        root = min(level, default=1)
    return IndexMap(index, k[order], lf[order], leaf_pos, parent, int(root))


def heap_tids(conn: psycopg.Connection, table: str, where: str, params: dict) -> np.ndarray:
    """Sorted heap TIDs (block * 65536 + offset) of the rows `where` selects."""
    import psycopg
    from psycopg import sql as psql

    q = psql.SQL("SELECT " + TID % ("ctid", "ctid") + " FROM {t} WHERE ").format(t=psql.Identifier(table))
    try:
        with read_only(conn):  # the condition came from a template: checked, and still read-only here
            rows = conn.execute(q + psql.SQL(where), params).fetchall()
    except psycopg.Error as e:
        raise LabError(f"probe of {table} WHERE {where}: {first_line(e)}") from None
    return np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))


def probe_instance(
    conn: psycopg.Connection, template: Template, inst: Instance, maps: dict[str, IndexMap]
) -> dict[str, list[int]]:
    """Blocks per relation in access order: each access's index path + leaves, then its heap pages."""
    out: dict[str, list[int]] = {}

    def add(rel: str, blocks: list[int]) -> None:
        seen = out.setdefault(rel, [])
        have = set(seen)
        seen.extend(b for b in blocks if b not in have and not have.add(b))

    for a in template.access:
        imap = maps.get(a.index) or maps.setdefault(a.index, read_index_map(conn, a.index))
        tids = heap_tids(conn, a.table, a.where, inst.params)
        leaves = imap.leaves_of(tids)
        first = int(leaves[0]) if leaves.size else imap.root
        path = imap.path_to(first) if leaves.size else [imap.root]
        add(a.index, path + leaves.tolist())
        add(a.table, np.unique(tids >> 16).tolist())
    return out


def instance_key(template: Template, inst: Instance) -> str:
    blob = json.dumps([template.sql, [a.__dict__ for a in template.access], params_to_json(inst.params)],
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


class ProbeCache:
    """Probed blocks of instances, persisted per load id (JSON, written atomically)."""

    def __init__(self, load_id: str, root: Path | None = None):
        self.path = (root or cache_dir()) / f"probe-{load_id}.json"
        self.data: dict[str, dict[str, list[int]]] = {}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                self.data = {}  # a corrupt cache is only a cache: probe again
        self.dirty = False

    def get_or_probe(
        self, conn: psycopg.Connection, templates: dict[str, Template], insts: list[Instance]
    ) -> list[dict[str, np.ndarray]]:
        maps: dict[str, IndexMap] = {}
        out = []
        for inst in insts:
            t = templates[inst.template]
            k = instance_key(t, inst)
            if k not in self.data:
                self.data[k] = probe_instance(conn, t, inst, maps)
                self.dirty = True
            out.append({rel: np.asarray(b, dtype=np.int64) for rel, b in self.data[k].items()})
        self.save()
        return out

    def save(self) -> None:
        if self.dirty:
            atomic_write_text(self.path, json.dumps(self.data))
            self.dirty = False
