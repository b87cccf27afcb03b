"""The dataset: TPC-H-like orders, lineitem and part generated here (numpy, seeded) and COPYed in.

Shapes follow TPC-H (column names, value ranges, ~4 lines per order) with two deliberate choices that make
buffer sharing visible: order keys are handed out in date order (a real order system numbers orders as they
come), and both orders and lineitem are stored in order-key order, so key and date ranges map to
contiguous heap pages; ship dates trail order dates by 1-30 days, so a ship-date range touches a band of
lineitem pages that order-key ranges also touch. part.partkey is uncorrelated with lineitem's order: a part
lookup reads scattered lineitem pages. Scale factor 1.0 = 150,000 orders (TPC-H's); the default 0.2 makes
~35 MB, several times the default 8 MB buffer pool.

After loading: btree indexes, VACUUM (FREEZE, ANALYZE) so no query later writes hint bits or reads the
visibility map behind our back, and the templates and the load description in table `lab_meta`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lab_learnsched.pg.catalog import relation_pages, store_meta
from lab_learnsched.pg.conn import SCHEMA, ensure_extensions, first_line, sql_error
from lab_learnsched.pg.templates import Template, check_templates, templates_from_stored
from lab_shared.errors import LabError

if TYPE_CHECKING:
    import psycopg

TABLES = ("orders", "lineitem", "part")
START = dt.date(1992, 1, 1).toordinal()
END = dt.date(1998, 8, 2).toordinal()
WORDS = (
    "furiously quickly carefully blithely slyly final regular express pending special ironic bold even "
    "silent ideas accounts packages deposits requests instructions theodolites pinto beans foxes dependencies "
    "platelets asymptotes courts dolphins sleep wake haggle nag use boost detect integrate cajole"
).split()

DDL = """
CREATE TABLE part (
  p_partkey int NOT NULL, p_name text, p_mfgr text, p_brand text, p_type text, p_size int,
  p_container text, p_retailprice numeric(12,2), p_comment text
);
CREATE TABLE orders (
  o_orderkey int NOT NULL, o_custkey int, o_orderstatus char(1), o_totalprice numeric(12,2),
  o_orderdate date, o_orderpriority text, o_clerk text, o_shippriority int, o_comment text
);
CREATE TABLE lineitem (
  l_orderkey int NOT NULL, l_partkey int, l_suppkey int, l_linenumber int, l_quantity numeric(12,2),
  l_extendedprice numeric(12,2), l_discount numeric(4,2), l_tax numeric(4,2), l_returnflag char(1),
  l_linestatus char(1), l_shipdate date, l_commitdate date, l_receiptdate date, l_shipinstruct text,
  l_shipmode text, l_comment text
);
"""

INDEXES = """
ALTER TABLE part ADD CONSTRAINT part_pkey PRIMARY KEY (p_partkey);
ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (o_orderkey);
ALTER TABLE lineitem ADD CONSTRAINT lineitem_pkey PRIMARY KEY (l_orderkey, l_linenumber);
CREATE INDEX orders_orderdate_idx ON orders (o_orderdate);
CREATE INDEX lineitem_shipdate_idx ON lineitem (l_shipdate);
CREATE INDEX lineitem_partkey_idx ON lineitem (l_partkey);
"""


@dataclass
class LoadInfo:
    load_id: str
    scale: float
    seed: int
    rows: dict[str, int]
    pages: dict[str, int]  # every relation (heap and index) -> main-fork pages
    seconds: float


# --- generation ------------------------------------------------------------------------------------------
def _comments(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[str]:
    """Random TPC-H-style comment text of lo..hi characters."""
    words = np.array(WORDS)
    k = rng.integers(3, 9, size=n)
    picks = rng.integers(0, len(words), size=int(k.sum()))
    out, pos = [], 0
    lens = rng.integers(lo, hi + 1, size=n)
    for i in range(n):
        s = " ".join(words[picks[pos : pos + k[i]]])
        pos += k[i]
        out.append(s[: lens[i]])
    return out


def _date_strings(ordinals: np.ndarray) -> list[str]:
    cache: dict[int, str] = {}
    out = []
    for o in ordinals.tolist():
        s = cache.get(o)
        if s is None:
            s = cache[o] = dt.date.fromordinal(o).isoformat()
        out.append(s)
    return out


def _tsv(columns: list[list]) -> str:
    """Rows as COPY text (tab separated; our generated values contain no tabs, backslashes or newlines)."""
    buf = io.StringIO()
    for row in zip(*columns):
        buf.write("\t".join(map(str, row)))
        buf.write("\n")
    return buf.getvalue()


def generate(scale: float, seed: int) -> dict[str, str]:
    """COPY text for each table, deterministic in (scale, seed)."""
    rng = np.random.default_rng(seed)
    n_orders = max(100, int(round(150_000 * scale)))
    n_parts = max(50, int(round(200_000 * scale)))
    n_cust = max(10, int(round(15_000 * scale)))

    # part
    pk = np.arange(1, n_parts + 1)
    sizes = rng.integers(1, 51, n_parts)
    price = np.round(900 + (pk % 1000) / 10 + (pk // 10) % 201 / 100 * 100, 2)
    brands = [f"Brand#{a}{b}" for a, b in zip(rng.integers(1, 6, n_parts), rng.integers(1, 6, n_parts))]
    types = np.array(["STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO"])[
        rng.integers(0, 6, n_parts)
    ]
    cont = np.array(["SM CASE", "LG BOX", "MED BAG", "JUMBO PKG", "WRAP DRUM"])[rng.integers(0, 5, n_parts)]
    part = _tsv([
        pk.tolist(), [f"part {w}" for w in _comments(rng, n_parts, 20, 40)],
        [f"Manufacturer#{b[6]}" for b in brands], brands, types.tolist(), sizes.tolist(), cont.tolist(),
        [f"{p:.2f}" for p in price], _comments(rng, n_parts, 5, 22),
    ])  # fmt: skip

    # orders: keys in date order, stored in key order
    ok = np.arange(1, n_orders + 1)
    odate = np.sort(rng.integers(START, END - 151, n_orders))
    n_lines = rng.integers(1, 8, n_orders)  # 1..7 lines, ~4 on average as in TPC-H
    l_ok = np.repeat(ok, n_lines)
    n_li = l_ok.shape[0]
    l_ln = np.concatenate([np.arange(1, k + 1) for k in n_lines.tolist()])
    l_pk = rng.integers(1, n_parts + 1, n_li)
    qty = rng.integers(1, 51, n_li)
    ext = np.round(qty * price[l_pk - 1], 2)
    disc = rng.integers(0, 11, n_li) / 100
    tax = rng.integers(0, 9, n_li) / 100
    ship = np.repeat(odate, n_lines) + rng.integers(1, 31, n_li)
    commit = np.repeat(odate, n_lines) + rng.integers(30, 91, n_li)
    receipt = ship + rng.integers(1, 31, n_li)
    today = dt.date(1995, 6, 17).toordinal()
    rflag = np.where(receipt <= today, np.array(["R", "A"])[rng.integers(0, 2, n_li)], "N")
    lstatus = np.where(ship > today, "O", "F")
    total = np.bincount(np.repeat(np.arange(n_orders), n_lines), weights=ext * (1 + tax) * (1 - disc))
    n_f = np.bincount(np.repeat(np.arange(n_orders), n_lines), weights=(lstatus == "F").astype(float))
    ostatus = np.where(n_f == n_lines, "F", np.where(n_f == 0, "O", "P"))
    prio = np.array(["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"])[
        rng.integers(0, 5, n_orders)
    ]
    orders = _tsv([
        ok.tolist(), rng.integers(1, n_cust + 1, n_orders).tolist(), ostatus.tolist(),
        [f"{t:.2f}" for t in total], _date_strings(odate), prio.tolist(),
        [f"Clerk#{c:09d}" for c in rng.integers(1, max(2, int(1000 * scale)) + 1, n_orders)],
        [0] * n_orders, _comments(rng, n_orders, 19, 78),
    ])  # fmt: skip
    instruct = np.array(["DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN"])[
        rng.integers(0, 4, n_li)
    ]
    mode = np.array(["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"])[rng.integers(0, 7, n_li)]
    lineitem = _tsv([
        l_ok.tolist(), l_pk.tolist(), rng.integers(1, max(2, int(10_000 * scale)) + 1, n_li).tolist(),
        l_ln.tolist(), qty.tolist(), [f"{e:.2f}" for e in ext], [f"{d:.2f}" for d in disc],
        [f"{t:.2f}" for t in tax], rflag.tolist(), lstatus.tolist(), _date_strings(ship),
        _date_strings(commit), _date_strings(receipt), instruct.tolist(), mode.tolist(),
        _comments(rng, n_li, 10, 43),
    ])  # fmt: skip
    return {"part": part, "orders": orders, "lineitem": lineitem}


# --- loading ---------------------------------------------------------------------------------------------
def load_dataset(
    conn: psycopg.Connection, scale: float, seed: int, templates: list[Template], replace: bool = True
) -> LoadInfo:
    """(Re)create the tables, COPY generated rows, index, vacuum, check the templates and store them."""
    import psycopg

    if not 0 < scale <= 10:
        raise LabError(f"scale must be in (0, 10], got {scale}")
    t0 = time.time()
    ensure_extensions(conn)
    data = generate(scale, seed)
    step = "creating schema"
    try:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        with conn.transaction():  # all or nothing: a failure leaves the previous tables and templates
            conn.execute(f"SET LOCAL search_path = {SCHEMA}")  # unqualified names: ours only
            step = "creating tables"
            if replace:
                conn.execute("DROP TABLE IF EXISTS lineitem, orders, part, lab_meta")
            conn.execute(DDL)
            for table in ("part", "orders", "lineitem"):
                step = f"loading {table}"
                with conn.cursor().copy(f"COPY {table} FROM STDIN") as cp:
                    text = data[table]
                    for i in range(0, len(text), 1 << 20):
                        cp.write(text[i : i + (1 << 20)])
            step = "building indexes"
            conn.execute(INDEXES)
            conn.execute("CREATE TABLE lab_meta (key text PRIMARY KEY, value jsonb NOT NULL)")
            conn.execute("ANALYZE part, orders, lineitem")
            check_templates(conn, templates)  # a bad template rolls the whole load back
        step = "vacuuming"
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {SCHEMA}.part, {SCHEMA}.orders, {SCHEMA}.lineitem")
    except psycopg.errors.DuplicateTable:
        raise LabError("the tables already exist (load with replace to overwrite them)") from None
    except psycopg.Error as e:
        raise sql_error(f"load failed while {step}", e) from None
    rows = {t: conn.execute(f"SELECT count(*) FROM {SCHEMA}.{t}").fetchone()[0] for t in TABLES}
    info = LoadInfo(
        uuid.uuid4().hex[:12], scale, seed, rows, relation_pages(conn, TABLES), round(time.time() - t0, 2)
    )
    store_meta(conn, info, templates)
    return info


def read_meta(conn: psycopg.Connection) -> tuple[dict, list[Template]]:
    """The load description and the templates stored by `lab sched pg load`."""
    import psycopg

    try:
        rows = dict(conn.execute(f"SELECT key, value FROM {SCHEMA}.lab_meta").fetchall())
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        raise LabError("the database has no workload: run `lab sched pg load` first") from None
    except psycopg.Error as e:
        raise LabError(f"cannot read lab_meta: {first_line(e)}") from None
    if "load" not in rows or "templates" not in rows:
        raise LabError("lab_meta is incomplete: run `lab sched pg load` again")
    meta = rows["load"] if isinstance(rows["load"], dict) else json.loads(rows["load"])
    temps = rows["templates"] if isinstance(rows["templates"], list) else json.loads(rows["templates"])
    if not isinstance(meta, dict) or not {"load_id", "pages"} <= set(meta):
        raise LabError("lab_meta's load description is incomplete: run `lab sched pg load` again")
    if meta.get("dataset") == "tpch":
        from lab_learnsched.pg.tpch import queries_from_stored

        queries_from_stored(temps)  # checked again: SELECT only
        raise LabError(
            "the database holds TPC-H (`pg load --dataset tpch`): its queries have no probed access lists, "
            "so `probe`/`bench` need the range-template workload (`pg load` without --dataset)"
        )
    return meta, templates_from_stored(temps, "lab_meta")  # checked again: SELECT only


def read_load(conn: psycopg.Connection) -> tuple[dict, list[str]]:
    """The load description and the names of its templates/queries (any dataset), re-validated."""
    import psycopg

    try:
        rows = dict(conn.execute(f"SELECT key, value FROM {SCHEMA}.lab_meta").fetchall())
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        raise LabError("the database has no workload: run `lab sched pg load` first") from None
    except psycopg.Error as e:
        raise LabError(f"cannot read lab_meta: {first_line(e)}") from None
    meta, temps = rows.get("load"), rows.get("templates")
    if not isinstance(meta, dict) or not isinstance(temps, list):
        raise LabError("lab_meta is incomplete: run `lab sched pg load` again")
    if meta.get("dataset") == "tpch":
        from lab_learnsched.pg.tpch import queries_from_stored

        return meta, list(queries_from_stored(temps))
    return meta, [t.name for t in templates_from_stored(temps, "lab_meta")]
