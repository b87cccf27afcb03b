"""Tables, queries, workload files, episode generation and the trace format.

Contract (the PostgreSQL backend builds on it):

- `Tables`: ordered table name -> number of pages. Every page has a *global id*: the table's offset plus its
  block number, so one flat array can describe a buffer pool over all tables.
- `Query`: a template name and, per table, the block ids it reads in access order (`blocks`), plus the
  same as global page ids (`pages`, tables in the order of `blocks`) and an arrival time.
- `Workload`: tables + weighted query templates + arrival process (+ an optional drift point where the
  template mix changes). `Workload.generate(seed)` gives one episode (a list of queries, arrival order).
  `workload_sources.load_workload(spec)` reads a built-in name (`default`, `drift`, `small`), a generated
  family, a TOML/JSON workload file or a trace file.
- Trace format (JSON): `{"format": "learnsched-trace/1", "tables": {name: pages},
  "queries": [{"template": str, "arrival": float, "blocks": {table: [block, ...]}}]}`.
  `save_trace` / `load_trace` write and read it; a trace replays as a workload (episodes are seeded
  windows of consecutive queries).

Workload file (TOML; JSON with the same structure also works)::

    [workload]
    name = "default"
    queries = 32            # queries per episode
    arrival = "batch"       # batch (all at t=0) | poisson | bursty
    rate = 0.05             # poisson/bursty: arrivals per time unit (one disk read = 1 time unit)
    burst = 4.0             # bursty: mean queries per burst (a burst arrives at one instant)
    buffer_pages = 800      # suggested pool size (CLI options override)
    queue_size = 8          # suggested queue window
    [tables]
    orders = 1200
    [templates.recent_orders]
    weight = 2.0
    parts = [{table = "orders", kind = "range", pages = [40, 80], region = [0.8, 1.0]}]
    [drift]                 # optional: from query `at` on, templates get these weights (others 0)
    at = 16
    weights = {recent_orders = 0.0, other = 1.0}

Part kinds: `range` (contiguous blocks, start uniform so that the range lies in `region`, a fraction span of
the table), `index` (`pages` distinct random blocks of the region, in block order: a bitmap index scan),
`scan` (every block of the region, default the whole table). A template with several parts is a join: the
union of its parts' blocks, read part by part.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab_shared.errors import LabError
from lab_shared.io import atomic_write_text

TRACE_FORMAT = "learnsched-trace/1"
PART_KINDS = ("range", "index", "scan")
ARRIVALS = ("batch", "poisson", "bursty")
# sizes the simulator can hold in memory and finish: a typo like queries = 100000000 is an error, not a hang
MAX_PAGES = 100_000_000  # pages over all tables
MAX_QUERIES = 100_000  # queries per episode
MAX_QUEUE = 4096  # queue window


@dataclass(frozen=True)
class Tables:
    """Ordered tables with page counts; global page id = offset[table] + block."""

    names: tuple[str, ...]
    pages: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise LabError("workload has no tables")
        if len(set(self.names)) != len(self.names):
            raise LabError(f"duplicate table names: {list(self.names)}")
        for n, p in zip(self.names, self.pages):
            if not isinstance(p, int) or isinstance(p, bool) or p <= 0:
                raise LabError(f"table '{n}': page count must be a positive integer, got {p!r}")

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> Tables:
        return cls(tuple(d), tuple(d.values()))

    def to_dict(self) -> dict[str, int]:
        return dict(zip(self.names, self.pages))

    @property
    def offsets(self) -> dict[str, int]:
        out, off = {}, 0
        for n, p in zip(self.names, self.pages):
            out[n] = off
            off += p
        return out

    @property
    def n_pages(self) -> int:
        return int(sum(self.pages))

    def size(self, name: str) -> int:
        try:
            return self.pages[self.names.index(name)]
        except ValueError:
            raise LabError(f"unknown table '{name}' (known: {', '.join(self.names)})") from None

    def table_of_page(self) -> np.ndarray:
        """Table index of every global page (int32, length n_pages)."""
        return np.repeat(np.arange(len(self.names), dtype=np.int32), self.pages)


@dataclass
class Query:
    """One query: template name, per-table block ids in access order, global page ids, arrival time."""

    qid: int
    template: str
    blocks: dict[str, np.ndarray]
    pages: np.ndarray
    arrival: float = 0.0

    @property
    def size(self) -> int:
        return int(self.pages.shape[0])


def make_query(
    tables: Tables,
    template: str,
    blocks: dict[str, list[int] | np.ndarray],
    qid: int = 0,
    arrival: float = 0.0,
) -> Query:
    """Build a Query, checking every block id against its table and computing global page ids."""
    offs = tables.offsets
    per_table: dict[str, np.ndarray] = {}
    glob = []
    for t, b in blocks.items():
        if t not in offs:
            raise LabError(f"query {qid} ({template}): unknown table '{t}'")
        arr = np.asarray(b, dtype=np.int64).reshape(-1)
        n = tables.size(t)
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise LabError(f"query {qid} ({template}): block ids of '{t}' must lie in [0, {n})")
        per_table[t] = arr
        glob.append(arr + offs[t])
    pages = np.concatenate(glob) if glob else np.zeros(0, dtype=np.int64)
    if pages.size == 0:
        raise LabError(f"query {qid} ({template}) reads no blocks")
    return Query(qid, template, per_table, pages.astype(np.int64), float(arrival))


@dataclass(frozen=True)
class Part:
    """One table access of a template."""

    table: str
    kind: str = "range"
    pages: tuple[int, int] = (1, 1)
    region: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class Template:
    name: str
    weight: float
    parts: tuple[Part, ...]

    @property
    def kind(self) -> str:
        """index range scan / full scan / join (several parts)."""
        return "join" if len(self.parts) > 1 else self.parts[0].kind


@dataclass
class Workload:
    """A workload: tables, templates, arrivals, optional drift, suggested pool/queue sizes."""

    name: str
    tables: Tables
    templates: dict[str, Template]
    queries: int = 32
    arrival: str = "batch"
    rate: float = 0.05
    burst: float = 4.0  # bursty arrivals: mean burst size
    buffer_pages: int = 0
    queue_size: int = 8
    drift_at: int | None = None
    drift_weights: dict[str, float] = field(default_factory=dict)
    trace: list[Query] | None = None  # set for trace-backed workloads

    # -- generation ---------------------------------------------------------------------------------
    def _sample_part(self, part: Part, rng: np.random.Generator) -> np.ndarray:
        n = self.tables.size(part.table)
        lo = int(math.floor(part.region[0] * n))
        hi = max(lo + 1, int(math.ceil(part.region[1] * n)))
        span = hi - lo
        if part.kind == "scan":
            return np.arange(lo, hi, dtype=np.int64)
        k = int(rng.integers(part.pages[0], part.pages[1] + 1))
        k = max(1, min(k, span))
        if part.kind == "range":
            start = lo + int(rng.integers(0, span - k + 1))
            return np.arange(start, start + k, dtype=np.int64)
        # index: k distinct random blocks of the region, read in block order (bitmap heap scan)
        return np.sort(rng.choice(span, size=k, replace=False).astype(np.int64) + lo)

    def sample_query(self, template: Template, rng: np.random.Generator, qid: int, arrival: float) -> Query:
        blocks: dict[str, np.ndarray] = {}
        for part in template.parts:
            b = self._sample_part(part, rng)
            if part.table in blocks:  # a join reading one table twice: union, first access order kept
                prev = blocks[part.table]
                b = np.concatenate([prev, b[~np.isin(b, prev)]])
            blocks[part.table] = b
        # blocks lie in their tables by construction: no need for make_query's checks
        offs = self._offsets()
        pages = np.concatenate([b + offs[t] for t, b in blocks.items()])
        q = Query(qid, template.name, blocks, pages, float(arrival))
        q.__dict__["_upages"] = pages  # distinct by construction (features.unique_pages)
        return q

    def _offsets(self) -> dict[str, int]:
        o = self.__dict__.get("_offs")
        if o is None or o[0] is not self.tables:
            o = self.__dict__["_offs"] = (self.tables, self.tables.offsets)
        return o[1]

    def _weights(self, after_drift: bool) -> tuple[list[Template], np.ndarray]:
        temps = list(self.templates.values())
        if after_drift:
            w = np.array([self.drift_weights.get(t.name, 0.0) for t in temps], dtype=float)
        else:
            w = np.array([t.weight for t in temps], dtype=float)
        return temps, w / w.sum()

    def generate(self, seed: int | np.random.Generator, n: int | None = None) -> list[Query]:
        """One episode: `n` (default `self.queries`) queries in arrival order, deterministic in `seed`."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        n = self.queries if n is None else n
        if n <= 0:
            raise LabError("an episode needs at least one query (queries must be > 0)")
        if self.trace is not None:
            return self._trace_window(rng, n)
        t, out = 0.0, []
        before = self._weights(False)
        after = self._weights(True) if self.drift_at is not None else before
        for i in range(n):
            temps, w = after if (self.drift_at is not None and i >= self.drift_at) else before
            if self.arrival == "poisson" and i > 0:
                t += float(rng.exponential(1.0 / self.rate))
            elif self.arrival == "bursty" and i > 0 and rng.random() < 1.0 / self.burst:
                t += float(rng.exponential(self.burst / self.rate))  # same mean rate, in bursts
            tpl = temps[int(rng.choice(len(temps), p=w))]
            out.append(self.sample_query(tpl, rng, i, t))
        return out

    def _trace_window(self, rng: np.random.Generator, n: int) -> list[Query]:
        tr = self.trace or []
        n = min(n, len(tr))
        start = int(rng.integers(0, len(tr) - n + 1))
        t0 = tr[start].arrival
        return [
            Query(i, q.template, q.blocks, q.pages, q.arrival - t0)
            for i, q in enumerate(tr[start : start + n])
        ]

    def with_updates(self, **kw) -> Workload:
        """A copy with some fields replaced (e.g. queries=8 for small exact-optimum batches)."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d.update(kw)
        return Workload(**d)


# -- parsing -----------------------------------------------------------------------------------------


def _pair(v, name: str, kind: type) -> tuple:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v, v]
    if not (isinstance(v, (list, tuple)) and len(v) == 2):
        raise LabError(f"{name}: expected a pair [lo, hi], got {v!r}")
    try:
        a, b = kind(v[0]), kind(v[1])
    except (TypeError, ValueError):
        raise LabError(f"{name}: expected numbers, got {v!r}") from None
    if a > b:
        raise LabError(f"{name}: lo > hi in {v!r}")
    return a, b


def _check_keys(d: dict, allowed: set[str], where: str) -> None:
    extra = set(d) - allowed
    if extra:
        raise LabError(f"{where}: unknown key(s) {sorted(extra)} (allowed: {sorted(allowed)})")


def workload_from_dict(d: dict, name: str = "workload") -> Workload:
    """Validate a parsed workload file and build the Workload (every error: one LabError line)."""
    if not isinstance(d, dict):
        raise LabError(f"{name}: top level must be a table/object")
    _check_keys(d, {"workload", "tables", "templates", "drift"}, name)
    w = d.get("workload", {})
    if not isinstance(w, dict):
        raise LabError(f"{name}: [workload] must be a table")
    _check_keys(
        w, {"name", "queries", "arrival", "rate", "burst", "buffer_pages", "queue_size"}, f"{name} [workload]"
    )
    tables_d = d.get("tables")
    if not isinstance(tables_d, dict) or not tables_d:
        raise LabError(f"{name}: needs a non-empty [tables] section (name = pages)")
    for t, p in tables_d.items():
        if not isinstance(p, int) or isinstance(p, bool) or p <= 0:
            raise LabError(f"{name}: table '{t}' must have a positive integer page count, got {p!r}")
    tables = Tables.from_dict(tables_d)
    if tables.n_pages > MAX_PAGES:
        raise LabError(f"{name}: {tables.n_pages} pages in all; at most {MAX_PAGES} are supported")
    temps_d = d.get("templates")
    if not isinstance(temps_d, dict) or not temps_d:
        raise LabError(f"{name}: needs at least one [templates.NAME] section")
    templates: dict[str, Template] = {}
    for tn, td in temps_d.items():
        where = f"{name} template '{tn}'"
        if not isinstance(td, dict):
            raise LabError(f"{where}: must be a table")
        _check_keys(td, {"weight", "parts"}, where)
        weight = td.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise LabError(f"{where}: weight must be a number >= 0, got {weight!r}")
        parts_d = td.get("parts")
        if not isinstance(parts_d, list) or not parts_d:
            raise LabError(f"{where}: needs a non-empty list 'parts'")
        parts = []
        for i, pd in enumerate(parts_d):
            pw = f"{where} part {i}"
            if not isinstance(pd, dict):
                raise LabError(f"{pw}: must be a table")
            _check_keys(pd, {"table", "kind", "pages", "region"}, pw)
            tab = pd.get("table")
            if tab not in tables.names:
                raise LabError(f"{pw}: unknown table {tab!r} (known: {', '.join(tables.names)})")
            kind = pd.get("kind", "range")
            if kind not in PART_KINDS:
                raise LabError(f"{pw}: kind must be one of {PART_KINDS}, got {kind!r}")
            pages = _pair(pd.get("pages", 1), f"{pw} pages", int)
            if pages[1] > MAX_PAGES:
                raise LabError(f"{pw}: pages must be at most {MAX_PAGES}, got {list(pages)}")
            if pages[0] <= 0 and kind != "scan":
                raise LabError(f"{pw}: pages must be positive, got {list(pages)}")
            region = _pair(pd.get("region", [0.0, 1.0]), f"{pw} region", float)
            if not (0 <= region[0] < region[1] <= 1):  # also rejects nan
                raise LabError(f"{pw}: region must satisfy 0 <= lo < hi <= 1, got {list(region)}")
            span = math.ceil(region[1] * tables.size(tab)) - math.floor(region[0] * tables.size(tab))
            if kind != "scan" and pages[0] > span:
                raise LabError(f"{pw}: at least {pages[0]} pages asked but the region has {span}")
            parts.append(Part(tab, kind, pages, region))
        templates[tn] = Template(tn, float(weight), tuple(parts))
    if sum(t.weight for t in templates.values()) <= 0:
        raise LabError(f"{name}: template weights sum to 0")
    arrival = w.get("arrival", "batch")
    if arrival not in ARRIVALS:
        raise LabError(f"{name}: arrival must be one of {ARRIVALS}, got {arrival!r}")
    ints = {}
    limits = (("queries", 32, 1, MAX_QUERIES), ("buffer_pages", 0, 0, MAX_PAGES), ("queue_size", 8, 1, MAX_QUEUE))  # fmt: skip
    for key, default, lo, hi in limits:
        v = w.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise LabError(f"{name}: workload.{key} must be an integer in [{lo}, {hi}], got {v!r}")
        ints[key] = v
    rate = w.get("rate", 0.05)
    if not isinstance(rate, (int, float)) or not 0 < rate < math.inf:
        raise LabError(f"{name}: workload.rate must be > 0, got {rate!r}")
    burst = w.get("burst", 4.0)
    if not isinstance(burst, (int, float)) or isinstance(burst, bool) or not 1.0 <= burst < 1e6:
        raise LabError(f"{name}: workload.burst must be a number >= 1, got {burst!r}")
    drift_at, drift_w = None, {}
    if "drift" in d:
        dd = d["drift"]
        if not isinstance(dd, dict):
            raise LabError(f"{name}: [drift] must be a table")
        _check_keys(dd, {"at", "weights"}, f"{name} [drift]")
        drift_at = dd.get("at")
        if not isinstance(drift_at, int) or drift_at < 0:
            raise LabError(f"{name}: drift.at must be an integer >= 0 (query index), got {drift_at!r}")
        drift_w = dd.get("weights", {})
        if not isinstance(drift_w, dict):
            raise LabError(f"{name}: drift.weights must be a table name -> weight")
        for tn, v in drift_w.items():
            if tn not in templates:
                raise LabError(f"{name}: drift.weights names unknown template '{tn}'")
            if not isinstance(v, (int, float)) or not 0 <= v < math.inf:
                raise LabError(f"{name}: drift weight of '{tn}' must be >= 0, got {v!r}")
        if sum(drift_w.values()) <= 0:
            raise LabError(f"{name}: drift.weights sum to 0")
    return Workload(
        name=str(w.get("name", name)),
        tables=tables,
        templates=templates,
        queries=ints["queries"],
        arrival=arrival,
        rate=float(rate),
        burst=float(burst),
        buffer_pages=ints["buffer_pages"],
        queue_size=ints["queue_size"],
        drift_at=drift_at,
        drift_weights={k: float(v) for k, v in drift_w.items()},
    )


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """JSON object hook: a key defined twice is an error (TOML rejects it by itself)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise LabError(f"'{k}' is defined twice")
        out[k] = v
    return out


