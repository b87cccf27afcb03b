"""`lab runs ls | show | compare`: what is in the runs folder, without opening files by hand.

A run is any folder under the root holding provenance.json or config.json (the folders `RunDir` makes,
at any depth: `runs/<command>/<name>-<time>/`, and the demo's `runs/demo/<part>/<command>/...`). Its status
is `finished` when results.json exists, `running` while a process holds its lock, else `stopped`.
Only reads: no lock is kept and nothing is written.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_shared.errors import LabError
from lab_shared.provenance import FILE as PROVENANCE
from lab_shared.rundir import LOCK_FILE, runs_root

_MARKERS = (PROVENANCE, "config.json")
# inside a run: never runs (model: an exported model folder, whose config.json is the model's)
_SKIP_DIRS = {"checkpoints", "plots", "best", "tensorboard", "mlruns", "__pycache__", "model"}
LS_METRICS = 3  # scalar results shown per run by `ls` (all of them with --json)


@dataclass
class Run:
    """One run folder as read from disk."""

    path: Path
    command: str  # the folder path between the root and the run, e.g. "sched-train" or "demo/sched/train"
    name: str
    status: str
    started: str | None
    ended: str | None
    config: Any = None
    provenance: dict | None = None
    results: Any = None
    metrics: dict[str, float | int | str | bool] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "path": str(self.path),
            "command": self.command,
            "name": self.name,
            "status": self.status,
            "started": self.started,
            "ended": self.ended,
            "metrics": self.metrics,
        }


def _read(path: Path) -> Any:
    """A JSON file's content, or None when missing or unreadable (a run being written can be torn)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def lock_held(folder: Path) -> bool:
    """Whether some process holds the run folder's lock (tried without blocking, released at once)."""
    lock = folder / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of nested dicts; lists kept as values."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj} if prefix else {}


def scalars(results: Any) -> dict[str, float | int | str | bool]:
    """The scalar entries (numbers, short strings, booleans) of a results dict, dotted keys for nesting."""
    out = {}
    for k, v in flatten(results).items():
        if isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= 40 and "/" not in v):
            out[k] = v
    return out


