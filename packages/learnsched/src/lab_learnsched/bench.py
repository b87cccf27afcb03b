"""`lab sched bench` on the simulator: every policy, held-out seeds, drift, buffer/queue sweeps, exact gaps.

Tables (Markdown + CSV under the run directory) and plots:
- `main`: per workload (default, drift) at its suggested pool/queue: hit ratio (mean, std over seeds),
  disk reads, simulated makespan, gap to the distinct-pages floor; every scheduler on the same episodes.
- `buffer_sweep` / `queue_sweep`: reads and hit ratio across buffer sizes and queue windows.
- `exact`: batches of <= 8 queries (queue holds the whole batch) where the exact optimum is known: each
  policy's reads and its gap to the optimum.
Test episodes use seeds 0..seeds-1, disjoint from training (10,000,000+) and validation (900,000+) seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab_learnsched.agents.config import VAL_SEED0
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes, run_episode, summarize
from lab_learnsched.safety import best_heuristic, sim_scorer, validate_agent
from lab_learnsched.schedulers import HEURISTICS, Scheduler, make_scheduler
from lab_learnsched.workload_sources import load_workload
from lab_shared.backend import Backend, map_tasks
from lab_shared.errors import LabError
from lab_shared.io import read_json
from lab_shared.logs import get_logger
from lab_shared.metrics import read_metrics
from lab_shared.report import line_plot, markdown_table, write_table
from lab_shared.rundir import RunDir

log = get_logger("lab.sched")


@dataclass
class BenchConfig:
    workloads: list[str] = field(default_factory=lambda: ["default", "drift"])
    policies: list[str] = field(
        default_factory=lambda: [
            "fifo",
            "random",
            "shortest",
            "greedy",
            "lookahead:1",
            "lookahead:2",
            "optimal",
        ]
    )
    agents: list[str] = field(default_factory=list)  # e.g. agent:runs/sched-train/ppo-.../ or agent+la:...
    buffer_pages: int = 0  # 0 = the workload's suggestion
    queue_size: int = 0  # 0 = the workload's suggestion
    policy: str = "lru"  # replacement policy: lru | clock
    seeds: int = 20  # held-out test episodes per workload
    buffer_sweep: list[int] = field(default_factory=lambda: [200, 400, 800, 1600])
    queue_sweep: list[int] = field(default_factory=lambda: [2, 4, 8, 16])
    sweep_seeds: int = 8
    sweep_policies: list[str] = field(
        default_factory=lambda: ["fifo", "greedy", "lookahead:1", "lookahead:2"]
    )
    exact_batches: int = 20
    exact_size: int = 8
    exact_buffers: list[int] = field(default_factory=lambda: [0, 300])  # 0 = the workload's pool size
    backend: str = "sim"  # sim | postgres | ray (the simulator's episodes as Ray tasks)
    # the bar: the best of these rules, chosen per workload on validation episodes, and a planner
    heuristics: list[str] = field(default_factory=lambda: list(HEURISTICS))
    val_seeds: int = 8  # validation episodes (seeds VAL_SEED0..) for the best heuristic and the safety net
    planner: str = "planner"  # planner spec ("" = none); see planner.py


def _scheds(specs: list[str]) -> list[tuple[str, Scheduler]]:
    return [(s, make_scheduler(s)) for s in specs]


def _label(spec: str) -> str:
    """Short name for tables: agent checkpoints become agent[+la]:<run folder>."""
    if spec.startswith("agent"):
        kind, _, path = spec.partition(":")
        p = Path(path)
        name = (
            p.name
            if p.name not in ("checkpoints", "best", "") and not p.name.startswith("step-")
            else p.parent.name
        )
        if p.name.startswith("step-"):
            name = p.parent.parent.name
        return f"{kind}:{name}"
    return spec


def _fits(sched: Scheduler, env: BufferPoolEnv) -> bool:
    """Whether a scheduler can run on env's shape (fixed-shape agents: same queue and tables)."""
    fits = getattr(sched, "fits", None)
    return True if fits is None else bool(fits(env))


def _episodes_task(arg) -> tuple[list, float]:
    """One scheduler on fixed episodes, where a backend runs it: (env, spec, seeds, episodes) -> (results, s)."""
    env, spec, seeds, eps = arg
    sched = make_scheduler(spec)
    t = time.perf_counter()
    res = [run_episode(env, sched, sd, q) for sd, q in zip(seeds, eps)]
    return res, time.perf_counter() - t


