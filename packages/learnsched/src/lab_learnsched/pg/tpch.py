"""TPC-H on PostgreSQL: data from `tpchgen-cli` (the PyPI Rust generator), the 22 queries, qgen-style
parameters, query streams.

Data: `tpchgen-cli -s SCALE --output-dir DIR` writes the eight .tbl files ('|'-separated, a trailing '|' on
every line, which we strip while streaming them into COPY FROM STDIN). Schema as in the specification
(clause 1.4), primary keys and an index on every foreign key (plus o_orderdate and l_shipdate), then
VACUUM (FREEZE, ANALYZE).

Queries: the 22 query templates written here from the public specification (clause 2.4), parameters bound
by psycopg (never pasted into SQL), derived dates computed in Python. Q15's view is a CTE so that every
query is one read-only SELECT (checked by sqlcheck like any template). Parameters follow the substitution
rules of clause 2.4.x.3 (qgen), drawn from a seeded numpy generator. A stream is the 22 queries in a seeded
random order, each with its own parameters (qgen's fixed permutation table of Appendix A is not reproduced).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab_learnsched.pg.catalog import relation_pages, store_meta
from lab_learnsched.pg.conn import SCHEMA, ensure_extensions, sql_error
from lab_learnsched.pg.sqlcheck import check_select
from lab_learnsched.pg.templates import Instance, read_only
from lab_shared.errors import LabError

if TYPE_CHECKING:
    import psycopg

TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")

DDL = """
CREATE TABLE region (r_regionkey int NOT NULL, r_name char(25) NOT NULL, r_comment varchar(152));
CREATE TABLE nation (n_nationkey int NOT NULL, n_name char(25) NOT NULL, n_regionkey int NOT NULL,
  n_comment varchar(152));
CREATE TABLE supplier (s_suppkey int NOT NULL, s_name char(25) NOT NULL, s_address varchar(40) NOT NULL,
  s_nationkey int NOT NULL, s_phone char(15) NOT NULL, s_acctbal numeric(15,2) NOT NULL,
  s_comment varchar(101) NOT NULL);
CREATE TABLE customer (c_custkey int NOT NULL, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL,
  c_nationkey int NOT NULL, c_phone char(15) NOT NULL, c_acctbal numeric(15,2) NOT NULL,
  c_mktsegment char(10) NOT NULL, c_comment varchar(117) NOT NULL);
CREATE TABLE part (p_partkey int NOT NULL, p_name varchar(55) NOT NULL, p_mfgr char(25) NOT NULL,
  p_brand char(10) NOT NULL, p_type varchar(25) NOT NULL, p_size int NOT NULL, p_container char(10) NOT NULL,
  p_retailprice numeric(15,2) NOT NULL, p_comment varchar(23) NOT NULL);
CREATE TABLE partsupp (ps_partkey int NOT NULL, ps_suppkey int NOT NULL, ps_availqty int NOT NULL,
  ps_supplycost numeric(15,2) NOT NULL, ps_comment varchar(199) NOT NULL);
CREATE TABLE orders (o_orderkey int NOT NULL, o_custkey int NOT NULL, o_orderstatus char(1) NOT NULL,
  o_totalprice numeric(15,2) NOT NULL, o_orderdate date NOT NULL, o_orderpriority char(15) NOT NULL,
  o_clerk char(15) NOT NULL, o_shippriority int NOT NULL, o_comment varchar(79) NOT NULL);
CREATE TABLE lineitem (l_orderkey int NOT NULL, l_partkey int NOT NULL, l_suppkey int NOT NULL,
  l_linenumber int NOT NULL, l_quantity numeric(15,2) NOT NULL, l_extendedprice numeric(15,2) NOT NULL,
  l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL,
  l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL,
  l_receiptdate date NOT NULL, l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL,
  l_comment varchar(44) NOT NULL);
