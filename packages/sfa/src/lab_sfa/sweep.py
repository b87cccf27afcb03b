"""Grids of runs (methods x hyperparameters x seeds) from a TOML file: resumable, then a comparison table.

    seeds = [0, 1, 2]
    select = "val_acc"                 # how each method's best grid point is chosen (validation split)
    [base]                              # RunConfig overrides shared by every run (dotted keys or tables)
    "trainer.max_steps" = 200
    [[grid]]
    method = "sfa"
    "method.beta" = [0.1, 0.3, 0.5]     # lists are crossed (cartesian product)
    "method.p" = [0.1, 0.25]

Each finished run is written to ``points/<id>.json`` atomically, so an interrupted sweep resumed on the same
folder skips what is done. The table reports, per method, the grid point with the best mean validation
score, with mean +- std over seeds of test ACC, BWT, forgetting and plasticity, and the measured costs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_sfa.metrics import mean_std
from lab_sfa.run_config import RunConfig, resolve_run
from lab_sfa.task_loop import run_continual
from lab_shared.backend import Backend, map_tasks
from lab_shared.config import config_to_dict, load_config
from lab_shared.errors import ConfigError, LabError
from lab_shared.io import atomic_write_json, read_json
from lab_shared.logs import get_logger
from lab_shared.report import bar_plot, line_plot, write_table
from lab_shared.rundir import RunDir

log = get_logger("lab.sfa")
SELECT = ("val_acc", "acc", "bwt", "plasticity")  # what a best grid point can be chosen by (higher is better)
POINT_KEYS = (
    "acc",
    "bwt",
    "forgetting",
    "plasticity",
    "steps_per_s",
    "max_extra_param_copies",
    "max_stored_examples",
)


@dataclass
class GridPoint:
    """One method setting (the overrides that define it) and its label in tables."""

    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""  # of the full resolved config (defaults + base + point + set), set by parse_spec

    @property
    def label(self) -> str:
        short = ",".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(self.overrides.items()))
        return f"{self.method}({short})" if short else self.method

    def key(self) -> str:
        point = {"method": self.method, **self.overrides, "_config": self.config_hash}
        blob = json.dumps(point, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def parse_spec(spec: dict) -> tuple[dict[str, Any], list[GridPoint], list[int], str]:
    """(base overrides, grid points, seeds, selection metric) from a parsed sweep spec."""
    if not isinstance(spec, dict):
        raise LabError("sweep file: the top level must be a table/object")
    unknown = set(spec) - {"seeds", "select", "base", "grid", "name", "set"}
    if unknown:
        raise LabError(
            f"sweep file: unknown key '{sorted(unknown)[0]}' (known: seeds, select, base, grid, name, set)"
        )
    sets = spec.get("set", [])
    if not isinstance(sets, list) or not all(isinstance(x, str) for x in sets):
        raise LabError("sweep file: set must be a list of key=value strings")
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise LabError("sweep file: seeds must be a non-empty list of integers")
    if not isinstance(spec.get("base", {}), dict) or spec.get("select", "val_acc") not in SELECT:
        raise LabError(f"sweep file: base must be a table and select one of {', '.join(SELECT)}")
    base = _flatten(spec.get("base", {}))
    grid = spec.get("grid")
    if not isinstance(grid, list) or not grid or not all(isinstance(e, dict) for e in grid):
        raise LabError("sweep file: needs at least one [[grid]] entry (a table with a method)")
    points = []
    for i, entry in enumerate(grid):
        entry = _flatten(dict(entry))
        method = entry.pop("method", None) or entry.pop("method.name", None)
        if not method:
            raise LabError(f"sweep file: grid entry {i + 1} has no method")
        keys = sorted(entry)
        values = [v if isinstance(v, list) else [v] for v in (entry[k] for k in keys)]
        for combo in itertools.product(*values):
            points.append(GridPoint(str(method), dict(zip(keys, combo))))
    _check_shared_method_keys(base, sets, points)
    for p in points:  # a changed base or --set gives new keys: old results are never reused for it
        cfg = config_to_dict(point_config(base, p, 0, sets))
        p.config_hash = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()
    return base, points, seeds, str(spec.get("select", "val_acc"))


def resolved_spec(spec: dict, extra: list[str] | tuple = ()) -> dict:
    """The spec with the --set overrides added to its `set` list: what sweep.json records and the keys hash."""
    if not isinstance(spec, dict) or not isinstance(spec.get("set", []), list):
        raise LabError("sweep file: the top level must be a table/object (and its set a list)")
    have = list(spec.get("set", []))
    more = [e for e in extra if e not in have]
    return {**spec, "set": have + more} if more else spec


def load_spec(path: Path) -> dict:
    if not path.exists():
        raise LabError(f"sweep file not found: {path}")
    try:
        return tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LabError(f"{path}: cannot parse sweep file: {e}") from e


def _own_keys(method: str) -> set[str]:
    """`method.<param>` keys of the method's declared parameters (and method.name)."""
    from lab_sfa.methods.registry import method_params

    try:
        return {"method.name", *(f"method.{p.name}" for p in method_params(method))}
    except LabError:
        return {"method.name"}  # an unknown method: resolve_run names it


