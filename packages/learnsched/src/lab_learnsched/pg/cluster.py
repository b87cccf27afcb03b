"""A throwaway PostgreSQL cluster: initdb, start, restart (cold caches), stop, remove.

initdb refuses to run as root, so when we are root every server command runs as the `postgres` system user
(`runuser -u postgres`) and the cluster's folder is handed to that user. The server listens on 127.0.0.1
only (trust authentication on loopback: it is a disposable, local cluster) and on a Unix socket inside its
own folder. Settings chosen for measurement, not durability: fsync off, autovacuum off (it would read pages
behind our back), no parallel workers, no JIT, pg_stat_statements preloaded.

The cluster's description lives in `<dir>/cluster.json` so that `lab sched pg load/bench/down` find it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab_shared.errors import LabError
from lab_shared.io import atomic_write_json
from lab_shared.tools import find_pg_bin

STATE_FILE = "cluster.json"
PG_OS_USER = "postgres"
DB_USER = "postgres"
DB_NAME = "lab"


def default_dir() -> Path:
    """Where `lab sched pg up` puts its cluster: $LAB_PG_DIR, else <tmp>/lab-pg (reachable by `postgres`)."""
    env = os.environ.get("LAB_PG_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "lab-pg"


@dataclass
class Cluster:
    """A cluster this project started: where it lives and how to reach it."""

    base_dir: Path
    port: int
    shared_buffers: str = "4MB"
    bin_dir: Path | None = None
    host: str = "127.0.0.1"
    dbname: str = DB_NAME
    user: str = DB_USER

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} dbname={self.dbname} user={self.user} connect_timeout=5"

    def admin_dsn(self) -> str:
        """The always-present `postgres` database (to create ours)."""
        return f"host={self.host} port={self.port} dbname=postgres user={self.user} connect_timeout=5"

    # --- state file -------------------------------------------------------------------------------------
    def save(self) -> None:
        d = asdict(self)
        d["base_dir"], d["bin_dir"] = str(self.base_dir), str(self.bin_dir) if self.bin_dir else None
        atomic_write_json(self.base_dir / STATE_FILE, d)

    @classmethod
    def load(cls, base_dir: Path) -> Cluster:
        path = Path(base_dir) / STATE_FILE
        if not path.is_file():
            raise LabError(
                f"no cluster in {base_dir}: run `lab sched pg up` first (or pass --dsn / set LAB_PG_DSN)"
            )
        try:
            d = json.loads(path.read_text())
            d["base_dir"] = Path(d["base_dir"])
            d["bin_dir"] = Path(d["bin_dir"]) if d.get("bin_dir") else None
            return cls(**d)
        except (ValueError, KeyError, TypeError) as e:
            raise LabError(f"corrupt cluster description {path}: {e}") from None

    # --- server control ---------------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return str((self.bin_dir or find_pg_bin()) / name)

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        r = _run_as_pg([self._bin("pg_ctl"), "-D", str(self.data_dir), "status"], check=False)
        return r.returncode == 0

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        r = _run_as_pg(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=False,
        )
        if r.returncode != 0:
            raise LabError(f"PostgreSQL did not start (port {self.port}): {_last_log_line(self.log_file, r)}")

    def stop(self) -> None:
        """Stop the server (fast shutdown); a no-op when it is not running."""
        if self.is_running():
            _run_as_pg(
                [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"]
            )

    def restart(self, drop_os_cache: bool = True) -> bool:
        """Cold restart: empty shared buffers; as root also drop the OS page cache. Returns whether it did."""
        self.stop()
        dropped = drop_os_page_cache() if drop_os_cache else False
        self.start()
        return dropped

    def set_shared_buffers(self, value: str) -> None:
        """Change the pool size (ALTER SYSTEM + restart); PostgreSQL validates the value."""
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(value)))
        except psycopg.Error as e:
            raise LabError(f"shared_buffers {value!r}: {str(e).strip().splitlines()[0]}") from None
        self.shared_buffers = value
        self.restart(drop_os_cache=False)
        self.save()

    def destroy(self) -> None:
        """Stop the server and remove what we made: the data folder, the description, `base_dir` if empty."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            (self.base_dir / STATE_FILE).unlink(missing_ok=True)
            try:
                self.base_dir.rmdir()  # only when empty: never a user's files
            except OSError:
                pass


