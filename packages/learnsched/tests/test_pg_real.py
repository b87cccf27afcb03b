"""Real PostgreSQL: a tiny throwaway cluster in a temporary folder, always stopped and removed.

Skipped (with the reason) only when the server binaries are not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from lab_learnsched.pg import bridge
from lab_learnsched.pg.cluster import Cluster, create_cluster, free_port
from lab_learnsched.pg.conn import Target, connect, ensure_extensions
from lab_learnsched.pg.execute import PgExecutor
from lab_learnsched.pg.load import load_dataset, read_meta
from lab_learnsched.pg.probe import ProbeCache
from lab_learnsched.pg.templates import Instance, check_templates, load_templates, parse_templates
from lab_shared.errors import LabError

pytestmark = pytest.mark.postgres

SCALE = 0.03  # 4,500 orders, ~300 lineitem pages: seconds to load


def _pg_bin() -> Path | None:
    from lab_shared.tools import find_pg_bin

    try:
        return find_pg_bin()
    except LabError:
        return None


@contextlib.contextmanager
def pg_tmpdir():
    """A fresh folder under the system temp dir (which the `postgres` user can reach), always removed."""
    if _pg_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    d = Path(tempfile.mkdtemp(prefix="lab-pg-test-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    with pg_tmpdir() as d:
        base = d / "cluster"
        c = create_cluster(base, shared_buffers="2MB")
        try:
            with connect(c.dsn) as conn:
                load_dataset(conn, SCALE, 0, load_templates())
            yield c
        finally:
            c.destroy()
        assert not base.exists()


@pytest.fixture()
def workload(cluster, tmp_path):
    with connect(cluster.dsn) as conn:
        meta, temps = read_meta(conn)
        domains = check_templates(conn, temps)
    tables = bridge.make_tables(temps, meta["pages"])
    return meta, {t.name: t for t in temps}, domains, tables, ProbeCache(meta["load_id"], tmp_path)


def _four(n_orders: int) -> list[Instance]:
    """Four overlapping order-key ranges: A overlaps B, C overlaps D, A/B and C/D far apart."""
    n, w, s = n_orders, n_orders // 3, n_orders // 6
    ranges = [(1, w), (1 + s, w + s), (n // 2, n // 2 + w), (n // 2 + s, n // 2 + w + s)]
    return [Instance(i, "order_revenue", {"lo": lo, "hi": hi}) for i, (lo, hi) in enumerate(ranges)]


def test_two_orders_differ_as_the_simulator_predicts(cluster, workload):
    meta, tmap, _, tables, cache = workload
    insts = _four(meta["rows"]["orders"])
    with connect(cluster.dsn) as conn:
        qs = bridge.to_queries(tables, insts, cache.get_or_probe(conn, tmap, insts))
    measured, predicted = {}, {}
    with PgExecutor(Target(cluster.dsn, cluster), list(tables.names)) as ex:
        for order in ((0, 1, 2, 3), (0, 2, 1, 3)):
            ex.reset()
            ex.warm(tmap, insts)
            snap = ex.snapshot()
            predicted[order] = bridge.predict_reads(
                bridge.exact_layout_pool(tables, snap), [qs[i] for i in order]
            )
            measured[order] = np.array([ex.run(tmap["order_revenue"], insts[i]).reads for i in order])
    good, bad = (0, 1, 2, 3), (0, 2, 1, 3)
    # running the overlapping queries back to back reads fewer blocks, on PostgreSQL and in the simulator
    assert predicted[good].sum() < predicted[bad].sum()
    assert measured[good].sum() < measured[bad].sum()
    assert measured[bad].sum() - measured[good].sum() >= 0.1 * measured[good].sum()
    for o in (good, bad):
        assert abs(int(predicted[o].sum()) - int(measured[o].sum())) <= 0.1 * measured[o].sum()


def test_probe_matches_what_a_cold_run_reads(cluster, workload):
    meta, tmap, domains, tables, cache = workload
    from lab_learnsched.pg.templates import sample_instances

    insts = sample_instances(list(tmap.values()), domains, 5, 11)
    with connect(cluster.dsn) as conn:
        blocks = cache.get_or_probe(conn, tmap, insts)
    assert cache.path.is_file()
    with PgExecutor(Target(cluster.dsn, cluster), list(tables.names), drop_os_cache=False) as ex:
        for inst, b in zip(insts, blocks):
            ex.reset()
            ex.warm(tmap, [inst])
            before = ex.snapshot()
            r = ex.run(tmap[inst.template], inst)
            after = ex.snapshot()
            cached = sum(len(set(before.blocks_of(rel).tolist()) & set(v.tolist())) for rel, v in b.items())
            assert r.reads == sum(len(v) for v in b.values()) - cached, inst.key()
            for rel, v in b.items():  # pg_buffercache read back: every probed block is now in the pool
                assert set(v.tolist()) <= set(after.blocks_of(rel).tolist()), (inst.key(), rel)
            assert r.scans and not any(s.startswith("Seq Scan") for s in r.scans)


def test_small_bench_writes_tables(cluster, tmp_path, monkeypatch):
    from lab_learnsched.pg.bench import PgBenchConfig, headline, run_bench
    from lab_shared.rundir import RunDir

    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_PG_CACHE", str(tmp_path / "cache"))
    cfg = PgBenchConfig(
        policies=["fifo", "greedy", "optimal"], learned=False, episodes=1, queries=10, queue_size=4,
        exact_batches=1, exact_size=4, dsn="", pg_dir=str(cluster.base_dir), drop_os_cache=False,
    )  # fmt: skip
    run = RunDir.create("sched-bench", "postgres", cfg)
    out = run_bench(cfg, run)
    assert [r["policy"] for r in out["pg_main"]] == ["fifo", "greedy", "optimal"]
    exact = {r["policy"]: r for r in out["pg_exact"]}
    assert exact["optimal (exact)"]["gap_opt"] == 0.0
    agr = {r["model"]: r for r in out["pg_agreement"]}
    assert agr["clock_exact"]["schedule_err_mean"] < 0.1
    chk = out["pgss_check"]  # pg_stat_statements counts the same reads as EXPLAIN (execution + planning)
    assert chk["schedules"] == len(out["schedules"]) and chk["pgss_reads"] == chk["explain_reads"] > 0
    for name in ("pg_main.md", "pg_exact.csv", "pg_agreement.md", "results.json", "plots/pg_reads.png"):
        assert (run.path / name).is_file(), name
    assert "simulator vs PostgreSQL" in headline(out)


def test_bad_template_is_named(cluster):
    t = {
        "name": "broken",
        "sql": "SELECT count(*) FROM lineitem WHERE l_nosuchcol BETWEEN %(lo)s AND %(hi)s",
        "range": {"column": "orders.o_orderkey", "width": [0.1, 0.2]},
        "access": [{"table": "lineitem", "index": "lineitem_pkey", "where": "l_orderkey > %(lo)s"}],
    }
    with connect(cluster.dsn) as conn, pytest.raises(LabError, match="template 'broken': column"):
        check_templates(conn, parse_templates({"template": [t]}))
    with pytest.raises(LabError, match="template 'broken': not valid SQL: syntax error"):
        parse_templates({"template": [{**t, "sql": "SELEC count(*) FROM lineitem WHERE %(lo)s < %(hi)s"}]})


def test_unreachable_and_missing_extension_and_no_rights(cluster):
    with pytest.raises(LabError, match="cannot connect to PostgreSQL") as e:
        connect(f"host=127.0.0.1 port={free_port()} dbname=x user=postgres")
    assert "\n" not in str(e.value)
    with connect(cluster.dsn) as conn:
        with pytest.raises(LabError, match="extension no_such_ext is missing"):
            ensure_extensions(conn, required=("no_such_ext",), optional=())
        conn.execute("DROP DATABASE IF EXISTS lab_empty")
        conn.execute("CREATE DATABASE lab_empty")
        conn.execute("DROP ROLE IF EXISTS lab_weak")
        conn.execute("CREATE ROLE lab_weak LOGIN")
    # only the cluster's owner may log in (peer map): act as a weaker role through SET ROLE
    with connect(cluster.dsn.replace("dbname=lab ", "dbname=lab_empty ")) as conn:
        conn.execute("SET ROLE lab_weak")
        with pytest.raises(LabError, match="no right to create extension pageinspect"):
            ensure_extensions(conn, required=("pageinspect",), optional=())
    with connect(cluster.dsn) as conn:
        conn.execute("SET ROLE lab_weak")
        with pytest.raises(LabError, match="permission denied"):
            load_dataset(conn, 0.001, 0, load_templates(), replace=False)
    with connect(cluster.dsn) as conn:  # the real tables are untouched
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] > 0


def test_cli_up_load_status_down(tmp_path):
    with pg_tmpdir() as d:
        _cli_roundtrip(d / "cli-pg", tmp_path)


def _cli_roundtrip(base: Path, tmp_path: Path) -> None:
    env = {**os.environ, "LAB_PG_DIR": str(base), "LAB_RUNS": str(tmp_path / "runs")}
    env.pop("LAB_PG_DSN", None)
    lab = [sys.executable, "-m", "lab_shared.cli", "sched", "pg"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*lab, *args], env=env, capture_output=True, text=True, timeout=120)

    try:
        r = run("up", "--shared-buffers", "2MB")
        assert r.returncode == 0, r.stderr
        assert (base / "cluster.json").is_file()
        assert stat.S_IMODE(base.stat().st_mode) == (0o711 if os.geteuid() == 0 else 0o700)
        dsn = Cluster.load(base).dsn
        with connect(dsn) as conn:  # a table of the user's with one of our names: load must not touch it
            conn.execute("CREATE TABLE public.orders (note text)")
            conn.execute("INSERT INTO public.orders VALUES ('mine')")
        r = run("load", "--scale", "0.005")
        assert r.returncode == 0, r.stderr
        with connect(dsn) as conn:
            assert conn.execute("SELECT note FROM public.orders").fetchall() == [("mine",)]
        r = run("status")
        assert r.returncode == 0 and "order_revenue" in r.stdout, r.stderr
        r = run("up", "--shared-buffers", "3MB")  # an existing cluster: resize its pool
        assert r.returncode == 0 and "3MB" in r.stdout, r.stderr
        assert "shared_buffers 3MB" in run("status").stdout
        r = run("probe", "-n", "3")
        assert r.returncode == 0 and "lineitem" in r.stdout, r.stderr
        bad = tmp_path / "bad.toml"
        bad.write_text(
            '[[template]]\nname = "oops"\nsql = "SELECT * FROM nosuchtable WHERE x BETWEEN %(lo)s AND %(hi)s"\n'
            'range = { column = "orders.o_orderkey", width = [0.1, 0.2] }\n'
            'access = [{ table = "orders", index = "orders_pkey", where = "o_orderkey > %(lo)s" }]\n'
        )
        r = run("load", "--scale", "0.005", "--templates", str(bad))
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
        assert "template 'oops'" in r.stderr and "nosuchtable" in r.stderr
        r = run("status")  # the failed load was rolled back: the previous workload is intact
        assert r.returncode == 0 and "order_revenue" in r.stdout, r.stderr
        r = run("status", "--dsn", f"host=127.0.0.1 port={free_port()} dbname=lab user=postgres")
        assert r.returncode == 2 and "cannot connect" in r.stderr and "Traceback" not in r.stderr
    finally:
        r = run("down")
        if base.exists():  # the CLI failed: clean up directly
            Cluster.load(base).destroy()
    assert r.returncode == 0, r.stderr
    assert not base.exists()
    r = run("status")
    assert r.returncode == 2 and "lab sched pg up" in r.stderr


def test_failed_start_leaves_nothing_behind():
    with pg_tmpdir() as d:
        base = d / "broken"
        with pytest.raises(LabError, match="did not start"):
            create_cluster(
                base, shared_buffers="1kB"
            )  # below PostgreSQL's minimum: the server refuses to start
        assert not base.exists()


def test_user_dsn_reset_evicts_without_restart(cluster, workload):
    """On a --dsn server we cannot restart: reset pushes the workload's pages out with a filler table."""
    meta, tmap, domains, tables, cache = workload
    from lab_learnsched.pg.templates import sample_instances

    insts = sample_instances(list(tmap.values()), domains, 3, 5)
    with PgExecutor(Target(cluster.dsn), list(tables.names)) as ex:
        started = ex.conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
        for inst in insts:
            ex.run(tmap[inst.template], inst)
        assert any(r for r in ex.snapshot().relation if r)  # our pages are cached now
        info = ex.reset()
        assert info["method"] == "evict" and not info["os_cache_dropped"]
        assert not any(r for r in ex.snapshot().relation if r)
        assert ex.conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == started  # no restart


def test_destroy_removes_only_what_it_made():
    with pg_tmpdir() as d:
        base = d / "mine"
        base.mkdir()
        (base / "keep.txt").write_text("a user's file")
        c = create_cluster(base, shared_buffers="1MB")
        assert c.is_running() and (base / "cluster.json").is_file()
        with pytest.raises(LabError, match="already exists"):
            create_cluster(base)
        c.destroy()
        assert not c.data_dir.exists() and not (base / "cluster.json").exists()
        assert (base / "keep.txt").read_text() == "a user's file"
