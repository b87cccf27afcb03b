"""What the two LM tables share (benchmarks/sfa_lm_table.py, the byte track; sfa_lm_hf_table.py, the Hugging
Face track): one saved result per (method, seed) so a rerun resumes, the held-out losses read from the
sequence's eval log, and the mean ± std cells over seeds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from lab_sfa.metrics import mean_std
from lab_shared.io import atomic_write_json

SUMMARY = [("acc", "ACC"), ("bwt", "BWT"), ("forgetting", "forgetting"), ("plasticity", "plasticity")]


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)


def cached_point(out: Path, label: str, seed: int, setting: dict, run: Callable[[str, int], dict]) -> dict:
    """The result of (label, seed): out/points/<label>-s<seed>.json when it was made with this `setting`,
    else `run(label, seed)`, saved there; prints one line either way."""
    point = out / "points" / f"{slug(label)}-s{seed}.json"
    if point.is_file() and json.loads(point.read_text()).get("setting") == setting:
        res = json.loads(point.read_text())["result"]
    else:
        res = run(label, seed)
        atomic_write_json(point, {"setting": setting, "label": label, "seed": seed, "result": res})
    print(f"{label:20s} seed {seed}: ACC {res['acc']:.3f} BWT {res['bwt']:+.3f} "
          f"R_final {[round(v, 3) for v in res['R'][-1]]} ({res.get('wall_s', 0):.0f}s)", flush=True)  # fmt: skip
    return res


def timed_run(cfg, eval_log: Callable[[], list]) -> dict:
    """run_continual(cfg) with its wall time and the per-domain held-out losses (after pretraining, after the
    last task, and the whole loss matrix) from the sequence's eval log; the curves are dropped."""
    from lab_sfa.task_loop import run_continual

    t = time.perf_counter()
    res = run_continual(cfg)
    res["wall_s"] = round(time.perf_counter() - t, 1)
    k = len(res["tasks"])
    tests = [m for _, split, m in eval_log() if split == "test"]
    if len(tests) == k * (k + 1):  # the r0 row, then one row per task
        res["loss_final"] = [m["loss"] for m in tests[-k:]]
        res["loss_r0"] = [m["loss"] for m in tests[:k]]
        res["R_loss"] = [[m["loss"] for m in tests[(i + 1) * k : (i + 2) * k]] for i in range(k)]
    res.pop("curves", None)
    return res


def summary_cells(runs: list[dict]) -> dict:
    """ACC / BWT / forgetting / plasticity as "mean ± std" over seeds, and each mean under "_<key>"."""
    row: dict = {}
    for key, name in SUMMARY:
        m, s = mean_std([r[key] for r in runs])
        row[name] = f"{m:.3f} ± {s:.3f}"
        row[f"_{key}"] = m
    return row


def task_means(runs: list[dict], values: Callable[[dict], list[float]], column: str) -> dict:
    """{column.format(task): mean over seeds of values(run)[task], to 3 places} for every task."""
    return {
        column.format(t): round(mean_std([values(r)[j] for r in runs])[0], 3)
        for j, t in enumerate(runs[0]["tasks"])
    }


def best_sfa(acc_by_label: dict[str, float]) -> tuple[float, str] | None:
    """(ACC, label) of the best SFA row; None when the table has none."""
    sfa = [(v, k) for k, v in acc_by_label.items() if k.startswith("sfa")]
    return max(sfa) if sfa else None