def _check_shared_method_keys(base: dict[str, Any], sets: list[str], points: list[GridPoint]) -> None:
    """A method key in base or --set must be a parameter of at least one method of the grid."""
    keys = [k for k in base if k.startswith("method.")]
    keys += [e.split("=")[0].strip() for e in sets if e.strip().startswith("method.")]
    used = set().union(*(_own_keys(p.method) for p in points))
    for key in keys:
        if key not in used:
            methods = ", ".join(sorted({p.method for p in points}))
            raise LabError(f"sweep file: {key} is a parameter of none of the grid's methods ({methods})")


def point_config(base: dict[str, Any], point: GridPoint, seed: int, extra: list[str] = ()) -> RunConfig:
    """The RunConfig of one (grid point, seed): defaults <- base <- point <- --set extras."""

    def to_text(v: Any) -> str:
        return ",".join(str(x) for x in v) if isinstance(v, list) else str(v)

    own = _own_keys(point.method)  # base and --set method keys reach the methods that declare them
    shared = {k: v for k, v in base.items() if not k.startswith("method.") or k in own}
    sets = [f"{k}={to_text(v)}" for k, v in {**shared, **point.overrides}.items()]
    sets += [f"method.name={point.method}", f"seed={seed}", "curves=false", "trainer.progress=false"]
    extra = [e for e in extra if not e.strip().startswith("method.") or e.split("=")[0].strip() in own]
    try:
        cfg = load_config(RunConfig, None, [*sets, *extra])
    except ConfigError as e:
        raise LabError(f"sweep point {point.label}: {e}") from e
    try:
        return resolve_run(cfg)  # the method's defaults filled in: the point's key covers what runs
    except LabError as e:
        raise LabError(f"sweep point {point.label}: {e}") from None


def _run_point(arg: tuple[RunConfig, str]) -> dict | None:
    """One (grid point, seed) run, wherever the backend runs it; None if its result file appeared meanwhile."""
    cfg, done_file = arg
    if Path(done_file).exists():  # finished meanwhile by another process on this folder
        return None
    res = run_continual(cfg)
    res.pop("curves", None)
    return res


def run_sweep(
    spec: dict,
    run_dir: RunDir,
    extra: list[str] = (),
    only_method: str | None = None,
    backend: Backend | None = None,
) -> dict:
    """Run every (grid point, seed) not yet done in ``run_dir``, then write the tables and plots.

    Each run is one task of `backend` (local: one after another here; Ray: in parallel on the cluster); its
    result comes back here and is written to ``points/`` as it finishes, so resume works the same on both."""
    spec = resolved_spec(spec, extra)  # --set values are part of the spec and of every point's key
    extra = spec.get("set", [])
    base, points, seeds, select = parse_spec(spec)
    if only_method:  # one method or a comma-separated list (lets several processes share a sweep folder)
        wanted = set(only_method.split(","))
        points = [p for p in points if p.method in wanted]
        if not points:
            raise LabError(f"--only {only_method}: no grid point of the sweep has that method")
    jobs = [(p, s) for p in points for s in seeds]
    configs = {(p.key(), s): point_config(base, p, s, extra) for p, s in jobs}  # validate everything first
    atomic_write_json(run_dir.file("sweep.json"), spec)
    pdir = run_dir.path / "points"
    pdir.mkdir(exist_ok=True)
    todo = [(p, s) for p, s in jobs if not (pdir / f"{p.key()}-s{s}.json").exists()]
    log.info("sweep: %d runs (%d points x %d seeds), %d to do", len(jobs), len(points), len(seeds), len(todo))
    by_task = {f"{p.key()}-s{s}": (p, s) for p, s in todo}

    def save(task: str, res: dict | None) -> None:
        if res is None:
            return
        p, s = by_task[task]
        res.update(point=p.label, point_key=p.key(), overrides=p.overrides)
        atomic_write_json(pdir / f"{task}.json", res)
        run_dir.metrics.log(point=p.label, seed=s, acc=res["acc"], val_acc=res.get("val_acc"), bwt=res["bwt"])

    tasks = [(t, (configs[(p.key(), s)], str(pdir / f"{t}.json"))) for t, (p, s) in by_task.items()]
    map_tasks(_run_point, tasks, backend, on_result=save, desc="sweep")
    return summarize_sweep(run_dir, points, seeds, select)


