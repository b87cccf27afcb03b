"""Unit tests of the PostgreSQL side that need no server: templates, data generation, the pool bridge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lab_learnsched.bufferpool import BufferPool
from lab_learnsched.pg import bridge
from lab_learnsched.pg.conn import redact, resolve
from lab_learnsched.pg.execute import Snapshot
from lab_learnsched.pg.load import generate
from lab_learnsched.pg.probe import IndexMap
from lab_learnsched.pg.templates import Domain, load_templates, parse_templates, sample_instances
from lab_learnsched.workload import Tables, make_query
from lab_shared.errors import LabError


def _tpl(**over) -> dict:
    t = {
        "name": "t1",
        "sql": "SELECT count(*) FROM lineitem WHERE l_orderkey BETWEEN %(lo)s AND %(hi)s",
        "range": {"column": "orders.o_orderkey", "width": [0.1, 0.2], "region": [0.0, 1.0]},
        "access": [
            {"table": "lineitem", "index": "lineitem_pkey", "where": "l_orderkey BETWEEN %(lo)s AND %(hi)s"}
        ],
    }
    t.update(over)
    return {"template": [t]}


def test_bundled_templates_parse_and_use_bound_parameters():
    temps = load_templates()
    assert len(temps) >= 4
    for t in temps:
        assert "%(lo)s" in t.sql and "%(hi)s" in t.sql  # values are bound by psycopg, never pasted
        assert t.access


@pytest.mark.parametrize(
    "over, msg",
    [
        ({"sql": "SELECT 1"}, "uses no parameter"),
        ({"sql": "SELECT %(x)s"}, "unknown parameter"),
        ({"sql": "SELECT '%' || %(lo)s || %(hi)s"}, "bare '%'"),
        ({"name": "Bad Name"}, "identifier"),
        ({"range": {"column": "nodot", "width": [0.1, 0.2]}}, "table.column"),
        ({"range": {"column": "a.b", "width": [0.5, 0.2]}}, "range.width"),
        ({"access": []}, "needs 'access'"),
        ({"bogus": 1}, "unknown key"),
    ],
)
def test_template_errors_are_one_clear_line(over, msg):
    with pytest.raises(LabError, match=msg) as e:
        parse_templates(_tpl(**over), "f.toml")
    assert "\n" not in str(e.value) and "f.toml" in str(e.value)


def test_template_file_errors(tmp_path):
    with pytest.raises(LabError, match="not found"):
        load_templates(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[template]\nname=")
    with pytest.raises(LabError, match="not valid TOML"):
        load_templates(bad)


def test_instances_are_seeded_and_inside_region():
    temps = parse_templates(_tpl(range={"column": "o.k", "width": [0.1, 0.1], "region": [0.5, 1.0]}))
    dom = {"o.k": Domain(1, 1001, False)}
    a = sample_instances(temps, dom, 50, 7)
    b = sample_instances(temps, dom, 50, 7)
    assert [i.params for i in a] == [i.params for i in b]
    for i in a:
        assert 501 <= i.params["lo"] and i.params["hi"] <= 1001 and i.params["hi"] - i.params["lo"] == 100


def test_generate_is_deterministic_and_ordered():
    a, b = generate(0.002, 3), generate(0.002, 3)
    assert a == b
    rows = [r.split("\t") for r in a["lineitem"].splitlines()]
    keys = [int(r[0]) for r in rows]
    assert keys == sorted(keys)  # lineitem stored in order-key order
    orders = [r.split("\t") for r in a["orders"].splitlines()]
    dates = [r[4] for r in orders]
    assert dates == sorted(dates)  # order keys handed out in date order
    assert generate(0.002, 4)["lineitem"] != a["lineitem"]


def test_index_map_leaves_and_path():
    m = IndexMap(
        "i",
        np.array([10, 20, 30, 40]),
        np.array([5, 5, 3, 7]),
        {5: 0, 3: 1, 7: 2},
        {5: 1, 3: 1, 7: 1, 1: 9},
        9,
    )
    assert m.leaves_of(np.array([40, 10, 30])).tolist() == [5, 3, 7]  # chain order, not block order
    assert m.path_to(3) == [9, 1]
    with pytest.raises(LabError, match="no entry"):
        m.leaves_of(np.array([11]))


def _snapshot(rels, blocks, usage, n=8) -> Snapshot:
    r = list(rels) + [None] * (n - len(rels))
    b = np.array(list(blocks) + [-1] * (n - len(blocks)))
    u = np.array(list(usage) + [0] * (n - len(usage)))
    return Snapshot(n, r, b, u)


def test_pool_from_snapshot_matches_an_accessed_pool():
    tables = Tables(("t", "t_idx"), (10, 4))
    # what a clock pool looks like after reading t:0,1 then t_idx:2 then t:0 again (usage 2)
    ref = BufferPool(tables.n_pages, 6, "clock")
    ref.access(np.array([0, 1, 12, 0]))
    snap = _snapshot(["t", "t", "t_idx", ""], [0, 1, 2, -1], [2, 1, 1, 3], n=8)
    pool = bridge.pool_from_snapshot(tables, snap, "clock", cap=6)
    assert pool.resident.tolist() == ref.resident.tolist()
    assert pool.usage[:3].tolist() == ref.usage[:3].tolist()
    q = make_query(tables, "x", {"t": [0, 5, 6, 7, 8, 9], "t_idx": [2, 3]})
    assert pool.copy().access(q.pages) == ref.copy().access(q.pages)
    # the exact layout keeps the other relation's buffer as a pseudo-page and the full pool size
    ex = bridge.exact_layout_pool(tables, snap)
    assert ex.capacity == 8 and ex.resident[tables.n_pages + 3] == 1 and ex.used == 4
    assert bridge.capacity(snap) == 7


def test_make_tables_orders_heaps_then_indexes():
    temps = load_templates()
    pages = {r: 10 for t in temps for a in t.access for r in (a.table, a.index)}
    tables = bridge.make_tables(temps, pages)
    heaps = {a.table for t in temps for a in t.access}
    assert set(tables.names[: len(heaps)]) == heaps


def test_resolve_without_database_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_PG_DSN", raising=False)
    with pytest.raises(LabError, match="lab sched pg up"):
        resolve(None, tmp_path)
    assert "secret" not in redact("host=x password=secret user=u")
    assert "secret" not in redact("postgresql://u:secret@h/db")


# --- issue 14: SELECT only, secrets redacted, paths from --dir only (no server needed) -------------------
READ_ONLY_OK = [
    "SELECT count(*) FROM t WHERE a BETWEEN %(lo)s AND %(hi)s",
    "WITH x AS (SELECT * FROM t) SELECT a FROM x UNION ALL SELECT b FROM u WHERE b > %(lo)s",
    "SELECT extract(year FROM d), '50%%' FROM t WHERE d < %(hi)s",
]
WRITES = {
    "DELETE FROM part WHERE p_partkey > %(lo)s": "only SELECT is allowed, got DELETE",
    "UPDATE t SET a = %(lo)s": "got UPDATE",
    "INSERT INTO t VALUES (%(lo)s)": "got INSERT",
    "CREATE TABLE x AS SELECT %(lo)s": "got CREATE",
    "DROP TABLE t": "got DROP",
    "COPY (SELECT 1) TO PROGRAM 'id'": "got COPY",
    "SELECT 1; DELETE FROM t": "exactly one statement",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d": "data-modifying DELETE",
    "SELECT * FROM t WHERE EXISTS (WITH u AS (UPDATE t SET a = 1 RETURNING 1) SELECT 1 FROM u)": "UPDATE",
    "SELECT * INTO x FROM t": "SELECT INTO",
    "SELECT * FROM (SELECT * FROM t FOR SHARE) s": "FOR UPDATE/SHARE",
    "SELECT pg_catalog.set_config('role', 'x', true)": "set_config",
    "SELECT query_to_xml('COPY (SELECT 1) TO PROGRAM ''id''', true, true, '')": "query_to_xml",
    "SELECT lo_export(1, '/tmp/x')": "lo_export",
    "SELECT pg_read_file('/etc/passwd')": "pg_read_file",
    "SELEC 1": "not valid SQL",
}


@pytest.mark.parametrize("sql", READ_ONLY_OK)
def test_read_only_selects_pass(sql):
    from lab_learnsched.pg.sqlcheck import check_select

    check_select(sql, "q")


@pytest.mark.parametrize("sql", sorted(WRITES))
def test_anything_but_a_read_only_select_is_one_line(sql):
    from lab_learnsched.pg.sqlcheck import check_select

    with pytest.raises(LabError, match=WRITES[sql]) as e:
        check_select(sql, "template 'x'")
    assert "\n" not in str(e.value) and str(e.value).startswith("template 'x'")


def test_templates_from_files_and_storage_are_checked():
    from lab_learnsched.pg.templates import Template, templates_from_stored

    with pytest.raises(LabError, match="only SELECT"):
        parse_templates(_tpl(sql="DELETE FROM lineitem WHERE l_orderkey BETWEEN %(lo)s AND %(hi)s"))
    acc = [
        {"table": "lineitem", "index": "lineitem_pkey", "where": "1=1) OR (l_orderkey > %(lo)s; DROP TABLE x"}
    ]
    with pytest.raises(LabError, match="access on lineitem"):
        parse_templates(_tpl(access=acc))
    good = load_templates()
    assert [t.name for t in templates_from_stored([t.to_dict() for t in good])] == [t.name for t in good]
    bad = {**good[0].to_dict(), "sql": "UPDATE lineitem SET l_tax = 0 WHERE l_orderkey < %(lo)s + %(hi)s"}
    with pytest.raises(LabError, match="only SELECT"):
        Template.from_dict(bad)
    with pytest.raises(LabError, match="lacks keys"):
        templates_from_stored([{"name": "x"}])


def test_redaction_hides_passwords_in_every_form():
    from lab_learnsched.pg.conn import redact_config

    for dsn in (
        "host=x password=s3cr3t user=u",
        "host=x password='s3 cr3t' user=u",
        "postgresql://u:s3cr3t@h/db",
        "postgresql://u@h/db?password=s3cr3t&sslmode=disable",
        "not a dsn password=s3cr3t '",
    ):
        assert "s3cr3t" not in redact(dsn) and "cr3t" not in redact(dsn), dsn
    assert redact("host=x user=u") == "host=x user=u"
    d = redact_config(
        {"dsn": "host=x password=s3cr3t", "nested": {"url": "postgresql://u:s3cr3t@h/db"}, "n": 3}
    )
    assert "s3cr3t" not in str(d) and d["n"] == 3


def test_dir_text_and_default_dir(monkeypatch, tmp_path):
    from lab_learnsched.pg.cluster import check_dir_text, conf_string, default_dir

    for bad, msg in (("/tmp/a\nb", "control"), ("/tmp/a,b", "comma"), ("/" + "x" * 120, "too long")):
        with pytest.raises(LabError, match=msg):
            check_dir_text(Path(bad))
    check_dir_text(Path("/tmp/x';$(id)`id`\" \\"))
    assert conf_string("a'b\\c") == "'a''b\\\\c'"
    monkeypatch.delenv("LAB_PG_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    d = default_dir()
    assert not str(d).startswith("/tmp/lab-pg") and (
        d == Path("/var/lib/lab/pg") or d == tmp_path / "lab" / "pg"
    )


def test_cluster_json_cannot_point_elsewhere(tmp_path):
    import json

    from lab_learnsched.pg.cluster import MARKER, STATE_FILE, Cluster

    base = tmp_path / "c"
    base.mkdir()
    with pytest.raises(LabError, match="no cluster in"):  # a description alone is not a cluster of ours
        (base / STATE_FILE).write_text(json.dumps({"port": 5432}))
        Cluster.load(base)
    (base / MARKER).write_text("")
    planted = {
        "base_dir": "/etc",
        "bin_dir": "/tmp/evil",
        "port": 5433,
        "shared_buffers": "2MB",
        "tcp": False,
    }
    (base / STATE_FILE).write_text(json.dumps(planted))
    c = Cluster.load(base)
    assert c.base_dir == base and c.data_dir == base / "data" and c.port == 5433 and not hasattr(c, "bin_dir")
    for bad in ({"port": "5432; rm -rf /"}, {"port": 5432, "shared_buffers": "1MB' x"}, [1]):
        (base / STATE_FILE).write_text(json.dumps(bad))
        with pytest.raises(LabError, match="corrupt cluster description"):
            Cluster.load(base)
    link = tmp_path / "link"
    link.symlink_to(base)
    with pytest.raises(LabError, match="symbolic link"):
        Cluster.load(link)


def test_in_flight_is_summed_query_time_over_stream_time():
    from lab_learnsched.pg.bench import EpisodeRun, _summary, in_flight
    from lab_learnsched.pg.execute import QueryRun

    def ep(walls: list[float], stream_ms: float) -> EpisodeRun:
        runs = [QueryRun(i, "t", 1, 2, 0, 0, w, w) for i, w in enumerate(walls)]
        z = np.zeros(len(walls), np.int64)
        snap = _snapshot(["a"], [0], [1])
        return EpisodeRun("fifo", list(range(len(walls))), runs, z, z, z, 0.0, {}, snap, None, stream_ms)

    serial = ep([10.0, 20.0, 30.0], 80.0)  # one client: the scheduler's 20 ms between queries count
    four = ep([100.0, 100.0, 100.0, 100.0], 125.0)  # four queries overlapping: 3.2 at once on average
    assert in_flight([serial]) == pytest.approx(0.75)
    assert in_flight([four]) == pytest.approx(3.2)
    assert in_flight([serial, four]) == pytest.approx((0.75 + 3.2) / 2)
    assert in_flight([ep([5.0], 0.0)]) == 0.0  # an episode recorded before stream times existed
    row = _summary("fifo", [serial, four])
    assert row["in_flight"] == pytest.approx(1.975) and row["stream_s"] == pytest.approx(0.1025)