def _eval(env: BufferPoolEnv, scheds, eps, seeds, backend: Backend | None = None) -> list[dict]:
    rows = []
    fitting = [(spec, s) for spec, s in scheds if _fits(s, env)]
    if backend is not None and backend.is_ray:  # a task per scheduler, results back in scheduler order
        tasks = [(spec, (env, spec, seeds, eps)) for spec, _ in fitting]
        runs = map_tasks(_episodes_task, tasks, backend)
    else:
        runs = []
        for _, s in fitting:
            t = time.perf_counter()
            runs.append(([run_episode(env, s, sd, q) for sd, q in zip(seeds, eps)], time.perf_counter() - t))
    done = dict(zip([spec for spec, _ in fitting], runs))
    for spec, _ in scheds:
        if spec not in done:  # reported, never dropped: a fixed-shape agent on another shape
            rows.append({"policy": _label(spec), "status": "n/a: shape", "_per_episode": None})
            continue
        res, dt = done[spec]
        row = {
            "policy": _label(spec),
            **summarize(res),
            "ms_per_decision": 1e3 * dt / sum(len(q) for q in eps),
        }
        row["_per_episode"] = [r.hit_ratio for r in res]
        row["_reads"] = [r.reads for r in res]
        rows.append(row)
    # paired comparison with greedy-most-cached on the same episodes
    base = next((r["_per_episode"] for r in rows if r["policy"] == "greedy"), None)
    for r in rows:
        per = r.pop("_per_episode")
        if per is None:
            continue
        per = np.array(per)
        if base is not None:
            d = per - np.array(base)
            r["vs_greedy"] = float(d.mean())
            r["vs_greedy_std"] = float(d.std())
            r["wins_vs_greedy"] = float(np.mean(d > 1e-12))
    return rows


def compare_rows(rows: list[dict], best: str, planner: str | None) -> list[dict]:
    """Add `vs_best` (mean relative reads vs the best heuristic, paired per episode; negative = fewer
    reads), `wins_vs_best` and `gap_to_planner` (mean relative reads above the planner); insert a
    "best heuristic" row; drop the per-episode reads."""
    by = {r["policy"]: r for r in rows}
    b = by.get(best)
    p = by.get(planner) if planner else None
    out = []
    for r in rows:
        reads = r.get("_reads")
        if reads is not None:
            x = np.array(reads, float)
            if b is not None:
                bx = np.array(b["_reads"], float)
                d = (x - bx) / np.maximum(bx, 1)
                r["vs_best"], r["vs_best_std"] = float(d.mean()), float(d.std())
                r["wins_vs_best"] = float(np.mean(x < bx))
            if p is not None:
                px = np.array(p["_reads"], float)
                r["gap_to_planner"] = float(np.mean((x - px) / np.maximum(px, 1)))
        out.append(r)
        if r is b:
            out.append({**r, "policy": f"best heuristic ({best})"})
    for r in out:
        r.pop("_reads", None)
    return out


def _bar_rows(cfg: BenchConfig, env, scheds, eps, seeds, backend, out: dict) -> list[dict]:
    """Main-table rows of one workload: every scheduler plus the best heuristic (chosen on validation
    episodes), the planner, and each agent's safety-net verdict and guarded row."""
    specs = [sp for sp, _ in scheds]
    extra = [h for h in cfg.heuristics if h not in specs]
    if cfg.planner and cfg.planner not in specs:
        extra.append(cfg.planner)
    rows = _eval(env, scheds + _scheds(extra), eps, seeds, backend)
    best = None
    if cfg.heuristics:
        score = sim_scorer(env, [VAL_SEED0 + i for i in range(max(1, cfg.val_seeds))])
        best, val_reads = best_heuristic(score, cfg.heuristics)
        out.setdefault("best_heuristic", []).append(
            {"workload": env.workload.name, "best": best, "validation_reads": val_reads}
        )
        for spec, s in scheds:
            if spec.startswith("agent") and _fits(s, env):
                v = validate_agent(s, score, heuristic=best)
                row = next(r for r in rows if r["policy"] == _label(spec))
                row["validation"] = v.status
                src = row if v.passed else next(r for r in rows if r["policy"] == best)
                rows.append({**src, "policy": f"guarded:{_label(spec)}", "validation": v.status})
                out.setdefault("safety", []).append({"workload": env.workload.name, **v.to_dict()})
    return compare_rows(rows, best, cfg.planner or None) if best else rows