def _load_points(run_dir: RunDir, points: list[GridPoint], seeds: list[int]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in points:
        rs = [read_json(f) for s in seeds if (f := run_dir.path / "points" / f"{p.key()}-s{s}.json").exists()]
        if any(not isinstance(r, dict) or any(k not in r for k in POINT_KEYS) for r in rs):
            raise LabError(
                f"{run_dir.path}/points: a result of {p.label} is not a finished run; delete it to rerun"
            )
        if rs:
            out[p.key()] = rs
    return out


def _fmt(vals: list[float]) -> str:
    m, s = mean_std(vals)
    return f"{m:.3f} ± {s:.3f}"


def summarize_sweep(
    run_dir: RunDir, points: list[GridPoint], seeds: list[int], select: str = "val_acc"
) -> dict:
    """All-points table, best-per-method table (mean ± std over seeds), cost table and plots."""
    done = _load_points(run_dir, points, seeds)
    if not done:
        raise LabError(f"no finished runs in {run_dir.path}")
    by_key = {p.key(): p for p in points}
    all_rows = []
    for key, rs in done.items():
        p = by_key[key]
        sel = [r.get(select, r["acc"]) for r in rs]
        all_rows.append(
            {
                "method": p.method,
                "point": p.label,
                "seeds": len(rs),
                select: mean_std(sel)[0],
                "acc": _fmt([r["acc"] for r in rs]),
                "bwt": _fmt([r["bwt"] for r in rs]),
                "plasticity": _fmt([r["plasticity"] for r in rs]),
                "_sel": mean_std(sel)[0],
                "_key": key,
            }
        )
    best: dict[str, dict] = {}
    for row in all_rows:
        if row["method"] not in best or row["_sel"] > best[row["method"]]["_sel"]:
            best[row["method"]] = row
    seq_speed = None
    if "seq" in best:
        seq_speed = mean_std([r["steps_per_s"] or 0.0 for r in done[best["seq"]["_key"]]])[0]
    table, acc_means, acc_stds = [], [], []
    for method, row in best.items():
        rs = done[row["_key"]]
        m, s = mean_std([r["acc"] for r in rs])
        acc_means.append(m)
        acc_stds.append(s)
        speeds = [r["steps_per_s"] for r in rs if r["steps_per_s"]]
        speed = mean_std(speeds)[0] if speeds else None
        table.append(
            {
                "method": method,
                "best point": row["point"],
                "ACC": _fmt([r["acc"] for r in rs]),
                "BWT": _fmt([r["bwt"] for r in rs]),
                "forgetting": _fmt([r["forgetting"] for r in rs]),
                "plasticity": _fmt([r["plasticity"] for r in rs]),
                "seeds": len(rs),
                "param copies": round(max(r["max_extra_param_copies"] for r in rs), 2),
                "stored examples": max(r["max_stored_examples"] for r in rs),
                "wall time/step vs seq": round(seq_speed / speed, 2) if seq_speed and speed else None,
            }
        )
    for r in all_rows:
        del r["_sel"], r["_key"]
    write_table(all_rows, run_dir.file("table_all"))
    write_table(table, run_dir.file("table"))
    plots = [
        bar_plot(
            run_dir.plots / "acc_by_method.png",
            [r["method"] for r in table],
            acc_means,
            "final average accuracy (ACC)",
            title=f"best grid point per method (by {select}), mean ± std over seeds",
            yerr=acc_stds,
        )
    ]
    plots += _hyper_plots(run_dir, done, by_key)
    summary = {"select": select, "table": table, "all": all_rows, "plots": [str(p) for p in plots]}
    run_dir.write_results(summary)
    return summary


def _hyper_plots(run_dir: RunDir, done: dict[str, list[dict]], by_key: dict[str, GridPoint]) -> list[Path]:
    """ACC against the one swept knob of each method (SFA: one line per p over beta)."""
    paths = []
    for method in sorted({by_key[k].method for k in done}):
        keys = [k for k in done if by_key[k].method == method]
        knobs = sorted({o for k in keys for o in by_key[k].overrides})
        if not knobs:
            continue
        x_knob = "method.beta" if "method.beta" in knobs else knobs[0]
        groups: dict[str, list[tuple[float, float, float]]] = {}
        for k in keys:
            o = by_key[k].overrides
            if not isinstance(o.get(x_knob), int | float):
                continue
            g = ",".join(f"{kk.split('.')[-1]}={v}" for kk, v in sorted(o.items()) if kk != x_knob) or method
            m, s = mean_std([r["acc"] for r in done[k]])
            groups.setdefault(g, []).append((float(o[x_knob]), m, s))
        if not groups:
            continue
        series = {g: ([v[0] for v in sorted(vs)], [v[1] for v in sorted(vs)]) for g, vs in groups.items()}
        yerr = {g: [v[2] for v in sorted(vs)] for g, vs in groups.items()}
        logx = all(x > 0 for xs, _ in series.values() for x in xs) and x_knob in ("method.lam",)
        paths.append(
            line_plot(
                run_dir.plots / f"sweep_{method}.png",
                series,
                x_knob,
                "ACC",
                title=f"{method}: final average accuracy over the grid",
                yerr=yerr,
                logx=logx,
            )
        )
    return paths
