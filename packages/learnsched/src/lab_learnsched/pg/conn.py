"""Finding and opening the database: --dsn, $LAB_PG_DSN, or the cluster `lab sched pg up` started.

Every psycopg failure a user can cause (server down, connection refused, wrong password, no rights,
missing extension, SQL error in a template) is turned into one LabError line here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab_learnsched.pg.cluster import Cluster, default_dir
from lab_shared.errors import LabError
from lab_shared.provenance import redact as redact_text

if TYPE_CHECKING:
    import psycopg

SCHEMA = "lab_sched"  # our tables live here: a --dsn database's own tables are never touched
REQUIRED_EXTENSIONS = ("pg_buffercache", "pageinspect")
OPTIONAL_EXTENSIONS = ("pg_stat_statements",)


@dataclass
class Target:
    """The database to work on: its DSN and, when this project started it, the cluster (for restarts)."""

    dsn: str
    cluster: Cluster | None = None

    @property
    def label(self) -> str:
        return (
            f"cluster {self.cluster.base_dir} (port {self.cluster.port})"
            if self.cluster
            else redact(self.dsn)
        )


def resolve(dsn: str | None = None, pg_dir: Path | None = None) -> Target:
    """--dsn, then $LAB_PG_DSN, then the cluster in `pg_dir` (default: see cluster.default_dir).

    A DSN's password may come from PGPASSWORD or a passfile (libpq reads both), so it need not be in the DSN;
    wherever it is, it is only ever written to disk redacted."""
    dsn = dsn or os.environ.get("LAB_PG_DSN") or None
    if dsn:
        return Target(dsn)
    base = Path(pg_dir) if pg_dir else default_dir()
    cluster = Cluster.load(base)  # one clear line when there is none (or --dir is refused)
    if not cluster.is_running():
        raise LabError(
            f"the cluster in {base} is not running: `lab sched pg up --dir {base}` starts it again"
        )
    return Target(cluster.dsn, cluster)


SECRET_KEYS = ("password", "sslpassword")


def redact(dsn: str) -> str:
    """A DSN safe to print or write (passwords hidden), for key=value and URI forms alike."""
    if not dsn:
        return dsn
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        d = conninfo_to_dict(dsn)
        if not any(k in d for k in SECRET_KEYS):
            return dsn
        return make_conninfo(**{k: ("***" if k in SECRET_KEYS else v) for k, v in d.items()})
    except Exception:  # unparsable: hide anything that looks like a secret
        return redact_text(dsn)


def redact_config(d: dict) -> dict:
    """A config dict with every DSN-like string redacted (for config.json, pg_config.json, results)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = redact_config(v)
        elif isinstance(v, str) and ("dsn" in k.lower() or "password" in v.lower() or "://" in v):
            out[k] = redact(v)
        else:
            out[k] = v
    return out


def first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def connect(dsn: str, autocommit: bool = True) -> psycopg.Connection:
    """Open a connection or raise one clear LabError (unreachable, refused, authentication, no database)."""
    import psycopg

    if "connect_timeout" not in dsn and "://" not in dsn:
        dsn = f"{dsn} connect_timeout=5"
    try:
        return psycopg.connect(dsn, autocommit=autocommit, options=f"-c search_path={SCHEMA},public")
    except psycopg.Error as e:
        raise LabError(f"cannot connect to PostgreSQL ({redact(dsn)}): {first_line(e)}") from None
    except Exception as e:  # e.g. a malformed DSN string
        raise LabError(f"bad DSN {redact(dsn)!r}: {first_line(e)}") from None


def ensure_extensions(
    conn: psycopg.Connection, required=REQUIRED_EXTENSIONS, optional=OPTIONAL_EXTENSIONS
) -> list[str]:
    """CREATE EXTENSION IF NOT EXISTS for each; a missing required one is a LabError. Returns those present."""
    import psycopg

    present = []
    for ext in (*required, *optional):
        try:
            conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
            present.append(ext)
        except psycopg.errors.InsufficientPrivilege as e:
            if ext in required:
                raise LabError(
                    f"no right to create extension {ext}: {first_line(e)} (use a superuser DSN)"
                ) from None
        except psycopg.Error as e:
            if ext in required:
                raise LabError(
                    f"extension {ext} is missing: {first_line(e)} (install PostgreSQL's contrib modules)"
                ) from None
    return present


def sql_error(what: str, e: BaseException) -> LabError:
    """A LabError naming what failed (a template, a load step) and PostgreSQL's first message line."""
    import psycopg

    if isinstance(e, psycopg.errors.InsufficientPrivilege):
        return LabError(f"{what}: permission denied for the DSN's user: {first_line(e)}")
    return LabError(f"{what}: {first_line(e)}")
