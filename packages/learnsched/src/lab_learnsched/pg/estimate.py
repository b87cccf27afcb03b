"""Access sets estimated from the plan: which blocks a SELECT will read, without running it or probing rows.

For any read-only SELECT (checked with sqlcheck, planned with EXPLAIN in a READ ONLY transaction, in the same
session settings the bench executes with) the plan tree is walked and every scan node becomes a block set:

- Seq Scan: every heap block of the relation (pg_class.relpages).
- Index Scan / Index Only Scan / Bitmap Index Scan: the index condition on the index's leading column is
  read from the plan. A range with constants (`col >= '1995-01-01'::date AND col < ...`) becomes the
  quantiles [q0, q1] of the column, asked from the planner's own statistics (`EXPLAIN SELECT 1 FROM t WHERE
  col < value`: estimated rows / reltuples, i.e. pg_stats' histogram). The index reads its metapage, its
  root and the leaf blocks at the same quantiles of its file (a btree built after loading lays its leaves
  out in key order). Lookups with a value from an outer row (the inner side of a nested loop, `col =
  outer.col`) or a constant array (`= ANY(...)`) are K keys spread over the whole key range: K = the loops
  (outer rows, capped by the column's n_distinct), leaves touched = Cardenas' estimate, at seeded random
  positions.
- The heap behind an index (not for Index Only Scan: VACUUM FREEZE makes every page all-visible): how
  clustered the range is comes from pg_stats.correlation c of the leading column, as in PostgreSQL's
  cost_index: pages = c^2 * (fraction * relpages) + (1 - c^2) * Cardenas(tuples, relpages); for c^2 >= 0.5
  they are the contiguous band at the range's quantiles (mirrored for c < 0), otherwise spread at seeded
  random positions. A Bitmap Heap Scan takes its heap pages from its bitmap index scans (OR: union).
- Loops: the inner side of a Nested Loop runs once per outer row (unless it is a Materialize or Hash), a
  SubPlan once per row of its parent when it refers to that scan's own columns, else once per loop of the
  parent (its keys come from an outer row); a hashed SubPlan and an InitPlan once.

Only the estimate's block ids are used by the schedulers; `quality(...)` compares them with exact (probed or
traced) sets: Jaccard, recall, precision, size ratio.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lab_learnsched.pg.conn import SCHEMA, first_line
from lab_learnsched.pg.sqlcheck import check_select
from lab_learnsched.pg.templates import Instance, params_to_json, read_only
from lab_shared.errors import LabError

if TYPE_CHECKING:
    import psycopg

OPS = ("<=", ">=", "<>", "=", "<", ">")
LITERAL = re.compile(r"^'((?:[^']|'')*)'(?:::[\w ]+(?:\([\d,]+\))?(?:\[\])?)?$|^(-?\d+(?:\.\d+)?)$")
COND = re.compile(r"^\(*\s*([\w.]+)\s*(<=|>=|<>|=|<|>)\s*(.+?)\s*\)*$")


@dataclass
class RelInfo:
    name: str
    pages: int
    tuples: float
    kind: str  # 'r' heap, 'i' index
    table: str = ""  # index: its heap
    column: str = ""  # index: its leading column
    root: int = -1  # btree root block (-1: not a btree)


@dataclass
class Range:
    """What one index access touches: a key range as quantiles, or K scattered lookups."""

    q0: float = 0.0
    q1: float = 1.0
    lookups: float = 0.0  # > 0: scattered lookups (K keys), q0/q1 unused
    tuples: float = 0.0  # heap tuples fetched over all loops
    cond: str = ""  # the index condition: scattered positions are drawn per (relation, condition)


def split_and(cond: str) -> list[str]:
    """Top-level AND conjuncts of a plan condition, outer parentheses stripped."""
    s = cond.strip()
    while s.startswith("(") and _closing(s, 0) == len(s) - 1:
        s = s[1:-1].strip()
    parts, depth, start, i, quote = [], 0, 0, 0, False
    while i < len(s):
        ch = s[i]
        if ch == "'":
            quote = not quote
        elif not quote:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and s.startswith(" AND ", i):
                parts.append(s[start:i])
                start = i + 5
                i += 4
        i += 1
    parts.append(s[start:])
    out = []
    for p in parts:
        p = p.strip()
        while p.startswith("(") and _closing(p, 0) == len(p) - 1:
            p = p[1:-1].strip()
        out.append(p)
    return [p for p in out if p]


def _closing(s: str, i: int) -> int:
    depth, quote = 0, False
    for j in range(i, len(s)):
        ch = s[j]
        if ch == "'":
            quote = not quote
        elif not quote:
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                return j
    return -1


def literal(text: str) -> str | None:
    """The value of a plan literal ('1995-03-11'::date, 42, '313'::numeric), else None (a column, $1...)."""
    m = LITERAL.match(text.strip())
    if not m:
        return None
    return m.group(1).replace("''", "'") if m.group(1) is not None else m.group(2)


def cardenas(tuples: float, pages: int) -> float:
    """Expected distinct pages hit by `tuples` random fetches over `pages` pages."""
    if pages <= 0 or tuples <= 0:
        return 0.0
    return pages * (1.0 - math.exp(-tuples / pages))


class Estimator:
    """Estimates access sets on one connection (session settings as in execute.py); catalog read once."""

    def __init__(self, conn: psycopg.Connection, relations: list[str]):
        from lab_learnsched.pg.execute import SESSION_SETTINGS

        self.conn = conn
        for s in SESSION_SETTINGS:
            conn.execute(s)
        self.rels: dict[str, RelInfo] = {}
        self.stats: dict[
            tuple[str, str], tuple[float, float]
        ] = {}  # (table, column) -> (correlation, ndistinct)
        self._frac: dict[tuple, float] = {}
        self._seed = 0  # per estimate(): scattered positions are seeded by the query
        self._read_catalog(relations)

    def _read_catalog(self, relations: list[str]) -> None:
        rows = self.conn.execute(
            "SELECT c.relname, c.relkind, c.relpages, c.reltuples, t.relname, a.attname, am.amname "
            "FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid "
            "LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "LEFT JOIN pg_am am ON am.oid = c.relam "
            "WHERE c.relnamespace = to_regnamespace(%s) AND c.relname = ANY(%s)",
            (SCHEMA, list(relations)),
        ).fetchall()  # fmt: skip
        for name, kind, pages, tuples, table, col, am in rows:
            info = RelInfo(name, max(1, int(pages)), max(1.0, float(tuples)), "i" if kind == "i" else "r")
            if kind == "i":
                info.table, info.column = table or "", col or ""
                if am == "btree":
                    info.root = int(self.conn.execute("SELECT root FROM bt_metap(%s)", (name,)).fetchone()[0])
            self.rels[name] = info
        for t, a, corr, nd in self.conn.execute(
            "SELECT tablename, attname, correlation, n_distinct FROM pg_stats WHERE schemaname = %s",
            (SCHEMA,),
        ).fetchall():
            self.stats[(t, a)] = (float(corr or 0.0), float(nd or 0.0))

    # --- planner questions -------------------------------------------------------------------------------
    def plan(self, sql: str, params: dict[str, Any] | None, where: str = "query") -> dict:
        import psycopg

        check_select(sql, where)
        try:
            with read_only(self.conn):
                doc = self.conn.execute("EXPLAIN (FORMAT JSON) " + sql, params or None).fetchone()[0]
        except psycopg.Error as e:
            raise LabError(f"{where}: {first_line(e)}") from None
        if isinstance(doc, str):
            doc = json.loads(doc)
        return doc[0]["Plan"]

    def fraction(self, table: str, column: str, op: str, value: str) -> float:
        """The planner's estimate of the fraction of `table` rows with `column op value` (pg_stats)."""
        import psycopg
        from psycopg import sql as psql

        key = (table, column, op, value)
        if key not in self._frac:
            q = psql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {t} WHERE {c} " + op + " %s").format(
                t=psql.Identifier(table), c=psql.Identifier(column)
            )
            try:
                with read_only(self.conn):
                    doc = self.conn.execute(q, (value,)).fetchone()[0]
                rows = float(doc[0]["Plan"]["Plan Rows"])
            except psycopg.Error:
                rows = self.rels[table].tuples / 3  # an unreadable value: the planner's default guess
            self._frac[key] = min(1.0, rows / self.rels[table].tuples)
        return self._frac[key]

    def ndistinct(self, table: str, column: str) -> float:
        nd = self.stats.get((table, column), (0.0, 0.0))[1]
        tuples = self.rels[table].tuples if table in self.rels else 1.0
        return max(1.0, -nd * tuples if nd < 0 else nd if nd > 0 else tuples)

    def correlation(self, table: str, column: str) -> float:
        return self.stats.get((table, column), (0.0, 0.0))[0]

    # --- one index condition -> a Range --------------------------------------------------------------------
    def index_range(self, idx: RelInfo, cond: str, loops: float, plan_rows: float) -> Range:
        table, col = idx.table, idx.column
        q0, q1, lookups, per_key = 0.0, 1.0, 0.0, 0.0
        tuples = self.rels[table].tuples if table in self.rels else plan_rows
        for c in split_and(cond) if cond else []:
            m = COND.match(c)
            if not m:
                if f"{col} = ANY" in c:  # col = ANY ('{...}'::type[]): one lookup per element
                    arr = re.search(r"'\{(.*)\}'", c)
                    lookups = max(lookups, loops * (len(arr.group(1).split(",")) if arr else 1))
                continue
            lhs, op, rhs = m.groups()
            if lhs.split(".")[-1] != col:
                continue
            val = literal(rhs)
            if val is None:  # a value from an outer row or a parameter: one lookup per loop
                if op == "=":
                    lookups = max(lookups, loops)
                continue
            if op in (">", ">="):
                q0 = max(q0, self.fraction(table, col, "<" if op == ">=" else "<=", val))
            elif op in ("<", "<="):
                q1 = min(q1, self.fraction(table, col, op, val))
            elif op == "=":
                q0 = max(q0, self.fraction(table, col, "<", val))
                q1 = min(q1, max(q0, self.fraction(table, col, "<=", val)))
        if lookups > 0:
            nd = self.ndistinct(table, col)
            per_key = tuples / nd
            keys = min(lookups, nd)
            return Range(0.0, 1.0, keys, keys * per_key, cond)
        q1 = max(q1, q0)
        return Range(q0, q1, 0.0, max(plan_rows, (q1 - q0) * tuples), cond)

    # --- blocks ------------------------------------------------------------------------------------------------
    def index_blocks(self, idx: RelInfo, r: Range, rng: np.random.Generator) -> np.ndarray:
        """Metapage, root, and the leaves in the range (or K lookups' leaves at random positions)."""
        n = idx.pages
        head = [0] + ([idx.root] if 0 < idx.root < n else [])
        if n <= 2:
            return np.unique(np.arange(n))
        span = n - 1  # leaves and inner pages: blocks 1..n-1, in key order for a freshly built btree
        if r.lookups > 0:
            k = int(round(cardenas(r.lookups, span)))
            body = 1 + self._scatter(idx.name, r.cond, span, k)
        else:
            a = 1 + int(math.floor(r.q0 * span))
            b = 1 + int(math.ceil(r.q1 * span))
            body = np.arange(a, max(a + 1, min(b, n)))
        return np.unique(np.concatenate([np.asarray(head, np.int64), body.astype(np.int64)]))

    def heap_blocks(self, table: str, column: str, r: Range, rng: np.random.Generator) -> np.ndarray:
        """Heap pages behind an index access: a band for a clustered column, else scattered pages."""
        info = self.rels[table]
        n = info.pages
        c2 = self.correlation(table, column) ** 2
        if r.lookups > 0:
            per_key_pages = max(1.0, r.tuples / max(r.lookups, 1) * n / info.tuples) if c2 >= 0.5 else 1.0
            touched = cardenas(r.lookups * per_key_pages, n) if c2 >= 0.5 else cardenas(r.tuples, n)
            k = min(n, max(1, int(round(touched))))
            return self._scatter(table, r.cond, n, k)
        frac = max(0.0, r.q1 - r.q0)
        clustered = frac * n
        count = c2 * clustered + (1 - c2) * cardenas(r.tuples, n)
        k = min(n, max(1, int(round(count))))
        if c2 >= 0.5:
            lo, hi = (r.q0, r.q1) if self.correlation(table, column) >= 0 else (1 - r.q1, 1 - r.q0)
            mid = (lo + hi) / 2 * n
            a = int(max(0, min(n - k, round(mid - k / 2))))
            return np.arange(a, a + k, dtype=np.int64)
        return self._scatter(table, r.cond, n, k)

    def _scatter(self, rel: str, cond: str, n: int, k: int) -> np.ndarray:
        """k of n blocks at seeded random positions: the same (query, relation, condition) always gets the
        same permutation, so two accesses with the same lookup key (a query and its subquery) overlap."""
        h = hashlib.sha1(f"{self._seed}|{rel}|{cond}".encode()).hexdigest()[:12]
        perm = np.random.default_rng(int(h, 16)).permutation(n)
        return np.sort(perm[: min(n, max(1, k))]).astype(np.int64)

    def estimate(
        self, sql: str, params: dict[str, Any] | None = None, key: str = "", where: str = "query"
    ) -> dict[str, np.ndarray]:
        """Blocks per relation (in plan order) that running `sql` with `params` is estimated to read."""
        plan = self.plan(sql, params, where)
        seed = int(hashlib.sha1((key or json.dumps([sql, params_to_json(params or {})],
                                                    default=str)).encode()).hexdigest()[:8], 16)  # fmt: skip
        rng = np.random.default_rng(seed)
        self._seed = seed
        out: dict[str, list[np.ndarray]] = {}
        self._walk(plan, 1.0, out, rng)
        res = {}
        for rel, parts in out.items():
            if rel in self.rels:
                res[rel] = np.unique(np.concatenate(parts)).astype(np.int64)
        return res

    def _walk(self, node: dict, loops: float, out: dict, rng: np.random.Generator) -> None:
        nt = node.get("Node Type", "")
        rows = float(node.get("Plan Rows", 1.0))
        rel = node.get("Relation Name")
        if nt == "Seq Scan" and rel in self.rels:
            out.setdefault(rel, []).append(np.arange(self.rels[rel].pages, dtype=np.int64))
        elif nt in ("Index Scan", "Index Only Scan") and node.get("Index Name") in self.rels:
            idx = self.rels[node["Index Name"]]
            r = self.index_range(idx, node.get("Index Cond", ""), loops, rows * loops)
            out.setdefault(idx.name, []).append(self.index_blocks(idx, r, rng))
            if nt == "Index Scan" and idx.table in self.rels:
                out.setdefault(idx.table, []).append(self.heap_blocks(idx.table, idx.column, r, rng))
        elif nt == "Bitmap Heap Scan" and rel in self.rels:
            for idx, r in self._bitmap(node, loops, out, rng):
                out.setdefault(rel, []).append(self.heap_blocks(rel, idx.column, r, rng))
            return
        kids = node.get("Plans", [])
        outer_rows = 1.0
        for ch in kids:
            rel_ = ch.get("Parent Relationship", "")
            if rel_ == "Outer":
                outer_rows = float(ch.get("Plan Rows", 1.0))
        for ch in kids:
            rel_ = ch.get("Parent Relationship", "")
            n = loops
            if rel_ == "InitPlan":
                n = 1.0
            elif rel_ == "SubPlan":
                hashed = "hashed " + str(ch.get("Subplan Name", "")) in json.dumps(node)
                alias = node.get("Alias", "")
                # correlated with this scan's own rows: once per row; with an outer row only: once per loop
                per_row = not alias or f"{alias}." in json.dumps(ch)
                n = 1.0 if hashed else loops * max(1.0, rows) if per_row else loops
            elif rel_ == "Inner" and nt == "Nested Loop":
                once = ch.get("Node Type") in ("Materialize", "Hash")
                n = loops if once else loops * max(1.0, outer_rows)
            self._walk(ch, n, out, rng)

    def _bitmap(
        self, node: dict, loops: float, out: dict, rng: np.random.Generator
    ) -> list[tuple[RelInfo, Range]]:
        """The bitmap index scans under a Bitmap Heap Scan (their index blocks added), each with its Range."""
        found: list[tuple[RelInfo, Range]] = []
        for ch in node.get("Plans", []):
            nt = ch.get("Node Type")
            if nt == "Bitmap Index Scan" and ch.get("Index Name") in self.rels:
                idx = self.rels[ch["Index Name"]]
                r = self.index_range(
                    idx, ch.get("Index Cond", ""), loops, float(ch.get("Plan Rows", 1)) * loops
                )
                out.setdefault(idx.name, []).append(self.index_blocks(idx, r, rng))
                found.append((idx, r))
            elif nt in ("BitmapOr", "BitmapAnd"):
                sub = self._bitmap(ch, loops, out, rng)
                if nt == "BitmapAnd" and sub:
                    sub = [min(sub, key=lambda x: x[1].tuples)]
                found.extend(sub)
        return found