"""

INDEXES = """
ALTER TABLE region ADD PRIMARY KEY (r_regionkey);
ALTER TABLE nation ADD PRIMARY KEY (n_nationkey);
ALTER TABLE supplier ADD PRIMARY KEY (s_suppkey);
ALTER TABLE customer ADD PRIMARY KEY (c_custkey);
ALTER TABLE part ADD PRIMARY KEY (p_partkey);
ALTER TABLE partsupp ADD PRIMARY KEY (ps_partkey, ps_suppkey);
ALTER TABLE orders ADD PRIMARY KEY (o_orderkey);
ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber);
CREATE INDEX nation_regionkey_idx ON nation (n_regionkey);
CREATE INDEX supplier_nationkey_idx ON supplier (s_nationkey);
CREATE INDEX customer_nationkey_idx ON customer (c_nationkey);
CREATE INDEX partsupp_suppkey_idx ON partsupp (ps_suppkey);
CREATE INDEX orders_custkey_idx ON orders (o_custkey);
CREATE INDEX lineitem_part_supp_idx ON lineitem (l_partkey, l_suppkey);
CREATE INDEX lineitem_suppkey_idx ON lineitem (l_suppkey);
CREATE INDEX orders_orderdate_idx ON orders (o_orderdate);
CREATE INDEX lineitem_shipdate_idx ON lineitem (l_shipdate);
"""

# --- the 22 queries (clause 2.4), parameters as %(name)s ---------------------------------------------
QUERIES: dict[str, str] = {
    "q1": """
SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price,
  sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
  sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, avg(l_quantity) AS avg_qty,
  avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order
FROM lineitem WHERE l_shipdate <= %(ship_max)s
GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus""",
    "q2": """
SELECT s_acctbal, s_name, n_name, p_partkey, p_mfgr, s_address, s_phone, s_comment
FROM part, supplier, partsupp, nation, region
WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND p_size = %(size)s
  AND p_type LIKE '%%' || %(type)s AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
  AND r_name = %(region)s
  AND ps_supplycost = (SELECT min(ps_supplycost) FROM partsupp, supplier, nation, region
    WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND s_nationkey = n_nationkey
      AND n_regionkey = r_regionkey AND r_name = %(region)s)
ORDER BY s_acctbal DESC, n_name, s_name, p_partkey LIMIT 100""",
    "q3": """
SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority
FROM customer, orders, lineitem
WHERE c_mktsegment = %(segment)s AND c_custkey = o_custkey AND l_orderkey = o_orderkey
  AND o_orderdate < %(date)s AND l_shipdate > %(date)s
GROUP BY l_orderkey, o_orderdate, o_shippriority ORDER BY revenue DESC, o_orderdate LIMIT 10""",
    "q4": """
SELECT o_orderpriority, count(*) AS order_count FROM orders
WHERE o_orderdate >= %(date)s AND o_orderdate < %(date_end)s
  AND EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey AND l_commitdate < l_receiptdate)
GROUP BY o_orderpriority ORDER BY o_orderpriority""",
    "q5": """
SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue
FROM customer, orders, lineitem, supplier, nation, region
WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey
  AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
  AND r_name = %(region)s AND o_orderdate >= %(date)s AND o_orderdate < %(date_end)s
GROUP BY n_name ORDER BY revenue DESC""",
    "q6": """
SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem
WHERE l_shipdate >= %(date)s AND l_shipdate < %(date_end)s
  AND l_discount BETWEEN %(discount)s - 0.01 AND %(discount)s + 0.01 AND l_quantity < %(quantity)s""",
    "q7": """
