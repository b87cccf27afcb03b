"""Query templates (SQL with bound parameters) and their instances.

A template file is TOML (see templates.toml beside this module, the default). Each template has `sql`
with %(lo)s / %(hi)s placeholders (psycopg binds them server-side), a `range` saying how an instance draws
`lo`/`hi`, and `access`: the relation accesses of its plan (heap table, btree index, index condition), which
probe.py turns into the blocks the instance reads. Instances are plain (template, params) pairs, drawn with a
seeded numpy generator so that a schedule can be rebuilt from (templates, seed).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab_learnsched.pg.conn import first_line
from lab_learnsched.pg.sqlcheck import check_select, function_names
from lab_shared.errors import LabError

if TYPE_CHECKING:
    import psycopg

IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
PARAMS = ("lo", "hi")


@dataclass(frozen=True)
class Access:
    """One relation access of a plan: heap table, btree index, index condition (uses %(lo)s/%(hi)s)."""

    table: str
    index: str
    where: str


@dataclass(frozen=True)
class Template:
    name: str
    sql: str
    column: str  # "table.column" the range parameters live on
    width: tuple[float, float]  # fraction of the column's span
    region: tuple[float, float]  # fraction of the column's span the range lies in
    access: tuple[Access, ...]
    weight: float = 1.0

    @property
    def range_table(self) -> str:
        return self.column.split(".")[0]

    @property
    def range_column(self) -> str:
        return self.column.split(".")[1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["access"] = [asdict(a) for a in self.access]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Template:
        """A stored template (lab_meta), validated again exactly like one read from a file."""
        return templates_from_stored([d], "stored template")[0]


@dataclass(frozen=True)
class Instance:
    """A query instance: its template and bound parameter values (ints or dates)."""

    qid: int
    template: str
    params: dict[str, Any]

    def key(self) -> str:
        if set(self.params) == {"lo", "hi"}:
            return f"{self.template}({self.params['lo']},{self.params['hi']})"
        return f"{self.template}(" + ",".join(f"{k}={v}" for k, v in self.params.items()) + ")"


# --- parsing ---------------------------------------------------------------------------------------------
def default_templates_text() -> str:
    return resources.files("lab_learnsched.pg").joinpath("templates.toml").read_text()


def load_templates(path: str | Path | None = None) -> list[Template]:
    """Parse and validate a template file (default: the bundled templates.toml)."""
    if path is None:
        text, name = default_templates_text(), "templates.toml"
    else:
        p = Path(path)
        if not p.is_file():
            raise LabError(f"template file not found: {p}")
        text, name = p.read_text(errors="replace"), str(p)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LabError(f"{name}: not valid TOML: {e}") from None
    return parse_templates(data, name)


def _pair(v: Any, where: str, lo: float, hi: float) -> tuple[float, float]:
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
        raise LabError(f"{where}: expected [lo, hi] numbers, got {v!r}")
    a, b = float(v[0]), float(v[1])
    if not (lo <= a <= b <= hi):
        raise LabError(f"{where}: need {lo} <= lo <= hi <= {hi}, got {v!r}")
    return a, b


def _check_params(sql: str, where: str) -> None:
    used = set(re.findall(r"%\((\w+)\)s", sql))
    if not used:
        raise LabError(f"{where}: uses no parameter (write %(lo)s and %(hi)s)")
    unknown = used - set(PARAMS)
    if unknown:
        raise LabError(f"{where}: unknown parameter(s) {sorted(unknown)} (only %(lo)s and %(hi)s)")
    stripped = re.sub(r"%\(\w+\)s", "", sql)
    if re.search(r"%(?!%)", stripped):
        raise LabError(f"{where}: a bare '%' (write '%%' for a literal percent sign)")


def parse_templates(data: dict, name: str = "templates") -> list[Template]:
    items = data.get("template")
    if not isinstance(items, list) or not items:
        raise LabError(f"{name}: needs at least one [[template]] table")
    out: list[Template] = []
    for i, t in enumerate(items):
        tname = t.get("name") if isinstance(t, dict) else None
        where = f"{name}: template '{tname}'" if tname else f"{name}: template #{i + 1}"
        if not isinstance(t, dict):
            raise LabError(f"{where}: must be a table")
        extra = set(t) - {"name", "sql", "range", "access", "weight"}
        if extra:
            raise LabError(f"{where}: unknown key(s) {sorted(extra)}")
        if not isinstance(tname, str) or not IDENT.match(tname):
            raise LabError(f"{where}: 'name' must be a lowercase identifier")
        if tname in {x.name for x in out}:
            raise LabError(f"{where}: duplicate name")
        sql = t.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise LabError(f"{where}: needs 'sql'")
        _check_params(sql, where)
        check_select(sql, where)
        rng = t.get("range")
        if not isinstance(rng, dict) or set(rng) - {"column", "width", "region"}:
            raise LabError(
                f"{where}: 'range' must be {{column = \"table.col\", width = [a, b], region = [a, b]}}"
            )
        col = rng.get("column")
        if not (isinstance(col, str) and col.count(".") == 1 and all(IDENT.match(x) for x in col.split("."))):
            raise LabError(f"{where}: range.column must be 'table.column', got {col!r}")
        width = _pair(rng.get("width"), f"{where} range.width", 0.0, 1.0)
        region = _pair(rng.get("region", [0.0, 1.0]), f"{where} range.region", 0.0, 1.0)
        if region[1] - region[0] < width[1]:
            raise LabError(f"{where}: range.region is narrower than the widest range")
        acc = t.get("access")
        if not isinstance(acc, list) or not acc:
            raise LabError(f"{where}: needs 'access' = [{{table, index, where}}, ...]")
        accesses = []
        for a in acc:
            if not isinstance(a, dict) or set(a) != {"table", "index", "where"}:
                raise LabError(f"{where}: each access needs exactly table, index and where")
            if not (IDENT.match(str(a["table"])) and IDENT.match(str(a["index"]))):
                raise LabError(f"{where}: access table/index must be lowercase identifiers")
            _check_params(str(a["where"]), f"{where} access on {a['table']}")
            check_select(probe_sql(a["table"], str(a["where"])), f"{where} access on {a['table']}")
            accesses.append(Access(a["table"], a["index"], a["where"]))
        weight = t.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or weight <= 0:
            raise LabError(f"{where}: weight must be > 0")
        out.append(Template(tname, sql.strip(), col, width, region, tuple(accesses), float(weight)))
    return out


def probe_sql(table: str, where: str) -> str:
    """The statement probe.py runs for an access (the condition is pasted, so it is checked as a whole)."""
    return f"SELECT ctid FROM {table} WHERE {where}"


def templates_from_stored(items: Any, name: str = "lab_meta") -> list[Template]:
    """Templates read back from the database or a file of dicts (Template.to_dict), re-validated."""
    if not isinstance(items, list):
        raise LabError(f"{name}: templates must be a list")
    conv = []
    for d in items:
        if not isinstance(d, dict) or not {"name", "sql", "column", "width", "region", "access"} <= set(d):
            raise LabError(f"{name}: a stored template lacks keys (run `lab sched pg load` again)")
        extra = {k: d[k] for k in ("weight",) if k in d}
        conv.append({"name": d["name"], "sql": d["sql"], "access": d["access"], **extra,
                     "range": {"column": d["column"], "width": list(d["width"]), "region": list(d["region"])}})  # fmt: skip
    return parse_templates({"template": conv}, name)


def read_only(conn: psycopg.Connection):
    """A READ ONLY transaction that is always rolled back (templates and probes run inside one)."""
    tx = conn.transaction(force_rollback=True)
    return _ReadOnly(conn, tx)


class _ReadOnly:
    def __init__(self, conn, tx):
        self.conn, self.tx = conn, tx

    def __enter__(self):
        self.tx.__enter__()
        self.conn.execute("SET TRANSACTION READ ONLY")
        return self.conn

    def __exit__(self, *exc):
        return self.tx.__exit__(*exc)


def check_functions(conn: psycopg.Connection, t: Template) -> None:
    """Reject a template calling a function the catalog marks volatile (it could change state)."""
    names = set(function_names(t.sql))
    for a in t.access:
        names |= function_names(probe_sql(a.table, a.where))
    if not names:
        return
    rows = conn.execute(
        "SELECT DISTINCT proname FROM pg_proc WHERE proname = ANY(%s) AND provolatile = 'v' AND prokind <> 'a'",
        (sorted(names),),
    ).fetchall()
    if rows:
        raise LabError(
            f"template '{t.name}': calls volatile function {rows[0][0]}() (only read-only SELECTs)"
        )


# --- checking against a database -------------------------------------------------------------------------
@dataclass(frozen=True)
class Domain:
    """The min and max of a range column (ints, or dates as ordinal days)."""

    lo: int
    hi: int
    is_date: bool


def column_domain(conn: psycopg.Connection, column: str) -> Domain:
    from psycopg import sql as psql

    table, col = column.split(".")
    try:
        row = conn.execute(
            psql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
                c=psql.Identifier(col), t=psql.Identifier(table)
            )
        ).fetchone()
    except Exception as e:
        raise LabError(f"range column {column}: {first_line(e)}") from None
    lo, hi = row
    if lo is None:
        raise LabError(f"range column {column}: the table is empty")
    if isinstance(lo, dt.date):
        return Domain(lo.toordinal(), hi.toordinal(), True)
    if not isinstance(lo, int):
        raise LabError(f"range column {column}: must be an integer or date column, not {type(lo).__name__}")
    return Domain(lo, hi, False)


def check_templates(conn: psycopg.Connection, templates: list[Template]) -> dict[str, Domain]:
    """Plan every template (and its probes) once with sample values: a syntax error names the template."""
    import psycopg
    from psycopg import sql as psql

    domains: dict[str, Domain] = {}
    for t in templates:
        if t.column not in domains:
            domains[t.column] = column_domain(conn, t.column)
        params = sample_params(t, domains[t.column], np.random.default_rng(0))
        check_functions(conn, t)
        try:
            with read_only(conn):
                conn.execute("EXPLAIN " + t.sql, params)
        except psycopg.Error as e:
            raise LabError(f"template '{t.name}': {first_line(e)}") from None
        for a in t.access:
            try:
                with read_only(conn):
                    conn.execute(
                        psql.SQL("EXPLAIN SELECT ctid FROM {t} WHERE ").format(t=psql.Identifier(a.table))
                        + psql.SQL(a.where),
                        params,
                    )
            except psycopg.Error as e:
                raise LabError(f"template '{t.name}', access on {a.table}: {first_line(e)}") from None
            kind = conn.execute(
                "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
                "JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = %s AND i.indrelid = %s::regclass",
                (a.index, a.table),
            ).fetchone()
            if kind is None:
                raise LabError(f"template '{t.name}': {a.index} is not an index of {a.table}")
            if kind[0] != "btree":
                raise LabError(f"template '{t.name}': index {a.index} is {kind[0]}, only btree can be probed")
    return domains


# --- instances -------------------------------------------------------------------------------------------
def sample_params(t: Template, dom: Domain, rng: np.random.Generator) -> dict[str, Any]:
    """Draw lo/hi: a width in [width] * span, placed uniformly so that the range lies in [region]."""
    span = dom.hi - dom.lo
    w = max(0, int(round(rng.uniform(*t.width) * span)))
    start_lo = dom.lo + int(math.floor(t.region[0] * span))
    start_hi = max(start_lo, dom.lo + int(math.ceil(t.region[1] * span)) - w)
    lo = int(rng.integers(start_lo, start_hi + 1))
    hi = lo + w
    if dom.is_date:
        return {"lo": dt.date.fromordinal(lo), "hi": dt.date.fromordinal(hi)}
    return {"lo": lo, "hi": hi}


def sample_instances(
    templates: list[Template], domains: dict[str, Domain], n: int, seed: int | np.random.Generator
) -> list[Instance]:
    """`n` instances, templates drawn by weight, deterministic in `seed` (arrival order = list order)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    w = np.array([t.weight for t in templates], dtype=float)
    w /= w.sum()
    out = []
    for i in range(n):
        t = templates[int(rng.choice(len(templates), p=w))]
        out.append(Instance(i, t.name, sample_params(t, domains[t.column], rng)))
    return out


def params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in params.items()}


def params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        out[k] = dt.date.fromisoformat(v) if isinstance(v, str) else v
    return out