def parse_workload_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise LabError(f"cannot read workload file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise LabError(f"{path}: not a UTF-8 text file") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if path.suffix.lower() == ".json":
            return json.loads(text, object_pairs_hook=_no_duplicates)
    except tomllib.TOMLDecodeError as e:
        raise LabError(f"{path}: bad TOML syntax: {e}") from None
    except json.JSONDecodeError as e:
        raise LabError(f"{path}: bad JSON syntax: {e}") from None
    except LabError as e:
        raise LabError(f"{path}: {e}") from None
    raise LabError(f"{path}: workload files must end in .toml or .json")


# -- traces ------------------------------------------------------------------------------------------


def trace_to_dict(tables: Tables, queries: list[Query]) -> dict:
    return {
        "format": TRACE_FORMAT,
        "tables": tables.to_dict(),
        "queries": [
            {
                "template": q.template,
                "arrival": q.arrival,
                "blocks": {t: b.tolist() for t, b in q.blocks.items()},
            }
            for q in queries
        ],
    }


def trace_from_dict(d: dict, name: str = "trace") -> tuple[Tables, list[Query]]:
    if not isinstance(d, dict) or d.get("format") != TRACE_FORMAT:
        raise LabError(f'{name}: not a trace (expected "format": "{TRACE_FORMAT}")')
    tabs = d.get("tables")
    if not isinstance(tabs, dict) or not tabs:
        raise LabError(f"{name}: trace needs a non-empty 'tables' object")
    for t, p in tabs.items():
        if not isinstance(p, int) or isinstance(p, bool) or p <= 0:
            raise LabError(f"{name}: table '{t}' must have a positive integer page count, got {p!r}")
    tables = Tables.from_dict(tabs)
    if tables.n_pages > MAX_PAGES:
        raise LabError(f"{name}: {tables.n_pages} pages in all; at most {MAX_PAGES} are supported")
    qs = d.get("queries")
    if not isinstance(qs, list) or not qs:
        raise LabError(f"{name}: trace has no queries")
    out = []
    for i, qd in enumerate(qs):
        if not isinstance(qd, dict) or not isinstance(qd.get("blocks"), dict):
            raise LabError(f"{name}: query {i} needs a 'blocks' object (table -> list of block ids)")
        tpl, arr = qd.get("template", "trace"), qd.get("arrival", 0.0)
        if not isinstance(tpl, str) or not isinstance(arr, int | float) or not math.isfinite(arr):
            raise LabError(f"{name}: query {i}: template must be a string and arrival a finite number")
        if not all(isinstance(b, list) and all(type(x) is int for x in b) for b in qd["blocks"].values()):
            raise LabError(f"{name}: query {i}: blocks must be lists of integers")
        try:
            out.append(
                make_query(
                    tables, str(qd.get("template", "trace")), qd["blocks"], i, float(qd.get("arrival", 0.0))
                )
            )
        except (TypeError, ValueError):
            raise LabError(f"{name}: query {i}: blocks must be lists of integers") from None
    return tables, out


def save_trace(path: str | Path, tables: Tables, queries: list[Query]) -> Path:
    """Write queries as a JSON trace (atomic)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(trace_to_dict(tables, queries)))
    return path


def load_trace(path: str | Path) -> tuple[Tables, list[Query]]:
    path = Path(path)
    return trace_from_dict(parse_workload_file(path), str(path))


def trace_workload(
    tables: Tables, queries: list[Query], name: str = "trace", episode: int = 32, queue_size: int = 8
) -> Workload:
    """A workload that replays windows of a recorded trace."""
    tpl = Template("trace", 1.0, (Part(tables.names[0]),))
    return Workload(
        name,
        tables,
        {"trace": tpl},
        queries=min(episode, len(queries)),
        queue_size=queue_size,
        trace=list(queries),
    )