def _numeric(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def load_run(path: Path, root: Path | None = None) -> Run:
    """Read one run folder (config, provenance, results, status)."""
    prov = _read(path / PROVENANCE)
    prov = prov if isinstance(prov, dict) else None
    config = _read(path / "config.json")
    if config is None and prov is not None:
        config = prov.get("config")
    results = _read(path / "results.json") if (path / "results.json").is_file() else None
    if (path / "results.json").is_file():
        status = "finished"
    elif lock_held(path):
        status = "running"
    else:
        status = "stopped"
    try:
        rel = path.resolve().relative_to(root.resolve()) if root is not None else None
    except ValueError:
        rel = None
    command = "/".join(rel.parts[:-1]) if rel is not None and len(rel.parts) > 1 else path.parent.name
    started = prov.get("started") if prov else None
    if started is None:  # a folder from before provenance.json: its config file's time
        try:
            started = time.strftime(
                "%Y-%m-%dT%H:%M:%S%z", time.localtime((path / "config.json").stat().st_mtime)
            )
        except OSError:
            started = None
    return Run(
        path=path,
        command=command,
        name=path.name,
        status=status,
        started=started,
        ended=prov.get("ended") if prov else None,
        config=config,
        provenance=prov,
        results=results,
        metrics=scalars(results) if isinstance(results, dict) else {},
    )


def find_runs(root: Path) -> list[Path]:
    """Every run folder under `root` (not descending into a run's own checkpoints or plots)."""
    found = []
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        if any(m in filenames for m in _MARKERS):
            found.append(Path(dirpath))
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
        else:
            dirnames[:] = [d for d in dirnames if d != "mlruns" and not d.startswith(".")]
        dirnames.sort()
    return found


def list_runs(root: str | Path | None = None) -> list[Run]:
    """All runs under the root ($LAB_RUNS or runs/), oldest first."""
    base = runs_root(root)
    if not base.is_dir():
        raise LabError(f"runs folder not found: {base} (set LAB_RUNS or pass --root)")
    runs = [load_run(p, base) for p in find_runs(base)]
    return sorted(runs, key=lambda r: (r.started or "", str(r.path)))


def resolve_run(spec: str, root: str | Path | None = None) -> Path:
    """A run named by path, by its path under the root, or by a unique folder name or its prefix."""
    p = Path(spec)
    if p.is_dir() and any((p / m).is_file() for m in _MARKERS):
        return p
    base = runs_root(root)
    if (base / spec).is_dir() and any((base / spec / m).is_file() for m in _MARKERS):
        return base / spec
    candidates = find_runs(base)
    exact = [c for c in candidates if c.name == spec.rstrip("/")]
    hits = exact or [c for c in candidates if c.name.startswith(spec) or str(c).endswith(spec.rstrip("/"))]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise LabError(f"no run '{spec}' under {base} (see `lab runs ls`)")
    names = ", ".join(str(h.relative_to(base)) for h in hits[:5])
    raise LabError(f"run '{spec}' is ambiguous under {base}: {names}{' ...' if len(hits) > 5 else ''}")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | dict):
        s = json.dumps(v)
        return s if len(s) <= 40 else s[:37] + "..."
    return str(v)


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned text table."""
    cells = [header] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_ls(runs: list[Run], root: Path) -> str:
    if not runs:
        return f"no runs under {root}"
    rows = []
    for r in runs:
        shown = _numeric(r.metrics)
        key = ", ".join(f"{k}={_fmt(v)}" for k, v in list(shown.items())[:LS_METRICS])
        rows.append([r.command, r.name, r.status, r.started, key])
    return table(["command", "name", "status", "started", "key metrics"], rows)


def show_data(run: Run) -> dict:
    """What `show` prints: config, a provenance summary and the results."""
    prov = run.provenance or {}
    git = prov.get("git") or {}
    summary = {
        "started": prov.get("started"),
        "ended": prov.get("ended"),
        "argv": prov.get("argv"),
        "git": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "host": prov.get("host"),
        "packages": prov.get("packages"),
        "inputs": prov.get("inputs"),
        "resumes": len(prov.get("resumes") or []),
    }
    return {**run.summary(), "config": run.config, "provenance": summary, "results": run.results}


def format_show(run: Run) -> str:
    d = show_data(run)
    p = d["provenance"]
    lines = [f"run      {run.path}", f"command  {run.command}", f"status   {run.status}"]
    if run.provenance is None:
        lines.append("provenance: none recorded (folder predates provenance.json)")
    else:
        dirty = " (dirty tree)" if p["git_dirty"] else ""
        lines += [
            f"started  {p['started'] or '-'}",
            f"ended    {p['ended'] or '-'}",
            f"argv     {' '.join(p['argv'] or [])}",
            f"git      {p['git'] or '-'}{dirty}",
            f"host     {p['host'] or '-'}",
            f"resumes  {p['resumes']}",
        ]
        for path, digest in (p["inputs"] or {}).items():
            lines.append(f"input    {path} ({str(digest)[:16]})")
    lines.append("\nconfig:")
    cfg = flatten(run.config) if isinstance(run.config, dict) else {}
    lines += [f"  {k} = {_fmt(v)}" for k, v in cfg.items()] or ["  (none)"]
    lines.append("\nresults:")
    if run.results is None:
        lines.append("  (none yet)")
    else:
        res = run.metrics if run.metrics else {}
        lines += [f"  {k} = {_fmt(v)}" for k, v in res.items()]
        others = sorted(set(flatten(run.results)) - set(res)) if isinstance(run.results, dict) else []
        if others:
            lines.append(
                f"  (not shown: {', '.join(others[:8])}{' ...' if len(others) > 8 else ''}; see --json)"
            )
    return "\n".join(lines)


def compare_data(runs: list[Run]) -> dict:
    """Config keys that differ between the runs and every scalar metric, one value per run."""
    cfgs = [flatten(r.config) if isinstance(r.config, dict) else {} for r in runs]
    keys = sorted(set().union(*cfgs)) if cfgs else []
    absent = object()
    differing = [k for k in keys if len({json.dumps(c.get(k, absent), default=repr) for c in cfgs}) > 1]
    metric_keys: list[str] = []
    for r in runs:
        metric_keys += [k for k in r.metrics if k not in metric_keys]
    return {
        "runs": [str(r.path) for r in runs],
        "config": {k: [c.get(k) for c in cfgs] for k in differing},
        "metrics": {k: [r.metrics.get(k) for r in runs] for k in metric_keys},
    }


def format_compare(runs: list[Run]) -> str:
    d = compare_data(runs)
    header = ["", *[f"[{i + 1}]" for i in range(len(runs))]]
    lines = [f"[{i + 1}] {r.path} ({r.status})" for i, r in enumerate(runs)]
    lines.append("")
    if d["config"]:
        lines.append(table(["config", *header[1:]], [[k, *v] for k, v in d["config"].items()]))
    else:
        lines.append("config: identical")
    lines.append("")
    if d["metrics"]:
        lines.append(table(["metric", *header[1:]], [[k, *v] for k, v in d["metrics"].items()]))
    else:
        lines.append("metrics: none (no results.json)")
    return "\n".join(lines)
