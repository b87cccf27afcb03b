"""`lab sched bench-families`: learned vs best heuristic vs planner on generated workload families.

For every family and test instance (instance seeds 0.., never used in training, which draws 10,000..):
- the best heuristic of that instance is chosen on its validation episodes (seeds 900,000..) among
  `heuristics`, and the safety net validates each agent against it on the same episodes;
- every heuristic, the planner and each agent (raw and guarded) run the test episodes (seeds 0..).
Per family (and pooled over families) it reports mean reads, `vs_best` (paired relative reads difference
to the best heuristic, with a paired bootstrap interval over episodes), paired wins, and the fraction of
the gap from the best heuristic to the planner that the agent closes (ratio of means, bootstrap interval).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lab_learnsched.agents.config import VAL_SEED0
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes, run_episode
from lab_learnsched.families import family_workload, get_family
from lab_learnsched.safety import best_heuristic, sim_scorer, validate_agent
from lab_learnsched.schedulers import HEURISTICS, make_scheduler
from lab_shared.errors import LabError
from lab_shared.logs import get_logger
from lab_shared.report import markdown_table, write_table
from lab_shared.rundir import RunDir

log = get_logger("lab.sched")


@dataclass
class FamilyBenchConfig:
    families: list[str] = field(default_factory=lambda: ["scans", "joins", "shift"])
    instances: int = 25  # test instances per family (instance seeds 0..)
    seeds: int = 2  # test episodes per instance (seeds 0..)
    val_seeds: int = 4  # validation episodes per instance (seeds VAL_SEED0..)
    heuristics: list[str] = field(default_factory=lambda: list(HEURISTICS))
    planner: str = "planner"
    agents: list[str] = field(default_factory=list)  # agent:PATH specs
    policy: str = "lru"
    bootstrap: int = 2000
    seed: int = 0  # bootstrap resampling seed


def paired_bootstrap(x: np.ndarray, b: np.ndarray, p: np.ndarray | None, n: int, seed: int) -> dict:
    """Paired statistics of agent reads `x` vs best-heuristic reads `b` (and planner reads `p`) per episode,
    with 95% percentile intervals from resampling episodes."""
    rng = np.random.default_rng(seed)
    rel = (x - b) / np.maximum(b, 1)
    idx = rng.integers(0, len(x), size=(n, len(x)))
    out = {
        "vs_best": float(rel.mean()),
        "vs_best_lo": float(np.percentile(rel[idx].mean(1), 2.5)),
        "vs_best_hi": float(np.percentile(rel[idx].mean(1), 97.5)),
        "wins": float(np.mean(x < b)),
        "ties": float(np.mean(x == b)),
    }
    if p is not None:
        gap = b.mean() - p.mean()
        out["planner_gap"] = float(gap / max(b.mean(), 1))
        out["gap_closed"] = float((b.mean() - x.mean()) / gap) if gap > 0 else float("nan")
        bs, xs, ps = b[idx].mean(1), x[idx].mean(1), p[idx].mean(1)
        g = bs - ps
        ok = g > 0
        closed = (bs[ok] - xs[ok]) / g[ok]
        out["gap_closed_lo"] = float(np.percentile(closed, 2.5)) if ok.any() else float("nan")
        out["gap_closed_hi"] = float(np.percentile(closed, 97.5)) if ok.any() else float("nan")
    return out


def run_family_bench(cfg: FamilyBenchConfig, run: RunDir | None = None) -> dict:
    """Everything in the module docstring; returns {"episodes": [...], "summary": [...], "agents": [...]}."""
    if cfg.instances < 1 or cfg.seeds < 1 or cfg.val_seeds < 1:
        raise LabError("bench-families needs instances, seeds and val_seeds >= 1")
    if not cfg.heuristics:
        raise LabError("bench-families needs at least one heuristic")
    for f in cfg.families:
        get_family(f)
    import torch

    torch.set_num_threads(1)
    agents = [(a, make_scheduler(a)) for a in cfg.agents]
    test_seeds = list(range(cfg.seeds))
    val_seeds = [VAL_SEED0 + j for j in range(cfg.val_seeds)]
    rows, verdicts = [], []
    t0 = time.time()
    for fam in cfg.families:
        for k in range(cfg.instances):
            wl = family_workload(fam, k)
            env = BufferPoolEnv(wl, policy=cfg.policy)
            score = sim_scorer(env, val_seeds)
            best, val_reads = best_heuristic(score, cfg.heuristics)
            eps = episodes(env, test_seeds)
            reads = {}
            for spec in list(cfg.heuristics) + ([cfg.planner] if cfg.planner else []):
                s = make_scheduler(spec)
                reads[spec] = [run_episode(env, s, sd, q).reads for sd, q in zip(test_seeds, eps)]
            for spec, s in agents:
                v = validate_agent(s, score, heuristic=best)
                verdicts.append({"family": fam, "instance": k, **v.to_dict()})
                reads[spec] = [run_episode(env, s, sd, q).reads for sd, q in zip(test_seeds, eps)]
                reads[f"guarded:{spec}"] = reads[spec] if v.passed else reads[best]
            for j, sd in enumerate(test_seeds):
                rows.append(
                    {
                        "family": fam,
                        "instance": k,
                        "seed": sd,
                        "best_heuristic": best,
                        "best": reads[best][j],
                        **{f"reads:{sp}": r[j] for sp, r in reads.items()},
                    }
                )
        log.info("bench-families %s done (%.0f s)", fam, time.time() - t0)
    out = {"episodes": rows, "verdicts": verdicts, "summary": summarize_families(cfg, rows)}
    if run is not None:
        write_table(out["summary"], run.path / "families")
        run.write_results(out)
    return out


def summarize_families(cfg: FamilyBenchConfig, rows: list[dict]) -> list[dict]:
    """One row per (family or "all", policy) with the paired statistics against the best heuristic."""
    groups = [(f, [r for r in rows if r["family"] == f]) for f in cfg.families]
    if len(cfg.families) > 1:
        groups.append(("all", rows))
    out = []
    for name, rs in groups:
        b = np.array([r["best"] for r in rs], float)
        p = np.array([r[f"reads:{cfg.planner}"] for r in rs], float) if cfg.planner else None
        picks = sorted({r["best_heuristic"] for r in rs})
        pols = [k[6:] for k in rs[0] if k.startswith("reads:")]
        for pol in pols:
            x = np.array([r[f"reads:{pol}"] for r in rs], float)
            st = paired_bootstrap(x, b, p, cfg.bootstrap, cfg.seed)
            out.append(
                {
                    "family": name,
                    "policy": pol,
                    "episodes": len(rs),
                    "reads": float(x.mean()),
                    "best_reads": float(b.mean()),
                    "planner_reads": float(p.mean()) if p is not None else float("nan"),
                    "best_heuristics": ",".join(picks),
                    **st,
                }
            )
    return out


def summary_markdown(summary: list[dict], policies: list[str] | None = None) -> str:
    cols = ["family", "policy", "episodes", "reads", "best_reads", "planner_reads", "vs_best", "vs_best_lo",
            "vs_best_hi", "wins", "planner_gap", "gap_closed", "gap_closed_lo", "gap_closed_hi"]  # fmt: skip
    rows = [r for r in summary if policies is None or r["policy"] in policies]
    return markdown_table([{c: r.get(c, "") for c in cols} for r in rows])
