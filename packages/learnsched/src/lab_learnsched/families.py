"""Randomized workload families: one seed -> one concrete workload (tables, templates, arrivals, pool, queue).

A family is a distribution over workloads (`FamilySpec`): how many base and index relations and how big,
which template kinds (hot-set ranges, index lookups, scans, joins, cold ranges) with what skew, which
arrival process (batch, Poisson, bursty), and the pool and queue sizes relative to the queries. `lab sched
workload gen --family F --seed S --out FILE` writes one instance as a TOML/JSON workload file, and the
spec `family:F:S` loads it anywhere a workload is accepted. Training uses many seeds of some families
(domain randomization); held-out families and seeds measure generalisation.

Template kinds:
- `hot`: a contiguous range inside one of a table's hot regions (queries of a region overlap heavily);
- `lookup`: a few scattered blocks of a small index relation plus scattered blocks of a base table;
- `scan`: a whole region of a base table (large; evicts what the others need);
- `join`: ranges over hot regions of two different tables;
- `cold`: a short range anywhere in a table (little sharing).
Pool size = `pool_x` times the mean query size (so a pool holds a few queries' pages: order matters).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab_learnsched.workload import workload_from_dict
from lab_shared.errors import LabError
from lab_shared.io import atomic_write_text

KINDS = ("hot", "lookup", "scan", "join", "cold")


@dataclass(frozen=True)
class FamilySpec:
    """Ranges a family's instances are drawn from (pairs are [lo, hi], ints inclusive)."""

    name: str
    doc: str
    kinds: dict[str, float]  # template kind -> probability
    tables: tuple[int, int] = (2, 4)  # base relations
    table_pages: tuple[int, int] = (300, 3000)  # log-uniform
    index_tables: tuple[int, int] = (0, 0)
    hot_regions: tuple[int, int] = (1, 3)  # per base table
    hot_frac: tuple[float, float] = (0.04, 0.15)  # hot region width, fraction of the table
    templates: tuple[int, int] = (5, 10)
    zipf: tuple[float, float] = (0.0, 1.0)  # template weight skew
    arrivals: tuple[str, ...] = ("batch",)
    pool_x: tuple[float, float] = (2.0, 5.0)  # pool = x * mean query size
    queue: tuple[int, int] = (6, 16)
    queries: tuple[int, int] = (32, 48)
    drift: bool = False
    extra: dict = field(default_factory=dict)


FAMILIES: dict[str, FamilySpec] = {
    f.name: f
    for f in (
        FamilySpec(
            "hotset",
            "range queries on hot regions, a few large scans that flush the pool",
            {"hot": 0.75, "scan": 0.15, "cold": 0.1},
        ),
        FamilySpec(
            "lookup",
            "index lookups: a small index relation and scattered base blocks",
            {"lookup": 0.7, "hot": 0.2, "cold": 0.1},
            index_tables=(1, 3),
            templates=(6, 12),
        ),
        FamilySpec(
            "scans",
            "scans of medium regions; the pool holds about one or two",
            {"scan": 0.6, "hot": 0.3, "cold": 0.1},
            pool_x=(1.2, 3.0),
            queue=(4, 12),
        ),
        FamilySpec(
            "joins",
            "two-table joins over hot regions, some single-table ranges",
            {"join": 0.6, "hot": 0.3, "scan": 0.1},
            tables=(3, 5),
        ),
        FamilySpec(
            "mixed",
            "every kind, index and base relations",
            {"hot": 0.35, "lookup": 0.2, "scan": 0.15, "join": 0.2, "cold": 0.1},
            index_tables=(0, 2),
            templates=(6, 12),
        ),
        FamilySpec(
            "poisson",
            "mixed templates arriving as a Poisson stream faster than they are served",
            {"hot": 0.4, "lookup": 0.2, "scan": 0.15, "join": 0.25},
            index_tables=(0, 1),
            arrivals=("poisson",),
        ),
        FamilySpec(
            "bursty",
            "mixed templates arriving in bursts",
            {"hot": 0.4, "lookup": 0.15, "scan": 0.2, "join": 0.25},
            index_tables=(0, 1),
            arrivals=("bursty",),
            queue=(8, 24),
        ),
        FamilySpec(
            "skew",
            "strongly skewed template mix over big tables, wide queues, small pools",
            {"hot": 0.6, "join": 0.2, "scan": 0.1, "cold": 0.1},
            table_pages=(1000, 6000),
            zipf=(1.0, 2.0),
            pool_x=(1.5, 4.0),
            queue=(12, 32),
            queries=(48, 64),
        ),
        FamilySpec(
            "shift",
            "the template mix switches half-way to templates over regions the first half never read",
            {"hot": 0.5, "join": 0.25, "scan": 0.15, "cold": 0.1},
            drift=True,
        ),
    )
}


