"""Running query instances on the real server and reading its buffer pool.

An episode: `reset()` (cold restart of our cluster, plus, only when asked, dropping the whole machine's OS
page cache as root; on a user's --dsn, which we cannot restart, evict our pages by prewarming a filler
table), `warm(...)` (plan every
instance once without running it, so catalog pages, btree metapages and the planner's index probes are in the
pool identically for every policy), `snapshot()` (pg_buffercache: which page of which relation sits in
which buffer, with its usage count), then `run(...)` per query: EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
with bound parameters gives shared hits/reads (execution; planning reported apart) and times. Every template
runs inside a READ ONLY transaction that is rolled back afterwards.

Session settings: sequential scans off (a seq scan of a relation larger than a quarter of shared_buffers goes
through a private 256 kB ring and would bypass the pool we schedule for), no parallel workers, no JIT.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lab_learnsched.pg.conn import SCHEMA, Target, connect, first_line
from lab_learnsched.pg.templates import Instance, Template, read_only
from lab_shared.errors import LabError

if TYPE_CHECKING:
    import psycopg

SESSION_SETTINGS = ("SET enable_seqscan = off", "SET max_parallel_workers_per_gather = 0", "SET jit = off")
FILLER = "lab_filler"


@dataclass
class QueryRun:
    """What PostgreSQL reported for one executed query."""

    qid: int
    template: str
    hits: int
    reads: int
    plan_hits: int
    plan_reads: int
    exec_ms: float
    wall_ms: float
    scans: list[str] = field(default_factory=list)  # "Index Scan on lineitem using lineitem_pkey", ...


@dataclass
class Snapshot:
    """The buffer pool: per buffer id the (relation, block) it holds and its usage count."""

    nbuffers: int
    relation: list[str | None]  # per buffer: one of our relations, "" for another one, None when unused
    block: np.ndarray  # per buffer: block number (-1 when unused / not ours)
    usage: np.ndarray  # per buffer: usage count

    def blocks_of(self, rel: str) -> np.ndarray:
        idx = [i for i, r in enumerate(self.relation) if r == rel]
        return np.sort(self.block[idx]) if idx else np.zeros(0, np.int64)

    @property
    def used(self) -> int:
        return sum(r is not None for r in self.relation)

    @property
    def other(self) -> int:
        """Buffers holding pages of relations outside the workload (catalogs, lab_meta, ...)."""
        return sum(r == "" for r in self.relation)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.relation:
            if r:
                out[r] = out.get(r, 0) + 1
        return out


def _scans(plan: dict, out: list[str]) -> list[str]:
    nt = plan.get("Node Type", "")
    if "Scan" in nt:
        s = nt
        if "Relation Name" in plan:
            s += f" on {plan['Relation Name']}"
        if "Index Name" in plan:
            s += f" using {plan['Index Name']}"
        out.append(s)
    for child in plan.get("Plans", []):
        _scans(child, out)
    return out


class PgExecutor:
    """One measurement session on a database (our cluster or a user's DSN) over the workload's relations."""

    def __init__(self, target: Target, relations: list[str], drop_os_cache: bool = False):
        self.target = target
        self.relations = list(relations)
        self.drop_os_cache = drop_os_cache
        self.conn: psycopg.Connection | None = None
        self._filenodes: dict[int, str] = {}
        self.nbuffers = 0
        self._open()

    # --- connection ------------------------------------------------------------------------------------
    def _open(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = connect(self.target.dsn)
        for s in SESSION_SETTINGS:
            self.conn.execute(s)
        self.nbuffers = int(self.conn.execute("SELECT setting::int FROM pg_settings WHERE name = 'shared_buffers'")
                            .fetchone()[0])  # fmt: skip
        rows = self.conn.execute(
            "SELECT pg_relation_filenode(oid), relname FROM pg_class WHERE relname = ANY(%s)",
            (self.relations,),
        ).fetchall()
        self._filenodes = {int(f): n for f, n in rows if f is not None}
        missing = set(self.relations) - set(self._filenodes.values())
        if missing:
            raise LabError(f"relations missing in the database: {sorted(missing)} (run `lab sched pg load`)")
        self._db_oid = self.conn.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> PgExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- episode reset ---------------------------------------------------------------------------------
    def reset(self) -> dict[str, Any]:
        """Empty the buffer pool. Returns how: {'method', 'os_cache_dropped', 'seconds'}."""
        t0 = time.perf_counter()
        if self.target.cluster is not None:
            self.close()
            dropped = self.target.cluster.restart(drop_os_cache=self.drop_os_cache)
            self._open()
            method = "restart"
        else:
            self._evict()
            dropped, method = False, "evict"
        return {"method": method, "os_cache_dropped": dropped, "seconds": round(time.perf_counter() - t0, 3)}

    def _evict(self) -> None:
        """Push our pages out of a server we cannot restart: read a pool-sized filler table via pg_prewarm."""
        import psycopg

        c = self.conn
        try:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        except psycopg.Error as e:
            raise LabError(
                f"a --dsn database needs pg_prewarm to empty its buffer pool: {first_line(e)}"
            ) from None
        pages = c.execute(
            "SELECT coalesce(pg_relation_size(to_regclass(%s)), 0) / 8192", (f"{SCHEMA}.{FILLER}",)
        ).fetchone()[0]
        if pages < self.nbuffers:
            c.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{FILLER}")
            c.execute(f"CREATE TABLE {SCHEMA}.{FILLER} WITH (fillfactor = 10) AS "
                      f"SELECT g AS id, repeat('x', 500) AS pad FROM generate_series(1, %s) g", (self.nbuffers + 64,))  # fmt: skip
        for _ in range(8):  # usage counts go up to 5: a few sweeps empty the pool of our pages
            c.execute("SELECT pg_prewarm(%s::regclass, 'buffer')", (f"{SCHEMA}.{FILLER}",))
            if not any(r for r in self.snapshot().relation if r):
                return
        raise LabError("could not evict the workload's pages from the buffer pool (is another session busy?)")

    def warm(self, templates: dict[str, Template], insts: list[Instance]) -> dict[str, int]:
        """Plan every instance once (no execution): the same warm start for every schedule of `insts`."""
        hits = reads = 0
        for inst in insts:
            res = self._explain(templates[inst.template], inst, analyze=False)
            p = res.get("Planning", {})
            hits += int(p.get("Shared Hit Blocks", 0))
            reads += int(p.get("Shared Read Blocks", 0))
        return {"plan_hits": hits, "plan_reads": reads}

    # --- measuring -------------------------------------------------------------------------------------
    def _explain(self, t: Template, inst: Instance, analyze: bool) -> dict:
        import psycopg

        opts = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "BUFFERS, FORMAT JSON"
        try:
            with read_only(self.conn):  # a READ ONLY transaction, rolled back after EXPLAIN ANALYZE
                row = self.conn.execute(f"EXPLAIN ({opts}) {t.sql}", inst.params).fetchone()
        except psycopg.Error as e:
            raise LabError(f"template '{t.name}' ({inst.key()}): {first_line(e)}") from None
        doc = row[0]
        if isinstance(doc, str):
            import json

            doc = json.loads(doc)
        return doc[0]

    def run(self, t: Template, inst: Instance) -> QueryRun:
        """Execute one instance; shared hits/reads of execution (the plan tree's totals) and of planning."""
        t0 = time.perf_counter()
        res = self._explain(t, inst, analyze=True)
        wall = (time.perf_counter() - t0) * 1000
        plan, planning = res["Plan"], res.get("Planning", {})
        return QueryRun(
            inst.qid, inst.template, int(plan.get("Shared Hit Blocks", 0)), int(plan.get("Shared Read Blocks", 0)),
            int(planning.get("Shared Hit Blocks", 0)), int(planning.get("Shared Read Blocks", 0)),
            float(res.get("Execution Time", 0.0)), wall, _scans(plan, []),
        )  # fmt: skip

    # --- pg_stat_statements: an independent count of the same reads ---------------------------------
    def stats_reset(self) -> bool:
        """Zero pg_stat_statements (False when the extension is not usable here)."""
        import psycopg

        try:
            self.conn.execute("SELECT pg_stat_statements_reset()")
            return True
        except psycopg.Error:
            return False

    def stats_reads(self) -> int | None:
        """Shared reads pg_stat_statements counted for our EXPLAIN ANALYZE statements since `stats_reset`."""
        import psycopg

        try:
            row = self.conn.execute(
                "SELECT sum(shared_blks_read) FROM pg_stat_statements "
                "WHERE dbid = %s AND query LIKE 'EXPLAIN (ANALYZE, BUFFERS%%'",
                (self._db_oid,),
            ).fetchone()
        except psycopg.Error:
            return None
        return int(row[0] or 0)

    def snapshot(self) -> Snapshot:
        """Read pg_buffercache: every buffer's relation (ours by name, '' other, None unused), block, usage."""
        rows = self.conn.execute(
            "SELECT bufferid, relfilenode, reldatabase, relforknumber, relblocknumber, usagecount "
            "FROM pg_buffercache ORDER BY bufferid"
        ).fetchall()
        n = len(rows)
        rel: list[str | None] = [None] * n
        block = np.full(n, -1, np.int64)
        usage = np.zeros(n, np.int64)
        for i, (_bid, fnode, db, fork, blk, uc) in enumerate(rows):
            if fnode is None:
                continue
            name = self._filenodes.get(int(fnode)) if db == self._db_oid and fork == 0 else None
            rel[i] = name or ""
            if name:
                block[i] = int(blk)
            usage[i] = int(uc or 0)
        return Snapshot(n, rel, block, usage)