SELECT supp_nation, cust_nation, l_year, sum(volume) AS revenue FROM (
  SELECT n1.n_name AS supp_nation, n2.n_name AS cust_nation, extract(year FROM l_shipdate) AS l_year,
    l_extendedprice * (1 - l_discount) AS volume
  FROM supplier, lineitem, orders, customer, nation n1, nation n2
  WHERE s_suppkey = l_suppkey AND o_orderkey = l_orderkey AND c_custkey = o_custkey
    AND s_nationkey = n1.n_nationkey AND c_nationkey = n2.n_nationkey
    AND ((n1.n_name = %(nation1)s AND n2.n_name = %(nation2)s)
      OR (n1.n_name = %(nation2)s AND n2.n_name = %(nation1)s))
    AND l_shipdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31') AS shipping
GROUP BY supp_nation, cust_nation, l_year ORDER BY supp_nation, cust_nation, l_year""",
    "q8": """
SELECT o_year, sum(CASE WHEN nation = %(nation)s THEN volume ELSE 0 END) / sum(volume) AS mkt_share FROM (
  SELECT extract(year FROM o_orderdate) AS o_year, l_extendedprice * (1 - l_discount) AS volume,
    n2.n_name AS nation
  FROM part, supplier, lineitem, orders, customer, nation n1, nation n2, region
  WHERE p_partkey = l_partkey AND s_suppkey = l_suppkey AND l_orderkey = o_orderkey
    AND o_custkey = c_custkey AND c_nationkey = n1.n_nationkey AND n1.n_regionkey = r_regionkey
    AND r_name = %(region)s AND s_nationkey = n2.n_nationkey
    AND o_orderdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31' AND p_type = %(type)s) AS all_nations
GROUP BY o_year ORDER BY o_year""",
    "q9": """
SELECT nation, o_year, sum(amount) AS sum_profit FROM (
  SELECT n_name AS nation, extract(year FROM o_orderdate) AS o_year,
    l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity AS amount
  FROM part, supplier, lineitem, partsupp, orders, nation
  WHERE s_suppkey = l_suppkey AND ps_suppkey = l_suppkey AND ps_partkey = l_partkey
    AND p_partkey = l_partkey AND o_orderkey = l_orderkey AND s_nationkey = n_nationkey
    AND p_name LIKE '%%' || %(color)s || '%%') AS profit
GROUP BY nation, o_year ORDER BY nation, o_year DESC""",
    "q10": """
SELECT c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) AS revenue, c_acctbal, n_name, c_address,
  c_phone, c_comment
FROM customer, orders, lineitem, nation
WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND o_orderdate >= %(date)s
  AND o_orderdate < %(date_end)s AND l_returnflag = 'R' AND c_nationkey = n_nationkey
GROUP BY c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
ORDER BY revenue DESC LIMIT 20""",
    "q11": """
SELECT ps_partkey, sum(ps_supplycost * ps_availqty) AS value FROM partsupp, supplier, nation
WHERE ps_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = %(nation)s
GROUP BY ps_partkey HAVING sum(ps_supplycost * ps_availqty) > (
  SELECT sum(ps_supplycost * ps_availqty) * %(fraction)s FROM partsupp, supplier, nation
  WHERE ps_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = %(nation)s)
ORDER BY value DESC""",
    "q12": """
SELECT l_shipmode,
  sum(CASE WHEN o_orderpriority = '1-URGENT' OR o_orderpriority = '2-HIGH' THEN 1 ELSE 0 END) AS high_line_count,
  sum(CASE WHEN o_orderpriority <> '1-URGENT' AND o_orderpriority <> '2-HIGH' THEN 1 ELSE 0 END) AS low_line_count
FROM orders, lineitem
WHERE o_orderkey = l_orderkey AND l_shipmode IN (%(shipmode1)s, %(shipmode2)s)
  AND l_commitdate < l_receiptdate AND l_shipdate < l_commitdate AND l_receiptdate >= %(date)s
  AND l_receiptdate < %(date_end)s
GROUP BY l_shipmode ORDER BY l_shipmode""",
    "q13": """
SELECT c_count, count(*) AS custdist FROM (
  SELECT c_custkey, count(o_orderkey) AS c_count
  FROM customer LEFT OUTER JOIN orders ON c_custkey = o_custkey
    AND o_comment NOT LIKE '%%' || %(word1)s || '%%' || %(word2)s || '%%'
  GROUP BY c_custkey) AS c_orders
GROUP BY c_count ORDER BY custdist DESC, c_count DESC""",
    "q14": """
SELECT 100.00 * sum(CASE WHEN p_type LIKE 'PROMO%%' THEN l_extendedprice * (1 - l_discount) ELSE 0 END)
  / sum(l_extendedprice * (1 - l_discount)) AS promo_revenue
FROM lineitem, part
WHERE l_partkey = p_partkey AND l_shipdate >= %(date)s AND l_shipdate < %(date_end)s""",
    "q15": """
WITH revenue AS (
  SELECT l_suppkey AS supplier_no, sum(l_extendedprice * (1 - l_discount)) AS total_revenue FROM lineitem
  WHERE l_shipdate >= %(date)s AND l_shipdate < %(date_end)s GROUP BY l_suppkey)
SELECT s_suppkey, s_name, s_address, s_phone, total_revenue FROM supplier, revenue
WHERE s_suppkey = supplier_no AND total_revenue = (SELECT max(total_revenue) FROM revenue)
ORDER BY s_suppkey""",
    "q16": """
SELECT p_brand, p_type, p_size, count(DISTINCT ps_suppkey) AS supplier_cnt FROM partsupp, part
WHERE p_partkey = ps_partkey AND p_brand <> %(brand)s AND p_type NOT LIKE %(type)s || '%%'
  AND p_size IN (%(size1)s, %(size2)s, %(size3)s, %(size4)s, %(size5)s, %(size6)s, %(size7)s, %(size8)s)
  AND ps_suppkey NOT IN (SELECT s_suppkey FROM supplier WHERE s_comment LIKE '%%Customer%%Complaints%%')
GROUP BY p_brand, p_type, p_size ORDER BY supplier_cnt DESC, p_brand, p_type, p_size""",
    "q17": """
SELECT sum(l_extendedprice) / 7.0 AS avg_yearly FROM lineitem, part
WHERE p_partkey = l_partkey AND p_brand = %(brand)s AND p_container = %(container)s
  AND l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)""",
    "q18": """
