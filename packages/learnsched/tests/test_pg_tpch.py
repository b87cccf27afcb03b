"""TPC-H on a real PostgreSQL at a tiny scale (0.01): `lab sched pg load --dataset tpch` end to end, the 22
queries (read-only, planned and executed), qgen-style parameters and streams. One cluster per module."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from lab_learnsched.pg import tpch
from lab_learnsched.pg.conn import connect
from lab_learnsched.pg.templates import read_only
from lab_shared.errors import LabError

SCALE = 0.01


def test_queries_are_read_only_selects_and_params_follow_qgen():
    tpch.check_queries()  # every query passes the SELECT-only checker
    assert len(tpch.QUERIES) == 22 and len(tpch.NATIONS) == 25 and len(tpch.COLORS) == 92
    rng = np.random.default_rng(3)
    for _ in range(50):
        p1 = tpch.draw_params("q1", rng, SCALE)
        assert dt.date(1998, 8, 3) <= p1["ship_max"] <= dt.date(1998, 10, 2)  # 1998-12-01 minus 60..120 days
        p16 = tpch.draw_params("q16", rng, SCALE)
        sizes = [p16[f"size{i}"] for i in range(1, 9)]
        assert len(set(sizes)) == 8 and all(1 <= s <= 50 for s in sizes)
        p22 = tpch.draw_params("q22", rng, SCALE)
        assert len(set(p22.values())) == 7 and all(10 <= int(c) <= 34 for c in p22.values())
        p8 = tpch.draw_params("q8", rng, SCALE)
        assert tpch.REGIONS[dict(tpch.NATIONS)[p8["nation"]]] == p8["region"]
        p4 = tpch.draw_params("q4", rng, SCALE)
        assert dt.date(1993, 1, 1) <= p4["date"] <= dt.date(1997, 10, 1) and p4["date"].day == 1
    s = tpch.stream(5, SCALE)
    assert sorted(i.template for i in s) == sorted(tpch.QUERIES) and [i.qid for i in s] == list(range(22))
    assert [i.params for i in s] == [i.params for i in tpch.stream(5, SCALE)]
    assert [i.template for i in s] != [i.template for i in tpch.stream(6, SCALE)]
    with pytest.raises(LabError, match="only SELECT"):
        tpch.queries_from_stored([{"name": "q1", "sql": "DELETE FROM lineitem"}])


def test_streams_back_to_back_and_trace_pool_size():
    from lab_learnsched.pg.trace import trace_pool_size

    insts = tpch.stream_instances(30, 2, SCALE)
    assert [i.qid for i in insts] == list(range(30))
    assert sorted(i.template for i in insts[:22]) == sorted(tpch.QUERIES)  # a whole stream, then the next
    assert [i.params for i in insts[:22]] == [i.params for i in tpch.stream(2000, SCALE)]
    # every relation stays below a quarter of the tracing pool (no ring buffer), and everything fits
    pages = {"lineitem": 11_000, "orders": 2_600, "lineitem_pkey": 1_700}
    mb = int(trace_pool_size(pages).removesuffix("MB"))
    assert mb * 1024 // 8 >= 4 * 11_000 and mb * 1024 // 8 >= sum(pages.values())


@pytest.fixture(scope="module")
def base():
    from lab_learnsched.pg.cluster import Cluster, trusted_bin_dir

    try:
        trusted_bin_dir()
    except LabError as e:
        pytest.skip(f"PostgreSQL server binaries not usable: {e}")
    parent = Path(tempfile.mkdtemp(prefix="lab-pg-tpch-"))
    os.chmod(parent, 0o755)
    b = parent / "c"
    try:
        assert _lab("up", "--dir", str(b), "--shared-buffers", "2MB").returncode == 0
        yield b
    finally:
        try:
            Cluster.load(b).destroy()
        except LabError:
            pass
        shutil.rmtree(parent, ignore_errors=True)


def _lab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != "LAB_PG_DSN"}, **(env or {})}
    return subprocess.run([sys.executable, "-m", "lab_shared.cli", "sched", "pg", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.postgres
def test_load_tpch_runs_all_22_queries(base):
    from lab_learnsched.pg.cluster import Cluster

    r = _lab("load", "--dir", str(base), "--dataset", "tpch", "--scale", str(SCALE))
    assert r.returncode == 0, r.stderr
    assert "queries: q1, q2" in r.stdout
    dsn = Cluster.load(base).dsn
    with connect(dsn) as conn:
        conn.execute("SET search_path = lab_sched")
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tpch.TABLES}
        assert rows["region"] == 5 and rows["nation"] == 25 and rows["supplier"] == 100
        assert rows["customer"] == 1500 and rows["part"] == 2000 and rows["partsupp"] == 8000
        assert rows["orders"] == 15000 and 4 * 15000 * 0.9 < rows["lineitem"] < 4 * 15000 * 1.1
        assert not conn.execute("SELECT count(*) FROM lineitem WHERE l_comment LIKE '%|'").fetchone()[0]
        idx = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'lab_sched'")}
        assert {"lineitem_pkey", "partsupp_pkey", "orders_custkey_idx", "lineitem_part_supp_idx",
                "supplier_nationkey_idx", "customer_nationkey_idx", "partsupp_suppkey_idx"} <= idx  # fmt: skip
        conn.execute("SET enable_seqscan = off")
        results = {}
        for inst in tpch.stream(1, SCALE):
            with read_only(conn):
                doc = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + tpch.QUERIES[inst.template],
                                   inst.params).fetchone()[0][0]  # fmt: skip
            results[inst.template] = doc["Plan"]
        assert len(results) == 22
        assert (
            sum(p.get("Shared Hit Blocks", 0) + p.get("Shared Read Blocks", 0) for p in results.values()) > 0
        )
        assert results["q1"]["Actual Rows"] == 4  # (A,F) (N,F) (N,O) (R,F), as on every TPC-H database
        after = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tpch.TABLES}
        assert after == rows
    r = _lab("status", "--dir", str(base))
    assert r.returncode == 0 and "(tpch)" in r.stdout and "q22" in r.stdout, r.stderr
    r = _lab("load", "--dir", str(base), "--dataset", "tpcx")
    assert r.returncode == 2 and "'tpcx' is not one of tpch-like, tpch" in r.stderr


@pytest.mark.postgres
def test_streams_as_episodes_on_traced_access_sets(base, tmp_path):
    """A stream is an episode; blocks come from tracing each instance alone on a cold, large pool."""
    import json

    env = {"LAB_RUNS": str(tmp_path / "runs"), "LAB_PG_CACHE": str(tmp_path / "cache")}
    r = _lab("probe", "--dir", str(base), "-n", "3", env=env)
    assert r.returncode == 0 and "lineitem" in r.stdout, r.stderr
    assert list((tmp_path / "cache").glob("trace-*.json"))
    assert "shared_buffers 2MB" in _lab("status", "--dir", str(base)).stdout  # the pool size is restored
    r = _lab("bench", "--dir", str(base), "--episodes", "1", "--queries", "22", "--policies", "fifo,greedy",
             "--set", "learned=false", "--set", "exact_batches=0", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (run,) = (tmp_path / "runs" / "sched-bench").iterdir()
    res = json.loads((run / "results.json").read_text())
    assert [row["policy"] for row in res["pg_main"]] == ["fifo", "greedy"]
    assert all(row["reads"] > 0 for row in res["pg_main"])
    assert {s["policy"] for s in res["schedules"]} == {"fifo", "greedy"}
    assert all(sorted(s["order"]) == list(range(22)) for s in res["schedules"])