# --- creation --------------------------------------------------------------------------------------------
def create_cluster(
    base_dir: Path, shared_buffers: str = "4MB", port: int | None = None, bin_dir: Path | None = None
) -> Cluster:
    """initdb a new cluster in `base_dir/data`, configure it for measurement and start it."""
    base_dir = Path(base_dir).absolute()
    if (base_dir / STATE_FILE).exists():
        raise LabError(f"a cluster already exists in {base_dir}: `lab sched pg down` it first or pick --dir")
    if (base_dir / "data").exists():
        raise LabError(f"{base_dir / 'data'} already exists and is not a cluster of ours: pick another --dir")
    bin_dir = Path(bin_dir) if bin_dir else find_pg_bin()
    _check_pg_user()
    base_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(
        base_dir=base_dir, port=port or free_port(), shared_buffers=shared_buffers, bin_dir=bin_dir
    )
    try:
        cluster.data_dir.mkdir(mode=0o700)
        _hand_over(cluster.data_dir)
        r = _run_as_pg(
            [
                str(bin_dir / "initdb"), "-D", str(cluster.data_dir), "-U", DB_USER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
            ],
            check=False,
        )  # fmt: skip
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise LabError(f"initdb failed in {cluster.data_dir}: {msg[-1] if msg else r.returncode}")
        _write_settings(cluster)
        cluster.start()
        _create_database(cluster)
        cluster.save()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


def _write_settings(cluster: Cluster) -> None:
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(cluster.port),
        "unix_socket_directories": f"'{cluster.data_dir}'",
        "shared_buffers": f"'{cluster.shared_buffers}'",
        "shared_preload_libraries": "'pg_stat_statements'",
        "max_connections": "20",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "autovacuum": "off",
        "max_parallel_workers_per_gather": "0",
        "jit": "off",
        "track_io_timing": "on",
        "log_min_messages": "warning",
    }
    text = "\n# lab sched pg: a throwaway measurement cluster\n" + "".join(
        f"{k} = {v}\n" for k, v in settings.items()
    )
    conf = cluster.data_dir / "postgresql.conf"
    _run_as_pg(["sh", "-c", f"cat >> '{conf}'"], input_text=text)


def _create_database(cluster: Cluster) -> None:
    import psycopg

    try:
        with psycopg.connect(cluster.admin_dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    except psycopg.Error as e:
        raise LabError(f"could not create database {DB_NAME}: {str(e).strip().splitlines()[0]}") from None


# --- helpers ---------------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_root() -> bool:
    return os.geteuid() == 0


def _check_pg_user() -> None:
    if not is_root():
        return
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        raise LabError(
            "running as root needs the 'postgres' system user (initdb refuses root): "
            "`useradd -r postgres`, run as another user, or pass --dsn"
        ) from None
    if shutil.which("runuser") is None:
        raise LabError("running as root needs `runuser` (util-linux) to start PostgreSQL as 'postgres'")


def _hand_over(path: Path) -> None:
    """As root, give the (new, empty) data folder to the postgres user and check that user can reach it."""
    if not is_root():
        return
    pw = pwd.getpwnam(PG_OS_USER)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    r = subprocess.run(["runuser", "-u", PG_OS_USER, "--", "test", "-w", str(path)], capture_output=True)
    if r.returncode != 0:
        raise LabError(
            f"the 'postgres' user cannot write {path} (a parent folder is closed to it): pick --dir under /tmp"
        )


def _run_as_pg(
    cmd: list[str], check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a server command, as `postgres` when we are root."""
    name = Path(cmd[0]).name
    if is_root():
        cmd = ["runuser", "-u", PG_OS_USER, "--", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, input=input_text, cwd="/")
    if check and r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise LabError(f"{name} failed: {msg[-1] if msg else f'exit {r.returncode}'}")
    return r


def _last_log_line(log: Path, r: subprocess.CompletedProcess[str]) -> str:
    lines: list[str] = []
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        pass
    lines = lines or (r.stderr or r.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {r.returncode}"


def drop_os_page_cache() -> bool:
    """As root, flush and drop the OS page cache so PostgreSQL's reads really go to disk. True if done."""
    if not is_root():
        return False
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def wait_ready(dsn: str, timeout: float = 10.0) -> None:
    """Poll until the server accepts connections (after a restart)."""
    import psycopg

    t0 = time.monotonic()
    while True:
        try:
            with psycopg.connect(dsn, autocommit=True):
                return
        except psycopg.OperationalError:
            if time.monotonic() - t0 > timeout:
                raise
            time.sleep(0.05)