SELECT c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity)
FROM customer, orders, lineitem
WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey HAVING sum(l_quantity) > %(quantity)s)
  AND c_custkey = o_custkey AND o_orderkey = l_orderkey
GROUP BY c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
ORDER BY o_totalprice DESC, o_orderdate LIMIT 100""",
    "q19": """
SELECT sum(l_extendedprice * (1 - l_discount)) AS revenue FROM lineitem, part
WHERE (p_partkey = l_partkey AND p_brand = %(brand1)s
    AND p_container IN ('SM CASE', 'SM BOX', 'SM PACK', 'SM PKG')
    AND l_quantity >= %(quantity1)s AND l_quantity <= %(quantity1)s + 10 AND p_size BETWEEN 1 AND 5
    AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON')
  OR (p_partkey = l_partkey AND p_brand = %(brand2)s
    AND p_container IN ('MED BAG', 'MED BOX', 'MED PKG', 'MED PACK')
    AND l_quantity >= %(quantity2)s AND l_quantity <= %(quantity2)s + 10 AND p_size BETWEEN 1 AND 10
    AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON')
  OR (p_partkey = l_partkey AND p_brand = %(brand3)s
    AND p_container IN ('LG CASE', 'LG BOX', 'LG PACK', 'LG PKG')
    AND l_quantity >= %(quantity3)s AND l_quantity <= %(quantity3)s + 10 AND p_size BETWEEN 1 AND 15
    AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON')""",
    "q20": """
SELECT s_name, s_address FROM supplier, nation
WHERE s_suppkey IN (
    SELECT ps_suppkey FROM partsupp
    WHERE ps_partkey IN (SELECT p_partkey FROM part WHERE p_name LIKE %(color)s || '%%')
      AND ps_availqty > (SELECT 0.5 * sum(l_quantity) FROM lineitem
        WHERE l_partkey = ps_partkey AND l_suppkey = ps_suppkey
          AND l_shipdate >= %(date)s AND l_shipdate < %(date_end)s))
  AND s_nationkey = n_nationkey AND n_name = %(nation)s
ORDER BY s_name""",
    "q21": """
SELECT s_name, count(*) AS numwait FROM supplier, lineitem l1, orders, nation
WHERE s_suppkey = l1.l_suppkey AND o_orderkey = l1.l_orderkey AND o_orderstatus = 'F'
  AND l1.l_receiptdate > l1.l_commitdate
  AND EXISTS (SELECT * FROM lineitem l2 WHERE l2.l_orderkey = l1.l_orderkey AND l2.l_suppkey <> l1.l_suppkey)
  AND NOT EXISTS (SELECT * FROM lineitem l3 WHERE l3.l_orderkey = l1.l_orderkey
    AND l3.l_suppkey <> l1.l_suppkey AND l3.l_receiptdate > l3.l_commitdate)
  AND s_nationkey = n_nationkey AND n_name = %(nation)s
GROUP BY s_name ORDER BY numwait DESC, s_name LIMIT 100""",
    "q22": """
SELECT cntrycode, count(*) AS numcust, sum(c_acctbal) AS totacctbal FROM (
  SELECT substring(c_phone FROM 1 FOR 2) AS cntrycode, c_acctbal FROM customer
  WHERE substring(c_phone FROM 1 FOR 2) IN (%(i1)s, %(i2)s, %(i3)s, %(i4)s, %(i5)s, %(i6)s, %(i7)s)
    AND c_acctbal > (SELECT avg(c_acctbal) FROM customer WHERE c_acctbal > 0.00
      AND substring(c_phone FROM 1 FOR 2) IN (%(i1)s, %(i2)s, %(i3)s, %(i4)s, %(i5)s, %(i6)s, %(i7)s))
    AND NOT EXISTS (SELECT * FROM orders WHERE o_custkey = c_custkey)) AS custsale
GROUP BY cntrycode ORDER BY cntrycode""",
}

# --- substitution parameters (clause 2.4.x.3; word lists of clause 4.2.2.13 and 4.2.3) -----------------
REGIONS = ("AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST")
NATIONS = (  # (name, region index), nation keys 0..24
    ("ALGERIA", 0), ("ARGENTINA", 1), ("BRAZIL", 1), ("CANADA", 1), ("EGYPT", 4), ("ETHIOPIA", 0),
    ("FRANCE", 3), ("GERMANY", 3), ("INDIA", 2), ("INDONESIA", 2), ("IRAN", 4), ("IRAQ", 4), ("JAPAN", 2),
    ("JORDAN", 4), ("KENYA", 0), ("MOROCCO", 0), ("MOZAMBIQUE", 0), ("PERU", 1), ("CHINA", 2),
    ("ROMANIA", 3), ("SAUDI ARABIA", 4), ("VIETNAM", 2), ("RUSSIA", 3), ("UNITED KINGDOM", 3),
    ("UNITED STATES", 1),
)  # fmt: skip
SEGMENTS = ("AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY", "HOUSEHOLD")
TYPE1 = ("STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO")
TYPE2 = ("ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED")
TYPE3 = ("TIN", "NICKEL", "BRASS", "STEEL", "COPPER")
CONTAINER1 = ("SM", "LG", "MED", "JUMBO", "WRAP")
CONTAINER2 = ("CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM")
SHIPMODES = ("REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB")
COLORS = (
    "almond antique aquamarine azure beige bisque black blanched blue blush brown burlywood burnished "
    "chartreuse chiffon chocolate coral cornflower cornsilk cream cyan dark deep dim dodger drab firebrick "
    "floral forest frosted gainsboro ghost goldenrod green grey honeydew hot indian ivory khaki lace lavender "
    "lawn lemon light lime linen magenta maroon medium metallic midnight mint misty moccasin navajo navy "
    "olive orange orchid pale papaya peach peru pink plum powder puff purple red rose rosy royal saddle "
    "salmon sandy seashell sienna sky slate smoke snow spring steel tan thistle tomato turquoise violet "
    "wheat white yellow"
).split()


def _month(year: int, month: int) -> dt.date:
    return dt.date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def _months_from(start_year: int, start_month: int, n: int, rng: np.random.Generator) -> int:
    """A random month index (0 = start) among the first n, as a month number counted from January."""
    return start_month + int(rng.integers(0, n))


def _brand(rng: np.random.Generator) -> str:
    return f"Brand#{int(rng.integers(1, 6))}{int(rng.integers(1, 6))}"


def _pick(seq, rng: np.random.Generator, k: int = 1) -> list:
    return [seq[i] for i in rng.choice(len(seq), size=k, replace=False)]


def draw_params(name: str, rng: np.random.Generator, scale: float) -> dict[str, Any]:
    """One query's substitution parameters, as qgen draws them (values bound by psycopg)."""
    q = int(name[1:])
    year = int(rng.integers(1993, 1998))  # Jan 1 of 1993..1997
    if q == 1:
        return {"ship_max": dt.date(1998, 12, 1) - dt.timedelta(days=int(rng.integers(60, 121)))}
    if q == 2:
        return {
            "size": int(rng.integers(1, 51)),
            "type": str(rng.choice(TYPE3)),
            "region": str(rng.choice(REGIONS)),
        }
    if q == 3:
        return {"segment": str(rng.choice(SEGMENTS)), "date": dt.date(1995, 3, int(rng.integers(1, 32)))}
    if q == 4:
        m = _months_from(1993, 1, 58, rng)  # 1993-01 .. 1997-10
        return {"date": _month(1993, m), "date_end": _month(1993, m + 3)}
    if q == 5:
        return {
            "region": str(rng.choice(REGIONS)),
            "date": dt.date(year, 1, 1),
            "date_end": dt.date(year + 1, 1, 1),
        }
    if q == 6:
        return {"date": dt.date(year, 1, 1), "date_end": dt.date(year + 1, 1, 1),
                "discount": Decimal(int(rng.integers(2, 10))) / 100, "quantity": int(rng.integers(24, 26))}  # fmt: skip
    if q == 7:
        n1, n2 = _pick(NATIONS, rng, 2)
        return {"nation1": n1[0], "nation2": n2[0]}
    if q == 8:
        n = NATIONS[int(rng.integers(0, len(NATIONS)))]
        t = f"{rng.choice(TYPE1)} {rng.choice(TYPE2)} {rng.choice(TYPE3)}"
        return {"nation": n[0], "region": REGIONS[n[1]], "type": t}
    if q == 9:
        return {"color": str(rng.choice(COLORS))}
    if q == 10:
        m = _months_from(1993, 2, 24, rng)  # 1993-02 .. 1995-01
        return {"date": _month(1993, m), "date_end": _month(1993, m + 3)}
    if q == 11:
        return {
            "nation": str(rng.choice([n for n, _ in NATIONS])),
            "fraction": Decimal("0.0001") / Decimal(str(scale)),
        }
    if q == 12:
        a, b = _pick(SHIPMODES, rng, 2)
        return {
            "shipmode1": a,
            "shipmode2": b,
            "date": dt.date(year, 1, 1),
            "date_end": dt.date(year + 1, 1, 1),
        }
    if q == 13:
        return {"word1": str(rng.choice(("special", "pending", "unusual", "express"))),
                "word2": str(rng.choice(("packages", "requests", "accounts", "deposits")))}  # fmt: skip
    if q in (14, 15):
        m = _months_from(1993, 1, 60 if q == 14 else 58, rng)
        return {"date": _month(1993, m), "date_end": _month(1993, m + (1 if q == 14 else 3))}
    if q == 16:
        sizes = sorted(int(s) for s in rng.choice(np.arange(1, 51), size=8, replace=False))
        d = {"brand": _brand(rng), "type": f"{rng.choice(TYPE1)} {rng.choice(TYPE2)}"}
        d.update({f"size{i + 1}": s for i, s in enumerate(sizes)})
        return d
    if q == 17:
        return {"brand": _brand(rng), "container": f"{rng.choice(CONTAINER1)} {rng.choice(CONTAINER2)}"}
    if q == 18:
        return {"quantity": int(rng.integers(312, 316))}
    if q == 19:
        return {"brand1": _brand(rng), "brand2": _brand(rng), "brand3": _brand(rng),
                "quantity1": int(rng.integers(1, 11)), "quantity2": int(rng.integers(10, 21)),
                "quantity3": int(rng.integers(20, 31))}  # fmt: skip
    if q == 20:
        return {"color": str(rng.choice(COLORS)), "date": dt.date(year, 1, 1), "date_end": dt.date(year + 1, 1, 1),
                "nation": str(rng.choice([n for n, _ in NATIONS]))}  # fmt: skip
    if q == 21:
        return {"nation": str(rng.choice([n for n, _ in NATIONS]))}
    if q == 22:
        codes = [str(c) for c in rng.choice(np.arange(10, 35), size=7, replace=False)]
        return {f"i{i + 1}": c for i, c in enumerate(codes)}
    raise LabError(f"no TPC-H query {name}")


def stream(seed: int, scale: float, names: list[str] | None = None) -> list[Instance]:
    """One query stream: every query once, in a seeded random order, each with its own parameters."""
    names = list(names or QUERIES)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    return [Instance(i, names[k], draw_params(names[k], rng, scale)) for i, k in enumerate(order.tolist())]


@dataclass(frozen=True)
class SqlTemplate:
    """A query template without access lists (its blocks are traced): name and SQL."""

    name: str
    sql: str


def stream_instances(n: int, seed: int, scale: float) -> list[Instance]:
    """`n` instances: whole streams (seeds seed*1000, seed*1000+1, ...) back to back, cut at n."""
    out: list[Instance] = []
    k = 0
    while len(out) < n:
        out.extend(stream(seed * 1000 + k, scale))
        k += 1
    return [Instance(i, x.template, x.params) for i, x in enumerate(out[:n])]


def read_queries(conn: psycopg.Connection) -> tuple[dict, dict[str, SqlTemplate]]:
    """The TPC-H load description and its queries from lab_meta, re-validated."""
    import psycopg

    try:
        rows = dict(conn.execute(f"SELECT key, value FROM {SCHEMA}.lab_meta").fetchall())
    except psycopg.Error as e:
        raise LabError(f"cannot read lab_meta: {str(e).strip().splitlines()[0]}") from None
    meta = rows.get("load")
    if not isinstance(meta, dict) or meta.get("dataset") != "tpch":
        raise LabError("the database holds no TPC-H load: run `lab sched pg load --dataset tpch`")
    return meta, {n: SqlTemplate(n, q) for n, q in queries_from_stored(rows.get("templates")).items()}


def check_queries(conn: psycopg.Connection | None = None, scale: float = 0.01) -> None:
    """Every query is a single read-only SELECT (sqlcheck); with a connection also plan each one once."""
    import psycopg

    for name, sql in QUERIES.items():
        check_select(sql, f"TPC-H query {name}")
    if conn is None:
        return
    rng = np.random.default_rng(0)
    for name, sql in QUERIES.items():
        try:
            with read_only(conn):
                conn.execute("EXPLAIN " + sql, draw_params(name, rng, scale))
        except psycopg.Error as e:
            raise sql_error(f"TPC-H query {name}", e) from None


# --- data ----------------------------------------------------------------------------------------------
def tpchgen_binary() -> str:
    """The `tpchgen-cli` executable of this environment (beside the interpreter), else on PATH."""
    here = Path(sys.executable).parent / "tpchgen-cli"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("tpchgen-cli")
    if not found:
        raise LabError("tpchgen-cli not found: `pip install tpchgen-cli` (a dependency of lab-learnsched)")
    return found


def generate(scale: float, out_dir: Path) -> dict[str, Path]:
    """Run tpchgen-cli (argument list, no shell); returns the .tbl file of each table."""
    try:
        r = subprocess.run([tpchgen_binary(), "-s", repr(float(scale)), f"--output-dir={out_dir}"],
                           capture_output=True, text=True, timeout=3600, cwd=out_dir)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"tpchgen-cli failed: {e}") from None
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise LabError(f"tpchgen-cli failed: {msg[-1] if msg else f'exit {r.returncode}'}")
    files = {t: out_dir / f"{t}.tbl" for t in TABLES}
    missing = [t for t, p in files.items() if not p.is_file()]
    if missing:
        raise LabError(f"tpchgen-cli wrote no {', '.join(missing)} in {out_dir}")
    return files


def _copy_tbl(conn: psycopg.Connection, table: str, path: Path) -> None:
    """COPY a .tbl file: '|'-separated text with a trailing '|' that is stripped line by line."""
    with conn.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT text, DELIMITER '|')") as cp:
        with open(path, encoding="utf-8") as f:
            while True:
                lines = f.readlines(1 << 20)
                if not lines:
                    break
                cp.write("".join(ln[:-2] + "\n" if ln.endswith("|\n") else ln for ln in lines))