def estimate_instances(
    conn: psycopg.Connection, templates: dict[str, Any], insts: list[Instance], relations: list[str]
) -> list[dict[str, np.ndarray]]:
    """Estimated blocks of each instance (templates: anything with .sql), relations outside `relations` dropped."""
    est = Estimator(conn, relations)
    out = []
    for i in insts:
        blocks = est.estimate(templates[i.template].sql, i.params, i.key(), f"query {i.template}")
        if (
            not blocks
        ):  # e.g. a query over relations outside the workload: read the smallest one's first block
            raise LabError(f"query {i.template} ({i.key()}): the plan reads no relation of the workload")
        out.append(blocks)
    return out


def _flat(blocks: dict[str, np.ndarray]) -> set[tuple[str, int]]:
    return {(r, int(b)) for r, v in blocks.items() for b in np.asarray(v).tolist()}


def quality(
    estimated: list[dict[str, np.ndarray]], exact: list[dict[str, np.ndarray]], names: list[str]
) -> dict:
    """Jaccard, recall (exact blocks the estimate has), precision and size ratio, mean over instances and
    per template (`names`: each instance's template)."""
    per: dict[str, list[tuple[float, float, float, float]]] = {}
    for e, x, n in zip(estimated, exact, names):
        es, xs = _flat(e), _flat(x)
        inter = len(es & xs)
        row = (
            inter / max(1, len(es | xs)),
            inter / max(1, len(xs)),
            inter / max(1, len(es)),
            len(es) / max(1, len(xs)),
        )
        per.setdefault(n, []).append(row)
    allrows = [r for rs in per.values() for r in rs]

    def summary(rs):
        a = np.array(rs, float)
        return {"instances": len(rs), "jaccard": float(a[:, 0].mean()), "recall": float(a[:, 1].mean()),
                "precision": float(a[:, 2].mean()), "size_ratio": float(np.median(a[:, 3]))}  # fmt: skip

    return {
        "all": summary(allrows) if allrows else {},
        "templates": {n: summary(rs) for n, rs in sorted(per.items())},
    }
