"""Access sets estimated from EXPLAIN (pg/estimate.py), on the tiny real cluster of test_pg_real.py (its module
fixture is reused: a 2MB cluster with the TPC-H-like data at scale 0.03), and `pg bench --access estimated
--clients 4`. The plan-text helpers are tested without a server."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab_learnsched.pg.estimate import Estimator, cardenas, literal, quality, split_and
from lab_shared.errors import LabError

_spec = importlib.util.spec_from_file_location(
    "_pg_real_fixtures", Path(__file__).with_name("test_pg_real.py")
)
_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_real)
cluster = _real.cluster  # the same module fixture: initdb + load, always removed


def test_plan_text_helpers():
    assert split_and("((a >= '1995-01-01'::date) AND (a < '1996-01-01'::date))") == [
        "a >= '1995-01-01'::date",
        "a < '1996-01-01'::date",
    ]
    assert split_and("(l_orderkey = orders.o_orderkey)") == ["l_orderkey = orders.o_orderkey"]
    assert split_and("(x = 'AND (' AND y = 2)") == ["x = 'AND ('", "y = 2"]  # quotes are not split
    assert literal("'1995-03-11'::date") == "1995-03-11" and literal("42") == "42"
    assert literal("'it''s'::text") == "it's" and literal("'313'::numeric") == "313"
    assert literal("orders.o_orderkey") is None and literal("$1") is None
    assert (
        cardenas(0, 100) == 0
        and 99 < cardenas(10_000, 100) <= 100
        and cardenas(1, 100) == pytest.approx(1, 0.01)
    )
    est = [{"t": np.array([1, 2, 3, 4])}]
    exact = [{"t": np.array([3, 4, 5, 6])}]
    q = quality(est, exact, ["a"])["all"]
    assert q["jaccard"] == pytest.approx(2 / 6) and q["recall"] == 0.5 and q["precision"] == 0.5


def _estimator(cluster):
    from lab_learnsched.pg.conn import connect

    conn = connect(cluster.dsn)
    names = [
        r[0]
        for r in conn.execute("SELECT relname FROM pg_class WHERE relnamespace = 'lab_sched'::regnamespace")
    ]
    return conn, Estimator(conn, names)


@pytest.mark.postgres
def test_seq_scan_reads_every_heap_block_and_clustered_lookup_few(cluster):
    conn, est = _estimator(cluster)
    with conn:
        # no index on p_comment: a seq scan even with enable_seqscan off, so every heap block
        b = est.estimate("SELECT count(*) FROM part WHERE p_comment LIKE '%%slyly%%'")
        assert list(b) == ["part"]
        assert b["part"].tolist() == list(range(est.rels["part"].pages))
        # a narrow order-key range on the clustered lineitem pkey: a handful of contiguous heap pages
        b = est.estimate("SELECT sum(l_extendedprice) FROM lineitem WHERE l_orderkey BETWEEN 100 AND 130")
        heap, idx = b["lineitem"], b["lineitem_pkey"]
        assert 1 <= heap.size <= 4 and np.all(np.diff(heap) == 1)
        assert idx.size <= 4 and 0 in idx.tolist()  # metapage, root, the leaf
        assert heap.max() < est.rels["lineitem"].pages // 10  # low keys: the front of the table
        # part-key lookups go through an unclustered index: scattered pages, many more of them
        b = est.estimate("SELECT sum(l_quantity) FROM lineitem WHERE l_partkey BETWEEN 100 AND 400")
        assert b["lineitem"].size > 5 * heap.size and np.diff(b["lineitem"]).max() > 1
        # a join: the inner side of a nested loop runs once per outer row
        b = est.estimate(
            "SELECT sum(l.l_quantity) FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey "
            "WHERE o.o_orderdate BETWEEN %(lo)s AND %(hi)s",
            {"lo": "1998-01-01", "hi": "1998-01-20"},
        )
        assert {"orders", "lineitem"} <= set(b)


@pytest.mark.postgres
def test_estimates_overlap_the_probed_sets(cluster, tmp_path):
    from lab_learnsched.pg import bridge
    from lab_learnsched.pg.conn import connect
    from lab_learnsched.pg.estimate import estimate_instances
    from lab_learnsched.pg.load import read_meta
    from lab_learnsched.pg.probe import ProbeCache
    from lab_learnsched.pg.templates import check_templates, sample_instances

    with connect(cluster.dsn) as conn:
        meta, temps = read_meta(conn)
        domains = check_templates(conn, temps)
        tmap = {t.name: t for t in temps}
        insts = sample_instances(temps, domains, 15, 3)
        probed = ProbeCache(meta["load_id"], tmp_path).get_or_probe(conn, tmap, insts)
        est = estimate_instances(conn, tmap, insts, list(bridge.make_tables(temps, meta["pages"]).names))
    q = quality(est, probed, [i.template for i in insts])
    assert q["all"]["instances"] == 15
    assert q["all"]["jaccard"] > 0.4 and q["all"]["recall"] > 0.6, q
    # the clustered order-key ranges are estimated closely
    assert q["templates"]["order_revenue"]["jaccard"] > 0.6, q["templates"]


def _lab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != "LAB_PG_DSN"}, **(env or {})}
    return subprocess.run([sys.executable, "-m", "lab_shared.cli", "sched", "pg", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    return lines[0]


@pytest.mark.postgres
def test_any_select_is_estimated_and_dml_refused(cluster):
    from lab_learnsched.pg.conn import connect

    d = str(cluster.base_dir)
    sql = ("SELECT o_orderpriority, count(*) FROM orders o WHERE EXISTS "
           "(SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey) GROUP BY 1")  # fmt: skip
    r = _lab("estimate", "--dir", d, "--sql", sql, "-n", "6")  # plus the loaded workload vs its probed sets
    assert r.returncode == 0, r.stderr
    assert "orders" in r.stdout and "lineitem" in r.stdout
    assert "jaccard" in r.stdout and "| all |" in r.stdout
    with connect(cluster.dsn) as conn:
        before = conn.execute("SELECT count(*) FROM lab_sched.orders").fetchone()[0]
    assert "only SELECT is allowed, got DELETE" in _one_line(
        _lab("estimate", "--dir", d, "--sql", "DELETE FROM orders")
    )
    conn, est = _estimator(cluster)
    with conn:
        for bad in ("UPDATE orders SET o_totalprice = 0", "INSERT INTO orders SELECT * FROM orders",
                    "WITH d AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM d",
                    "SELECT * FROM orders FOR UPDATE"):  # fmt: skip
            with pytest.raises(LabError, match="only"):
                est.estimate(bad)
        assert conn.execute("SELECT count(*) FROM lab_sched.orders").fetchone()[0] == before


@pytest.mark.postgres
def test_bench_with_four_clients_on_estimates(cluster, tmp_path):
    env = {"LAB_RUNS": str(tmp_path / "runs"), "LAB_PG_CACHE": str(tmp_path / "cache")}
    d = str(cluster.base_dir)
    # bad input: one line, exit 2, no run folder
    assert "'guess' is not one of exact, estimated" in _one_line(
        _lab("bench", "--dir", d, "--access", "guess", env=env)
    )
    from lab_learnsched.pg.bench import PgBenchConfig, check_config

    with pytest.raises(LabError, match="--clients must be >= 1"):
        check_config(PgBenchConfig(clients=0))
    assert not (tmp_path / "runs").exists()
    r = _lab("bench", "--dir", d, "--episodes", "1", "--queries", "10", "--policies", "fifo,greedy",
             "--access", "estimated", "--clients", "4", "--set", "learned=false", "--set", "exact_batches=0",
             "--set", "queue_size=4", "--set", "heuristics=fifo,greedy", "--set", "val_episodes=1", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (run,) = (tmp_path / "runs" / "sched-bench").iterdir()
    res = json.loads((run / "results.json").read_text())
    assert res["meta"]["clients"] == 4 and res["meta"]["access"] == "estimated"
    rows = {row["policy"]: row for row in res["pg_main"]}
    assert {"fifo", "greedy"} <= set(rows) and any(p.startswith("best heuristic (") for p in rows)
    for p in ("fifo", "greedy"):
        assert rows[p]["reads"] > 0 and rows[p]["stream_s"] > 0 and "vs_best" in rows[p]
        assert 0 < rows[p]["in_flight"] <= 4  # queries at once: never more than the clients
    scheds = [s for s in res["schedules"] if s["set"] == "main"]
    assert all(sorted(s["order"]) == list(range(10)) for s in scheds)
    # the per-query counts of 4 concurrent backends add up to what pg_stat_statements saw (it also counts
    # the fresh backends' catalog reads during parse analysis, outside EXPLAIN's counters)
    chk = res["pgss_check"]
    assert (
        chk["explain_reads"] > 0
        and abs(chk["pgss_reads"] - chk["explain_reads"]) <= 0.05 * chk["explain_reads"]
    )
    q = res["estimate_quality"]["all"]
    assert q["instances"] == 10 and 0 < q["jaccard"] <= 1
    assert (run / "pg_estimate_quality.md").is_file() and (run / "pg_main.md").is_file()
    assert len(list((run / "episodes").glob("val-*.json"))) == 2  # the bar's validation episodes