@dataclass
class TpchLoadInfo:
    load_id: str
    scale: float
    seed: int
    rows: dict[str, int]
    pages: dict[str, int]
    seconds: float
    dataset: str = "tpch"


def load_tpch(conn: psycopg.Connection, scale: float, seed: int = 0) -> TpchLoadInfo:
    """Generate, (re)create the eight tables in one transaction, COPY, index, vacuum, store the queries."""
    import psycopg

    if not 0 < scale <= 10:
        raise LabError(f"scale must be in (0, 10], got {scale}")
    check_queries()
    t0 = time.time()
    ensure_extensions(conn)
    tmp = Path(tempfile.mkdtemp(prefix="lab-tpch-"))  # private (0700), removed whatever happens
    step = "generating data"
    try:
        files = generate(scale, tmp)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        with conn.transaction():  # all or nothing: a failure leaves the previous workload
            conn.execute(f"SET LOCAL search_path = {SCHEMA}")
            step = "creating tables"
            conn.execute("DROP TABLE IF EXISTS " + ", ".join((*TABLES, "lab_meta")) + " CASCADE")
            conn.execute(DDL)
            for t in TABLES:
                step = f"loading {t}"
                _copy_tbl(conn, t, files[t])
            step = "building indexes"
            conn.execute(INDEXES)
            conn.execute("CREATE TABLE lab_meta (key text PRIMARY KEY, value jsonb NOT NULL)")
            conn.execute("ANALYZE " + ", ".join(TABLES))
            step = "planning the queries"
            check_queries(conn, scale)
        step = "vacuuming"
        conn.execute("VACUUM (FREEZE, ANALYZE) " + ", ".join(f"{SCHEMA}.{t}" for t in TABLES))
    except psycopg.Error as e:
        raise sql_error(f"TPC-H load failed while {step}", e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = {t: conn.execute(f"SELECT count(*) FROM {SCHEMA}.{t}").fetchone()[0] for t in TABLES}
    info = TpchLoadInfo(uuid.uuid4().hex[:12], scale, seed, rows, relation_pages(conn, TABLES),
                        round(time.time() - t0, 2))  # fmt: skip
    store_meta(conn, info, [{"name": n, "sql": s} for n, s in QUERIES.items()])
    return info


def queries_from_stored(items: Any) -> dict[str, str]:
    """The queries read back from lab_meta, checked again (a single read-only SELECT each)."""
    if not isinstance(items, list) or not all(
        isinstance(d, dict) and {"name", "sql"} <= set(d) for d in items
    ):
        raise LabError("lab_meta's TPC-H queries are malformed: run `lab sched pg load --dataset tpch` again")
    out = {}
    for d in items:
        check_select(str(d["sql"]), f"stored TPC-H query {d['name']}")
        out[str(d["name"])] = str(d["sql"])
    return out