def run_sim_bench(cfg: BenchConfig, run: RunDir, backend: Backend | None = None) -> dict:
    """Everything in the module docstring; returns the results dict (also written to results.json).

    With a Ray `backend` each scheduler's episodes of a table row are one task (same results as local)."""
    if cfg.seeds < 1:
        raise LabError("bench needs --seeds >= 1")
    import torch

    torch.set_num_threads(1)  # tiny per-decision forwards: extra threads only add sync overhead
    specs = list(cfg.policies) + list(cfg.agents)
    scheds = _scheds(specs)
    seeds = list(range(cfg.seeds))
    out: dict = {"main": [], "buffer_sweep": [], "queue_sweep": [], "exact": []}
    for wname in cfg.workloads:
        wl = load_workload(wname)
        env = BufferPoolEnv(wl, cfg.buffer_pages or None, cfg.queue_size or None, cfg.policy)
        eps = episodes(env, seeds)
        log.info("bench %s: %d policies x %d episodes", wl.name, len(scheds), len(eps))
        for r in _bar_rows(cfg, env, scheds, eps, seeds, backend, out):
            out["main"].append(
                {"workload": wl.name, "buffer": env.buffer_pages, "queue": env.queue_size, **r}
            )
    # sweeps on the first workload
    wl = load_workload(cfg.workloads[0])
    sweep_specs = [s for s in cfg.sweep_policies] + list(cfg.agents)
    sw = _scheds(sweep_specs)
    sw_seeds = list(range(cfg.sweep_seeds))
    for b in cfg.buffer_sweep:
        if b >= wl.tables.n_pages:
            log.info("skipping buffer %d: holds all %d pages", b, wl.tables.n_pages)
            continue
        env = BufferPoolEnv(wl, b, cfg.queue_size or None, cfg.policy)
        for r in _eval(env, sw, episodes(env, sw_seeds), sw_seeds, backend):
            out["buffer_sweep"].append({"workload": wl.name, "buffer": b, "queue": env.queue_size, **r})
    for qs in cfg.queue_sweep:
        env = BufferPoolEnv(wl, cfg.buffer_pages or None, qs, cfg.policy)
        for r in _eval(env, sw, episodes(env, sw_seeds), sw_seeds, backend):
            out["queue_sweep"].append({"workload": wl.name, "buffer": env.buffer_pages, "queue": qs, **r})
    # exact optimum on small batches: the queue holds the whole batch
    if cfg.exact_batches > 0:
        if cfg.exact_size > 8:
            raise LabError("exact optimum needs batches of at most 8 queries")
        for buf in cfg.exact_buffers:
            if buf >= wl.tables.n_pages:
                log.info("skipping exact buffer %d: holds all %d pages", buf, wl.tables.n_pages)
                continue
            out["exact"] += _exact_rows(cfg, wl, buf)
    _write(cfg, run, out)
    return out


def _exact_rows(cfg: BenchConfig, wl, buf: int) -> list[dict]:
    """Every policy against the exact optimum on batches of `exact_size` queries with a pool of `buf` pages."""
    small = wl.with_updates(queries=cfg.exact_size)
    env = BufferPoolEnv(small, buf or cfg.buffer_pages or None, cfg.exact_size, cfg.policy)
    ex_seeds = list(range(cfg.exact_batches))
    eps = episodes(env, ex_seeds)
    opt = [run_episode(env, make_scheduler("optimal"), sd, q) for sd, q in zip(ex_seeds, eps)]
    opt_reads = np.array([r.reads for r in opt], dtype=float)
    rows = []
    ex_specs = [s for s in cfg.policies if s != "optimal"]
    ex_specs += [h for h in cfg.heuristics if h not in ex_specs]
    ex_specs += [cfg.planner] if cfg.planner and cfg.planner not in ex_specs else []
    ex_specs += list(cfg.agents)
    for spec, s in _scheds(ex_specs) + [("optimal (exact)", None)]:
        if s is not None and not _fits(s, env):
            rows.append(
                {
                    "workload": wl.name,
                    "buffer": env.buffer_pages,
                    "policy": _label(spec),
                    "status": "n/a: shape",
                }
            )
            continue
        res = opt if s is None else [run_episode(env, s, sd, q) for sd, q in zip(ex_seeds, eps)]
        reads = np.array([r.reads for r in res], dtype=float)
        gap = (reads - opt_reads) / np.maximum(opt_reads, 1)
        rows.append(
            {
                "workload": wl.name,
                "buffer": env.buffer_pages,
                "policy": _label(spec),
                "hit_ratio": float(np.mean([r.hit_ratio for r in res])),
                "reads": float(reads.mean()),
                "optimum_reads": float(opt_reads.mean()),
                "floor": float(np.mean([r.floor for r in res])),
                "gap_opt": float(gap.mean()),
                "gap_opt_max": float(gap.max()),
                "at_optimum": float(np.mean(reads == opt_reads)),
            }
        )
    return rows