def parse_family_spec(spec: str) -> tuple[str, int]:
    """`family:NAME:SEED` -> (NAME, SEED)."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "family":
        raise LabError(f"bad family workload '{spec}': expected family:NAME:SEED")
    try:
        seed = int(parts[2])
    except ValueError:
        raise LabError(f"bad family workload '{spec}': seed must be an integer") from None
    return parts[1], seed


def get_family(name: str) -> FamilySpec:
    if name not in FAMILIES:
        raise LabError(f"unknown workload family '{name}' (choose from {', '.join(FAMILIES)})")
    return FAMILIES[name]


class _Builder:
    """Draws one instance of a family."""

    def __init__(self, fam: FamilySpec, seed: int):
        if seed < 0:
            raise LabError(f"family seed must be >= 0, got {seed}")
        self.f = fam
        # the family name is part of the stream so seed 3 of two families are unrelated instances
        self.rng = np.random.default_rng([seed, sum(map(ord, fam.name)) * 7919 + len(fam.name)])
        self.tables: dict[str, int] = {}
        self.hot: dict[str, list[tuple[float, float]]] = {}

    def _int(self, lo_hi: tuple[int, int]) -> int:
        return int(self.rng.integers(lo_hi[0], lo_hi[1] + 1))

    def _unif(self, lo_hi: tuple[float, float]) -> float:
        return float(self.rng.uniform(*lo_hi))

    def _hot_region(self, table: str) -> tuple[float, float]:
        w = self._unif(self.f.hot_frac)
        a = float(self.rng.uniform(0.0, 1.0 - w))
        return (round(a, 4), round(a + w, 4))

    def make_tables(self) -> None:
        f = self.f
        lo, hi = math.log(f.table_pages[0]), math.log(f.table_pages[1])
        for i in range(self._int(f.tables)):
            name = f"t{i}"
            self.tables[name] = int(math.exp(self.rng.uniform(lo, hi)))
            self.hot[name] = [self._hot_region(name) for _ in range(self._int(f.hot_regions))]
        for i in range(self._int(f.index_tables)):
            self.tables[f"ix{i}"] = int(self.rng.integers(20, 200))

    def _pages(self, table: str, region: tuple[float, float], lo: float, hi: float) -> list[int]:
        n = self.tables[table]
        span = max(1, math.ceil(region[1] * n) - math.floor(region[0] * n))
        a = max(1, int(lo * span))
        b = max(a, min(span, int(hi * span)))
        return [a, b]

    def _part_range(self, table: str, region, lo: float, hi: float) -> dict:
        return {
            "table": table,
            "kind": "range",
            "pages": self._pages(table, region, lo, hi),
            "region": list(region),
        }

    def template(self, kind: str, fresh: bool = False) -> list[dict]:
        """Parts of one template; `fresh` draws new hot regions (the drift half's unseen access pattern)."""
        base = [t for t in self.tables if t.startswith("t")]
        index = [t for t in self.tables if t.startswith("ix")]
        pick = lambda xs: xs[int(self.rng.integers(len(xs)))]  # noqa: E731
        t = pick(base)
        hot = (lambda tb: self._hot_region(tb)) if fresh else (lambda tb: pick(self.hot[tb]))
        if kind == "lookup" and not index:
            kind = "hot"
        if kind == "join" and len(base) < 2:
            kind = "hot"
        if kind == "hot":
            return [self._part_range(t, hot(t), 0.4, 0.9)]
        if kind == "cold":
            w = self._unif((0.2, 0.8))
            a = float(self.rng.uniform(0.0, 1.0 - w))
            return [self._part_range(t, (round(a, 4), round(a + w, 4)), 0.03, 0.12)]
        if kind == "scan":
            w = self._unif((0.1, 0.4))
            a = float(self.rng.uniform(0.0, 1.0 - w))
            return [{"table": t, "kind": "scan", "region": [round(a, 4), round(a + w, 4)]}]
        if kind == "join":
            u = pick([b for b in base if b != t])
            return [self._part_range(t, hot(t), 0.3, 0.8), self._part_range(u, hot(u), 0.3, 0.8)]
        # lookup: a few index pages (the index region is narrow when the lookups share a key range)
        ix = pick(index)
        iw = self._unif((0.2, 1.0))
        ia = float(self.rng.uniform(0.0, 1.0 - iw))
        ireg = (round(ia, 4), round(ia + iw, 4))
        breg = hot(t) if self.rng.random() < 0.6 else (0.0, 1.0)
        return [
            {"table": ix, "kind": "index", "pages": self._pages(ix, ireg, 0.05, 0.3), "region": list(ireg)},
            {"table": t, "kind": "index", "pages": self._pages(t, breg, 0.05, 0.4), "region": list(breg)},
        ]

    def _weights(self, n: int) -> np.ndarray:
        s = self._unif(self.f.zipf)
        w = 1.0 / np.arange(1, n + 1) ** s
        return self.rng.permutation(w)

    def build(self) -> dict:
        f = self.f
        self.make_tables()
        kinds, probs = zip(*f.kinds.items())
        p = np.array(probs, dtype=float) / sum(probs)
        n_t = self._int(f.templates)
        temps: dict[str, dict] = {}
        for i, w in enumerate(self._weights(n_t)):
            k = kinds[int(self.rng.choice(len(kinds), p=p))]
            temps[f"{k}{i}"] = {"weight": round(float(w), 4), "parts": self.template(k)}
        n_q = self._int(f.queries)
        d: dict = {"workload": {"name": "", "queries": n_q}, "tables": dict(self.tables), "templates": temps}
        if f.drift:
            new = {}
            for j, _w in enumerate(self._weights(max(2, n_t // 2))):
                k = kinds[int(self.rng.choice(len(kinds), p=p))]
                new[f"new_{k}{j}"] = {"weight": 0.0, "parts": self.template(k, fresh=True)}
            temps.update(new)
            dw = {name: round(float(w) + 0.5, 4) for name, w in zip(new, self._weights(len(new)))}
            d["drift"] = {"at": n_q // 2, "weights": dw}
        return d


def family_dict(family: str, seed: int) -> dict:
    """One instance of `family` as a workload dict (the structure of a workload file)."""
    fam = get_family(family)
    b = _Builder(fam, seed)
    d = b.build()
    name = f"{family}-{seed}"
    d["workload"]["name"] = name
    # pool relative to the mean query size, measured on a sample of this instance's queries
    wl = workload_from_dict(d, name)
    sizes = [q.size for q in wl.generate(np.random.default_rng(seed), n=64)]
    mean = float(np.mean(sizes))
    n_pages = wl.tables.n_pages
    pool = int(round(b._unif(fam.pool_x) * mean))
    d["workload"]["buffer_pages"] = int(min(max(pool, 16), n_pages - 1))
    d["workload"]["queue_size"] = b._int(fam.queue)
    arrival = fam.arrivals[int(b.rng.integers(len(fam.arrivals)))]
    d["workload"]["arrival"] = arrival
    if arrival != "batch":
        # arrivals faster than service (a query costs about its size in reads), so the queue fills up
        d["workload"]["rate"] = round(1.0 / (mean * b._unif((0.15, 0.5))), 6)
    if arrival == "bursty":
        d["workload"]["burst"] = round(b._unif((4.0, 10.0)), 2)
    return d


def family_workload(family: str, seed: int):
    """The Workload of `family` instance `seed` (validated like any workload file)."""
    return workload_from_dict(family_dict(family, seed), f"{family}-{seed}")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def to_toml(d: dict) -> str:
    """A workload dict as TOML (the sections workload_from_dict reads)."""
    out = []
    for sec in ("workload", "tables", "drift"):
        if sec in d:
            out.append(f"[{sec}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in d[sec].items()]
            out.append("")
    for name, t in d["templates"].items():
        out.append(f"[templates.{name}]")
        out.append(f"weight = {_toml_value(t['weight'])}")
        out.append("parts = [")
        out += [f"  {_toml_value(p)}," for p in t["parts"]]
        out += ["]", ""]
    return "\n".join(out)


def write_family(family: str, seed: int, out: str | Path) -> Path:
    """Write one instance as a .toml or .json workload file (atomic)."""
    out = Path(out)
    d = family_dict(family, seed)
    if out.suffix.lower() == ".toml":
        text = to_toml(d)
    elif out.suffix.lower() == ".json":
        text = json.dumps(d, indent=2)
    else:
        raise LabError(f"{out}: workload files must end in .toml or .json")
    atomic_write_text(out, text)
    return out
