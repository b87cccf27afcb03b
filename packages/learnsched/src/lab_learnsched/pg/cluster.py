"""A throwaway PostgreSQL cluster in a private folder: initdb, start, restart (cold caches), stop, remove.

Who can get in: only the user who made the cluster. The folder (`--dir`) is created private (0700; 0711 as
root, so that the `postgres` user the server runs as can pass through it), every parent must be owned by
root or us and closed to other writers. The server listens on a Unix socket inside the folder (socket
folder 0700) and on no TCP address (`listen_addresses = ''`); pg_hba.conf allows `local ... peer` with a map
that lets only the owner's OS user (root or the invoking user) log in as the database superuser. TCP on
127.0.0.1 only when asked (`--tcp`), with scram-sha-256 and a random password kept in the folder's 0600
`pgpass` file. No `trust` line anywhere.

Nothing is read back from a file to decide what to run or delete: paths derive from `--dir`, the PostgreSQL
binaries are found with `find_pg_bin` and checked (root-owned or ours, not writable by others, `--version`
says PostgreSQL). `cluster.json` only records the port, pool size and whether TCP is on. The server is
started with an argument list (no shell: pg_ctl start would run a shell command holding the data folder's
path); configuration files are written from Python.

Settings chosen for measurement, not durability: fsync off, autovacuum off (it would read pages behind our
back), no parallel workers, no JIT, pg_stat_statements preloaded.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab_shared.errors import LabError
from lab_shared.tools import find_pg_bin

STATE_FILE = "cluster.json"
MARKER = ".lab-pg-cluster"  # written first by `up`: `down` removes only folders that carry it
PASSFILE = "pgpass"
LOG_FILE = "server.log"
PG_OS_USER = "postgres"
DB_USER = "postgres"
DB_NAME = "lab"
DEFAULT_PORT = 5432  # socket only: the port just names the socket file inside our private folder
SOCKET_MAX = 107  # sun_path is 108 bytes with its NUL; the socket file is <dir>/socket/.s.PGSQL.<port>
_children: list[subprocess.Popen] = []  # server launchers we started (reaped when they exit)


def default_dir() -> Path:
    """$LAB_PG_DIR; else, as root, /var/lib/lab/pg (a root-owned chain `postgres` can pass through);
    else $XDG_CACHE_HOME/lab/pg or ~/.cache/lab/pg. Never a fixed name in a shared folder such as /tmp."""
    env = os.environ.get("LAB_PG_DIR")
    if env:
        return Path(env)
    if is_root():
        return Path("/var/lib/lab/pg")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "lab" / "pg"


def is_root() -> bool:
    return os.geteuid() == 0


# --- folders and binaries we trust -----------------------------------------------------------------------
def _mode(st: os.stat_result) -> str:
    return oct(stat.S_IMODE(st.st_mode))[2:].rjust(4, "0")


def check_parents(path: Path, for_server: bool) -> None:
    """Every folder above `path` must be owned by root or us and not writable by others (unless sticky,
    like /tmp); as root (`for_server`), `postgres` must be able to pass through each one."""
    me = os.geteuid()
    for p in path.parents:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue  # made by us, with the right mode (see _make_parents)
        except OSError as e:
            raise LabError(f"cannot check {p}: {e.strerror}") from None
        sticky = bool(st.st_mode & stat.S_ISVTX)
        if st.st_uid not in (0, me):
            raise LabError(
                f"refusing --dir {path}: parent folder {p} belongs to another user (uid {st.st_uid})"
            )
        if st.st_mode & 0o022 and not sticky:
            raise LabError(
                f"refusing --dir {path}: parent folder {p} is writable by others (mode {_mode(st)})"
            )
        if for_server and not st.st_mode & 0o001:
            raise LabError(
                f"the '{PG_OS_USER}' user cannot reach {path}: {p} is mode {_mode(st)} (as root the server "
                f"runs as '{PG_OS_USER}', which must pass through every parent): pick --dir elsewhere, "
                "e.g. under /var/lib or /srv"
            )


def check_base(base: Path) -> bool:
    """An existing --dir must be a real folder of ours (not a symlink, not another user's). True if it exists."""
    try:
        st = os.lstat(base)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise LabError(f"cannot use --dir {base}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise LabError(f"refusing --dir {base}: it is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise LabError(f"refusing --dir {base}: not a folder")
    if st.st_uid != os.geteuid():
        raise LabError(f"refusing --dir {base}: it belongs to another user (uid {st.st_uid})")
    return True


def check_dir_text(base: Path) -> None:
    """Paths go into postgresql.conf, a DSN and a socket address: no control characters or commas, bounded length."""
    s = str(base)
    if any(ord(c) < 32 or ord(c) == 127 for c in s):
        raise LabError(f"refusing --dir {s!r}: it contains control characters")
    if "," in s:  # libpq reads a comma in host= as a list of hosts
        raise LabError(f"refusing --dir {s!r}: PostgreSQL clients cannot use a socket folder with a comma")
    if len(s) + len("/socket/.s.PGSQL.65535") > SOCKET_MAX:
        raise LabError(
            f"--dir {s} is too long for a Unix socket path (at most ~{SOCKET_MAX - 23} characters)"
        )


@functools.lru_cache(maxsize=4)
def _checked_bin_dir(bin_dir: Path, root: bool) -> Path:
    owners = (0,) if root else (0, os.geteuid())
    for p in (bin_dir, *(bin_dir / n for n in ("initdb", "pg_ctl", "postgres"))):
        try:
            st = os.stat(p)
        except OSError as e:
            raise LabError(f"PostgreSQL binary {p}: {e.strerror}") from None
        if st.st_uid not in owners or st.st_mode & 0o022:
            raise LabError(f"refusing PostgreSQL binary {p}: owned by uid {st.st_uid}, mode {_mode(st)}")
        if p != bin_dir and not (stat.S_ISREG(st.st_mode) and st.st_mode & 0o111):
            raise LabError(f"refusing PostgreSQL binary {p}: not an executable file")
    try:
        r = subprocess.run(
            [str(bin_dir / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=10, cwd="/"
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"cannot run {bin_dir / 'pg_ctl'}: {e}") from None
    if r.returncode != 0 or "(PostgreSQL)" not in r.stdout:
        raise LabError(f"{bin_dir / 'pg_ctl'} is not PostgreSQL's pg_ctl: {r.stdout.strip()[:80]!r}")
    return bin_dir


def trusted_bin_dir() -> Path:
    """find_pg_bin's folder, checked: initdb, pg_ctl and postgres are regular executables owned by root (or
    by us when not root), not writable by group or others, in a folder likewise; pg_ctl says PostgreSQL."""
    return _checked_bin_dir(find_pg_bin().resolve(), is_root())


def _server_user() -> pwd.struct_passwd:
    """The OS user the server runs as: `postgres` when we are root (initdb refuses root), else us."""
    if not is_root():
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(PG_OS_USER)
    except KeyError:
        raise LabError(
            f"running as root needs the '{PG_OS_USER}' system user (initdb refuses root): "
            f"`useradd -r {PG_OS_USER}`, run as another user, or pass --dsn"
        ) from None


def _owner_name() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _ident_token(name: str) -> str:
    """An OS user name as one pg_ident.conf token (quoted, so it is never read as a regex or keyword)."""
    if any(c in name for c in '"\n\r'):
        raise LabError(f"cannot write a peer map for the user name {name!r}")
    return f'"{name}"'


# --- the cluster -----------------------------------------------------------------------------------------
@dataclass
class Cluster:
    """A cluster this project started in `base_dir` (= --dir): everything else derives from it."""

    base_dir: Path
    port: int = DEFAULT_PORT
    shared_buffers: str = "4MB"
    tcp: bool = False
    dbname: str = DB_NAME
    user: str = DB_USER

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "socket"

    @property
    def log_file(self) -> Path:
        return self.base_dir / LOG_FILE

    @property
    def passfile(self) -> Path:
        return self.base_dir / PASSFILE

    @property
    def dsn(self) -> str:
        """Over the Unix socket (peer authentication): what this project's commands use."""
        return _conninfo(host=str(self.socket_dir), port=self.port, dbname=self.dbname, user=self.user)

    def admin_dsn(self) -> str:
        """The always-present `postgres` database (to create ours)."""
        return _conninfo(host=str(self.socket_dir), port=self.port, dbname="postgres", user=self.user)

    @property
    def tcp_dsn(self) -> str | None:
        """Over 127.0.0.1 with the password in the 0600 passfile (the DSN itself holds no secret)."""
        if not self.tcp:
            return None
        return _conninfo(host="127.0.0.1", port=self.port, dbname=self.dbname, user=self.user,
                         passfile=str(self.passfile))  # fmt: skip

    # --- state file -------------------------------------------------------------------------------------
    def save(self) -> None:
        """cluster.json (0600): settings only, never a path or a secret."""
        d = {"port": self.port, "shared_buffers": self.shared_buffers, "tcp": self.tcp}
        tmp = self.base_dir / f".{STATE_FILE}.{secrets.token_hex(4)}.tmp"
        try:
            _write_private(tmp, json.dumps(d, indent=2) + "\n")
            os.replace(tmp, self.base_dir / STATE_FILE)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, base_dir: Path) -> Cluster:
        """The cluster in `base_dir`: only port, pool size and TCP flag are read from its cluster.json."""
        base = Path(base_dir).absolute()
        if not check_base(base) or not (base / MARKER).is_file() or not (base / STATE_FILE).is_file():
            raise LabError(
                f"no cluster in {base}: run `lab sched pg up` first (or pass --dsn / set LAB_PG_DSN)"
            )
        path = base / STATE_FILE
        try:
            d = json.loads(path.read_text())
            port, sb, tcp = d["port"], d.get("shared_buffers", "4MB"), d.get("tcp", False)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise LabError(f"corrupt cluster description {path}: {e}") from None
        if not (
            isinstance(port, int) and 1 <= port <= 65535 and isinstance(sb, str) and isinstance(tcp, bool)
        ):
            raise LabError(f"corrupt cluster description {path}: bad port/shared_buffers/tcp")
        if not sb.replace(".", "").isalnum():
            raise LabError(f"corrupt cluster description {path}: bad shared_buffers {sb!r}")
        return cls(base_dir=base, port=port, shared_buffers=sb, tcp=tcp)

    # --- server control ---------------------------------------------------------------------------------
    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        r = _run_as_server(
            [str(trusted_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "status"], check=False
        )
        return r.returncode == 0

    def start(self, timeout: float = 60.0) -> None:
        """Start the server (argument list, no shell) and wait until it accepts connections."""
        if self.tcp:
            check_port_free(self.port)
        user = _server_user()
        postgres = str(trusted_bin_dir() / "postgres")
        log = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            proc = subprocess.Popen(
                [postgres, "-D", str(self.data_dir)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                env=_server_env(), start_new_session=True, **_as_user(user),
            )  # fmt: skip
        except OSError as e:
            raise LabError(f"PostgreSQL did not start: {e}") from None
        finally:
            os.close(log)
        _children.append(proc)
        t0 = time.monotonic()
        while True:
            if _pid_status(self.data_dir, proc.pid) == "ready":
                return
            if proc.poll() is not None:
                break
            if time.monotonic() - t0 > timeout:
                proc.terminate()
                break
            time.sleep(0.02)
        last = _last_log_line(self.log_file)
        if "Address already in use" in last:
            raise LabError(f"port {self.port} on 127.0.0.1 is in use: pick another --port (0 = a free one)")
        raise LabError(f"PostgreSQL did not start (port {self.port}): {last}")

    def stop(self) -> None:
        """Stop the server (fast shutdown); a no-op when it is not running."""
        if self.is_running():
            _run_as_server(
                [
                    str(trusted_bin_dir() / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ]
            )
        for p in list(_children):  # reap the launchers of servers that have exited
            if p.poll() is not None:
                _children.remove(p)

    def restart(self, drop_os_cache: bool = False) -> bool:
        """Cold restart: empty shared buffers; with `drop_os_cache` (root only) also drop the machine's OS
        page cache. Returns whether the OS cache was dropped."""
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
        """Stop the server and remove what `up` made inside `base_dir` (nothing else), then `base_dir` if empty."""
        base = self.base_dir
        if not check_base(base) or not (base / MARKER).is_file():
            raise LabError(f"no cluster of ours in {base}: nothing removed")
        try:
            self.stop()
        finally:
            for name in ("data", "socket"):
                _remove_tree(base / name)
            for name in (STATE_FILE, PASSFILE, LOG_FILE, MARKER):
                (base / name).unlink(missing_ok=True)
            try:
                base.rmdir()  # only when empty: never a user's files
            except OSError:
                pass


# --- creation --------------------------------------------------------------------------------------------
def create_cluster(
    base_dir: Path, shared_buffers: str = "4MB", port: int | None = None, tcp: bool = False
) -> Cluster:
    """initdb a new cluster in `base_dir/data`, lock it down, configure it for measurement and start it."""
    base = Path(base_dir).absolute()
    check_dir_text(base)
    exists = check_base(base)
    if exists and ((base / MARKER).exists() or (base / STATE_FILE).exists()):
        raise LabError(f"a cluster already exists in {base}: `lab sched pg down` it first or pick --dir")
    for name in ("data", "socket"):
        if os.path.lexists(base / name):
            raise LabError(f"{base / name} already exists and is not a cluster of ours: pick another --dir")
    bin_dir = trusted_bin_dir()
    user = _server_user()
    if tcp:
        port = port or free_port()
        check_port_free(port)
    check_parents(base, for_server=is_root())
    if not exists:
        _make_parents(base)
    if not exists:
        os.mkdir(base, 0o700)
    os.chmod(base, 0o711 if is_root() else 0o700)
    cluster = Cluster(base_dir=base, port=port or DEFAULT_PORT, shared_buffers=shared_buffers, tcp=tcp)
    _write_private(base / MARKER, "made by `lab sched pg up`; `lab sched pg down` removes this cluster\n")
    try:
        for d in (cluster.data_dir, cluster.socket_dir):
            os.mkdir(d, 0o700)
            os.chmod(d, 0o700)
            if is_root():
                os.chown(d, user.pw_uid, user.pw_gid)
        pw_file = None
        if tcp:  # the password reaches initdb through a 0600 file of the server's, removed right after
            pw_file = cluster.socket_dir / ".initpw"
            password = secrets.token_urlsafe(24)
            _write_server_file(pw_file, password + "\n", user, append=False)
            _write_private(cluster.passfile, f"127.0.0.1:{cluster.port}:*:{DB_USER}:{password}\n")
        r = _run_as_server(
            [
                str(bin_dir / "initdb"), "-D", str(cluster.data_dir), "-U", DB_USER, "--auth-local=peer",
                "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
                *(["--pwfile", str(pw_file)] if pw_file else []),
            ],
            check=False,
        )  # fmt: skip
        if pw_file:
            pw_file.unlink(missing_ok=True)
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise LabError(f"initdb failed in {cluster.data_dir}: {msg[-1] if msg else r.returncode}")
        _write_settings(cluster, user)
        cluster.start()
        _create_database(cluster)
        cluster.save()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


def _make_parents(base: Path) -> None:
    """Create missing parents of --dir: 0755 as root (so `postgres` passes), else 0700."""
    missing = [p for p in base.parents if not p.exists()][::-1]
    for p in missing:
        os.mkdir(p, 0o755 if is_root() else 0o700)


def conf_string(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _write_settings(cluster: Cluster, user: pwd.struct_passwd) -> None:
    sock = '"' + str(cluster.socket_dir).replace('"', '""') + '"'  # one list element, commas and all
    settings = {
        "listen_addresses": conf_string("127.0.0.1" if cluster.tcp else ""),
        "port": str(cluster.port),
        "unix_socket_directories": conf_string(sock),
        "unix_socket_permissions": "0700",
        "password_encryption": "'scram-sha-256'",
        "shared_buffers": conf_string(cluster.shared_buffers),
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
        "log_statement": "'none'",
    }
    text = "\n# lab sched pg: a throwaway measurement cluster\n" + "".join(
        f"{k} = {v}\n" for k, v in settings.items()
    )
    _write_server_file(cluster.data_dir / "postgresql.conf", text, user, append=True)
    hba = "# lab sched pg: the cluster's owner over the Unix socket; nobody else. No trust lines.\n"
    hba += "local all all peer map=lab\n"
    if cluster.tcp:
        hba += "host all all 127.0.0.1/32 scram-sha-256\n"
    _write_server_file(cluster.data_dir / "pg_hba.conf", hba, user, append=False)
    _write_server_file(
        cluster.data_dir / "pg_ident.conf",
        f"# lab sched pg: only the cluster's owner may log in as {DB_USER}\nlab {_ident_token(_owner_name())} {DB_USER}\n",
        user,
        append=False,
    )


def _write_server_file(path: Path, text: str, user: pwd.struct_passwd, append: bool) -> None:
    """Write a file in the server's folder from Python (no shell, no symlinks followed), owned by the server."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        raise LabError(f"cannot write {path}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LabError(f"cannot write {path}: not a regular file")
        if is_root():
            os.fchown(fd, user.pw_uid, user.pw_gid)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _write_private(path: Path, text: str) -> None:
    """A new 0600 file of ours (passfile, marker, cluster.json's temp file), synced to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_database(cluster: Cluster) -> None:
    import psycopg

    try:
        with psycopg.connect(cluster.admin_dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    except psycopg.Error as e:
        raise LabError(f"could not create database {DB_NAME}: {str(e).strip().splitlines()[0]}") from None


# --- helpers ---------------------------------------------------------------------------------------------
def _conninfo(**kw) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**{k: str(v) for k, v in kw.items()}, connect_timeout="5")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port_free(port: int) -> None:
    """'Port in use' as one clear line, before the server tries."""
    if not 1 <= port <= 65535:
        raise LabError(f"--port must be in 1..65535 (0 = a free one), got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise LabError(
                f"port {port} on 127.0.0.1 is in use: pick another --port (0 = a free one)"
            ) from None


def _server_env() -> dict[str, str]:
    """A clean environment for server programs (no PGDATA/PGHOST of ours leaking in)."""
    return {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C"}


def _as_user(user: pwd.struct_passwd) -> dict:
    """subprocess arguments that run a program as `user` (as root: no runuser, no shell)."""
    if not is_root():
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _run_as_server(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a server program (initdb, pg_ctl status/stop) as the server's user, argument list only."""
    name = Path(cmd[0]).name
    try:
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd="/",
            env=_server_env(),
            timeout=120,
            **_as_user(_server_user()),
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"{name} failed: {e}") from None
    if check and r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise LabError(f"{name} failed: {msg[-1] if msg else f'exit {r.returncode}'}")
    return r


def _pid_status(data_dir: Path, pid: int) -> str | None:
    """The status PostgreSQL writes into postmaster.pid ('starting', 'ready', ...) when the file is that of
    server `pid` (not a stale one), else None."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if not lines or lines[0].strip() != str(pid):
        return None
    return lines[7].strip() if len(lines) > 7 else None


def _remove_tree(path: Path) -> None:
    """Remove a folder we made; a symlink in its place is unlinked, never followed (rmtree is fd-based)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        assert shutil.rmtree.avoids_symlink_attacks
        shutil.rmtree(path, ignore_errors=True)


def _last_log_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    return lines[-1] if lines else "no log output"


def drop_os_page_cache() -> bool:
    """As root, flush and drop the OS page cache OF THE WHOLE MACHINE. True if done."""
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