def _write(cfg: BenchConfig, run: RunDir, out: dict) -> None:
    cols_main = [
        "workload",
        "policy",
        "hit_ratio",
        "hit_ratio_std",
        "vs_greedy",
        "vs_greedy_std",
        "wins_vs_greedy",
        "vs_best",
        "vs_best_std",
        "wins_vs_best",
        "gap_to_planner",
        "reads",
        "reads_std",
        "makespan",
        "floor",
        "gap_floor",
        "ms_per_decision",
        "status",
        "validation",
    ]
    for name, rows in out.items():
        if rows:
            cols = cols_main if name == "main" else None
            write_table([{k: r.get(k, "") for k in (cols or r)} for r in rows], run.path / name)
    # reads vs buffer size
    if out["buffer_sweep"]:
        series = {}
        for r in out["buffer_sweep"]:
            if "reads" not in r:  # n/a rows
                continue
            xs, ys = series.setdefault(r["policy"], ([], []))
            xs.append(r["buffer"])
            ys.append(r["reads"])
        line_plot(
            run.plots / "reads_vs_buffer.png",
            series,
            "buffer pool (pages)",
            "disk reads per episode",
            title="Disk reads vs buffer size",
        )
    if out["queue_sweep"]:
        series = {}
        for r in out["queue_sweep"]:
            if "hit_ratio" not in r:  # n/a rows
                continue
            xs, ys = series.setdefault(r["policy"], ([], []))
            xs.append(r["queue"])
            ys.append(r["hit_ratio"])
        line_plot(
            run.plots / "hit_ratio_vs_queue.png",
            series,
            "queue window (queries)",
            "hit ratio",
            title="Hit ratio vs queue window",
        )
    for spec in cfg.agents:
        learning_curve(
            spec.partition(":")[2], run.plots / f"learning_curve_{_label(spec).replace(':', '_')}.png"
        )
    run.write_results(out)


def learning_curve(agent_path: str, path: Path) -> Path | None:
    """Validation and training hit ratio vs steps of an agent's training run (if its metrics exist)."""
    p = Path(agent_path)
    for cand in (p, p.parent, p.parent.parent):
        m = cand / "metrics.jsonl"
        if m.is_file():
            rows = read_metrics(m)
            tr = [(r["step"], r["train_hit_ratio"]) for r in rows if "train_hit_ratio" in r]
            va = [(r["step"], r["val_hit_ratio"]) for r in rows if "val_hit_ratio" in r]
            gr = [r["val_greedy_hit_ratio"] for r in rows if "val_greedy_hit_ratio" in r]
            series = {}
            if tr:
                series["train (sampled actions)"] = ([s for s, _ in tr], [v for _, v in tr])
            if va:
                series["validation (argmax)"] = ([s for s, _ in va], [v for _, v in va])
            if not series:
                return None
            return line_plot(
                path,
                series,
                "environment steps",
                "hit ratio",
                title="Learning curve",
                hlines={"greedy-most-cached": gr[-1]} if gr else None,
            )
    return None


def main_table_markdown(out: dict) -> str:
    cols = [
        "workload",
        "policy",
        "hit_ratio",
        "hit_ratio_std",
        "vs_greedy",
        "wins_vs_greedy",
        "vs_best",
        "wins_vs_best",
        "gap_to_planner",
        "reads",
        "makespan",
        "gap_floor",
        "status",
        "validation",
    ]
    return markdown_table([{k: r.get(k, "") for k in cols} for r in out["main"]])


def load_results(path: Path) -> dict:
    return read_json(path)
