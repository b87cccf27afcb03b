"""Real PostgreSQL, as a hostile local user would try it (issue 14): who can get in, what a planted file or
a strange --dir can make us do, what a template can write, where passwords end up.

One TCP-enabled cluster per module, in a folder whose name is full of quotes and shell metacharacters.
The second-user tests need root (they act as `nobody` through runuser) and skip with that reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lab_learnsched.pg.cluster import create_cluster, trusted_bin_dir
from lab_learnsched.pg.conn import connect
from lab_learnsched.pg.execute import PgExecutor
from lab_learnsched.pg.load import load_dataset, read_meta
from lab_learnsched.pg.templates import Access, Instance, Template, load_templates
from lab_shared.errors import LabError

pytestmark = pytest.mark.postgres

# quotes, a command substitution, backticks, a backslash, spaces: none of it may run or break anything
EVIL = "x';touch Pa;'\"$(touch Pb) `touch Pc`\\"
PWN = [Path(d) / f"P{c}" for d in ("/", tempfile.gettempdir(), os.getcwd()) for c in "abc"]
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not ROOT, reason="acting as a second local user needs root (runuser -u nobody)"
)


def _bin() -> Path:
    try:
        return trusted_bin_dir()
    except LabError as e:
        pytest.skip(f"PostgreSQL server binaries not usable: {e}")


@pytest.fixture(scope="module")
def parent():
    _bin()
    d = Path(tempfile.mkdtemp(prefix="lab-pg-sec-"))
    os.chmod(d, 0o755)  # the `postgres` user passes through it when we are root
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(parent):
    c = create_cluster(parent / EVIL, shared_buffers="2MB", tcp=True)
    try:
        with connect(c.dsn) as conn:
            load_dataset(conn, 0.005, 0, load_templates())
        yield c
    finally:
        c.destroy()
    assert not (parent / EVIL).exists()


def _lab(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {})}
    e.pop("LAB_PG_DSN", None) if "LAB_PG_DSN" not in (env or {}) else None
    return subprocess.run([sys.executable, "-m", "lab_shared.cli", "sched", "pg", *args], env=e,
                          capture_output=True, text=True, timeout=300, cwd=cwd)  # fmt: skip


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    return r.stderr


def test_private_layout_and_no_injection(cluster):
    base = cluster.base_dir
    assert base.name == EVIL and cluster.is_running()
    assert stat.S_IMODE(base.stat().st_mode) == (0o711 if ROOT else 0o700)
    for d in (cluster.data_dir, cluster.socket_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(cluster.passfile.stat().st_mode) == 0o600
    assert stat.S_IMODE(cluster.log_file.stat().st_mode) == 0o600
    hba = (cluster.data_dir / "pg_hba.conf").read_text()
    assert "trust" not in hba.replace("No trust lines", "") and "peer map=lab" in hba
    assert "scram-sha-256" in hba and "0.0.0.0" not in hba
    state = json.loads((base / "cluster.json").read_text())
    assert set(state) == {"port", "shared_buffers", "tcp"}  # no paths, no password
    with connect(cluster.dsn) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SHOW password_encryption").fetchone()[0] == "scram-sha-256"
    assert not any(p.exists() for p in PWN)


def test_tcp_needs_the_password_even_for_us(cluster):
    with connect(cluster.tcp_dsn) as conn:  # the passfile (0600) holds the random password
        assert conn.execute("SELECT inet_server_addr()::text").fetchone()[0].startswith("127.0.0.1")
    no_pw = f"host=127.0.0.1 port={cluster.port} dbname=lab user=postgres passfile=/nonexistent"
    with pytest.raises(LabError, match="password"):
        connect(no_pw)
    with pytest.raises(LabError, match="password authentication failed"):
        connect(no_pw + " password=guess")


def _as_nobody(*cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return subprocess.run([runuser, "-u", "nobody", "--", *cmd], capture_output=True, text=True, timeout=60,
                          cwd="/", env={"PATH": "/usr/bin:/bin", **(env or {})})  # fmt: skip


@needs_root
def test_another_local_user_cannot_get_in(cluster, tmp_path):
    psql = str(_bin() / "psql")
    marker = Path(tempfile.gettempdir()) / f"lab-pg-sec-copy-{os.getpid()}"
    marker.unlink(missing_ok=True)
    attack = f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'"
    tries = {
        "socket as postgres": f"host='{cluster.socket_dir}' port={cluster.port} dbname=lab user=postgres",
        "socket as nobody": f"host='{cluster.socket_dir}' port={cluster.port} dbname=lab user=nobody",
        "tcp without password": f"host=127.0.0.1 port={cluster.port} dbname=lab user=postgres",
        "tcp with a guess": f"host=127.0.0.1 port={cluster.port} dbname=lab user=postgres password=postgres",
        "tcp via the passfile": f"host=127.0.0.1 port={cluster.port} dbname=lab user=postgres "
        f"passfile='{cluster.passfile}'",
    }
    for what, dsn in tries.items():
        r = _as_nobody(
            psql, "-X", "-w", dsn.replace("'", "") if "passfile" not in what else dsn, "-c", attack
        )
        assert r.returncode != 0, (what, r.stdout, r.stderr)
        assert not marker.exists(), what
    # nor can it read the secrets or the description, or list the folder
    for f in (cluster.passfile, cluster.base_dir / "cluster.json", cluster.log_file):
        assert _as_nobody("cat", str(f)).returncode != 0, f
    assert _as_nobody("ls", str(cluster.base_dir)).returncode != 0
    # the owner (root, mapped to the superuser) still gets in: the map is not simply closed
    with connect(cluster.dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "postgres"


def test_planted_cluster_json_cannot_redirect_delete_or_execute(parent, cluster, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    fake = tmp_path / "fakebin"
    fake.mkdir()
    ran = tmp_path / "fake-ran"
    for name in ("pg_ctl", "initdb", "postgres"):
        (fake / name).write_text(f"#!/bin/sh\ntouch {ran}\n")
        (fake / name).chmod(0o755)
    planted = {"base_dir": str(victim), "bin_dir": str(fake), "port": cluster.port, "shared_buffers": "2MB",
               "tcp": True, "host": "evil", "user": "evil"}  # fmt: skip
    state = cluster.base_dir / "cluster.json"
    saved = state.read_text()
    try:
        state.write_text(json.dumps(planted))
        r = _lab("status", "--dir", str(cluster.base_dir))
        assert r.returncode == 0 and "shared_buffers" in r.stdout, r.stderr
    finally:
        state.write_text(saved)
    # a folder holding only a planted description: nothing to stop, nothing deleted, nothing run
    other = parent / "planted"
    other.mkdir()
    (other / "cluster.json").write_text(json.dumps(planted))
    for cmd in ("status", "down"):
        assert "no cluster in" in _one_line_error(_lab(cmd, "--dir", str(other)))
    assert (other / "cluster.json").is_file() and (victim / "precious.txt").read_text() == "keep me"
    assert not ran.exists()
    # binaries are found, not read from files, and refused when others could have written them
    fake.chmod(0o777)
    r = _lab("up", "--dir", str(parent / "via-env"), env={"LAB_PG_BIN": str(fake)})
    assert "refusing PostgreSQL binary" in _one_line_error(r)
    assert not ran.exists() and not (parent / "via-env").exists()


def test_down_removes_only_its_own_cluster(parent, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    base = parent / "own"
    base.mkdir()
    (base / "mine.txt").write_text("a user's file")
    r = _lab("up", "--dir", str(base), "--shared-buffers", "1MB")
    assert r.returncode == 0, r.stderr
    state = base / "cluster.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "base_dir": str(victim)}))
    r = _lab("down", "--dir", str(base))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in base.iterdir()) == ["mine.txt"]
    assert (victim / "precious.txt").read_text() == "keep me"


def test_refused_dirs(parent, tmp_path):
    real = parent / "real"
    real.mkdir()
    link = parent / "link"
    link.symlink_to(real)
    assert "symbolic link" in _one_line_error(_lab("up", "--dir", str(link)))
    assert "comma" in _one_line_error(_lab("up", "--dir", str(parent / "a,b")))
    if ROOT:
        theirs = parent / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        assert "another user" in _one_line_error(_lab("up", "--dir", str(theirs)))
        assert "another user" in _one_line_error(_lab("down", "--dir", str(theirs)))
        closed = tmp_path / "closed"  # pytest's tmp folders are 0700: `postgres` cannot pass
        os.chmod(tmp_path, 0o700)
        assert "cannot reach" in _one_line_error(_lab("up", "--dir", str(closed)))
        assert not closed.exists()
    assert sorted(p.name for p in real.iterdir()) == []


def test_port_in_use_is_one_line(parent):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _lab("up", "--dir", str(parent / "busy"), "--tcp", "--port", str(port))
        assert f"port {port} on 127.0.0.1 is in use" in _one_line_error(r)
    assert not (parent / "busy").exists()


WRITERS = {
    "delete": "DELETE FROM part WHERE p_partkey BETWEEN %(lo)s AND %(hi)s",
    "update": "UPDATE part SET p_size = 0 WHERE p_partkey BETWEEN %(lo)s AND %(hi)s",
    "insert": "INSERT INTO part (p_partkey) SELECT g FROM generate_series(%(lo)s, %(hi)s) g",
    "ddl": "CREATE TABLE stolen AS SELECT * FROM part WHERE p_partkey BETWEEN %(lo)s AND %(hi)s",
    "cte": "WITH d AS (DELETE FROM part WHERE p_partkey BETWEEN %(lo)s AND %(hi)s RETURNING 1) SELECT count(*) FROM d",
    "into": "SELECT * INTO stolen FROM part WHERE p_partkey BETWEEN %(lo)s AND %(hi)s",
    "lock": "SELECT * FROM part WHERE p_partkey BETWEEN %(lo)s AND %(hi)s FOR UPDATE",
    "program": "SELECT query_to_xml('COPY (SELECT 1) TO PROGRAM ''id''', true, true, '') WHERE %(lo)s < %(hi)s",
}


def _part_rows(cluster) -> int:
    with connect(cluster.dsn) as conn:
        return conn.execute("SELECT count(*) FROM lab_sched.part").fetchone()[0]


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_writing_templates_are_rejected(cluster, tmp_path, kind):
    before = _part_rows(cluster)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f'[[template]]\nname = "evil"\nsql = """{WRITERS[kind]}"""\n'
        'range = { column = "part.p_partkey", width = [0.1, 0.5] }\n'
        'access = [{ table = "part", index = "part_pkey", where = "p_partkey BETWEEN %(lo)s AND %(hi)s" }]\n'
    )
    err = _one_line_error(
        _lab("load", "--dir", str(cluster.base_dir), "--scale", "0.005", "--templates", str(bad))
    )
    assert "template 'evil'" in err and "SELECT" in err
    assert _part_rows(cluster) == before


def test_stored_templates_are_checked_again_and_run_read_only(cluster):
    before = _part_rows(cluster)
    evil = {"name": "evil", "sql": WRITERS["delete"], "column": "part.p_partkey", "width": [0.1, 0.5],
            "region": [0.0, 1.0], "access": [{"table": "part", "index": "part_pkey",
                                              "where": "p_partkey BETWEEN %(lo)s AND %(hi)s"}]}  # fmt: skip
    with connect(cluster.dsn) as conn:
        saved = conn.execute("SELECT value FROM lab_sched.lab_meta WHERE key = 'templates'").fetchone()[0]
        from psycopg.types.json import Jsonb

        conn.execute(
            "UPDATE lab_sched.lab_meta SET value = %s WHERE key = 'templates'", (Jsonb([*saved, evil]),)
        )
        try:
            with pytest.raises(LabError, match="template 'evil': only SELECT"):
                read_meta(conn)
            assert "template 'evil'" in _one_line_error(
                _lab("probe", "--dir", str(cluster.base_dir), "-n", "2")
            )
        finally:
            conn.execute("UPDATE lab_sched.lab_meta SET value = %s WHERE key = 'templates'", (Jsonb(saved),))
    # a Template that skipped every check still cannot write: it runs in a READ ONLY transaction
    t = Template("evil", WRITERS["delete"], "part.p_partkey", (0.1, 0.5), (0.0, 1.0),
                 (Access("part", "part_pkey", "p_partkey BETWEEN %(lo)s AND %(hi)s"),))  # fmt: skip
    from lab_learnsched.pg.conn import Target

    with PgExecutor(Target(cluster.dsn, cluster), ["part"]) as ex:
        with pytest.raises(LabError, match="read-only transaction"):
            ex.run(t, Instance(0, "evil", {"lo": 1, "hi": 10**6}))
    assert _part_rows(cluster) == before


def test_bench_keeps_passwords_out_resumes_and_takes_exact_batches_zero(cluster, tmp_path):
    password = cluster.passfile.read_text().strip().rsplit(":", 1)[1]
    dsn = f"host=127.0.0.1 port={cluster.port} dbname=lab user=postgres password={password}"
    env = {"LAB_RUNS": str(tmp_path / "runs"), "LAB_PG_CACHE": str(tmp_path / "cache"), "LAB_PG_DSN": dsn}
    args = ["bench", "--dsn", dsn, "--episodes", "2", "--queries", "6", "--policies", "fifo,greedy",
            "--set", "learned=false", "--set", "exact_batches=0", "--set", "queue_size=3"]  # fmt: skip
    r = _lab(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    runs = list((tmp_path / "runs" / "sched-bench").iterdir())
    assert len(runs) == 1
    run = runs[0]
    res = json.loads((run / "results.json").read_text())
    assert [row["policy"] for row in res["pg_main"]] == ["fifo", "greedy"] and res["pg_exact"] == []
    assert res["meta"]["os_cache_dropped"] is False  # the machine's page cache is left alone unless asked
    assert "WHOLE machine" in " ".join(_lab("bench", "--help").stdout.split())
    episodes = sorted((run / "episodes").glob("*.json"))
    assert len(episodes) == 4  # 2 episodes x 2 policies
    # resume: nothing is measured again; a lost episode is measured again, alone
    mtimes = {p.name: p.stat().st_mtime_ns for p in episodes}
    episodes[-1].unlink()
    r = _lab("bench", "--resume", str(run), env=env)
    assert r.returncode == 0, r.stderr
    now = {p.name: p.stat().st_mtime_ns for p in sorted((run / "episodes").glob("*.json"))}
    assert set(now) == set(mtimes)
    assert all(now[k] == mtimes[k] for k in list(mtimes)[:-1])
    again = json.loads((run / "results.json").read_text())
    assert [x["reads"] for x in again["pg_main"]][0] == res["pg_main"][0]["reads"]
    # a changed setting on resume is refused
    assert "settings differ" in _one_line_error(
        _lab("bench", "--resume", str(run), "--queries", "7", env=env)
    )
    # the password reached no file of the run folder (nor the probe cache)
    for root in (run, tmp_path / "cache"):
        for f in root.rglob("*"):
            if f.is_file():
                assert password.encode() not in f.read_bytes(), f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["dsn"] == ""
