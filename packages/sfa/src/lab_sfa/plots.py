"""Plots of one continual-learning run: the accuracy matrix and the per-task accuracy curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab_shared.report import heatmap_plot, line_plot


def run_plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Heatmap of R and per-task accuracy curves (at every averaging / evaluation point) under ``out``."""
    names, method = results["tasks"], results["method"]
    paths = [
        heatmap_plot(
            out / "accuracy_matrix.png",
            results["R"],
            [f"after {n}" for n in names],
            names,
            title=f"{method}: R[i][j] (ACC {results['acc']:.3f}, BWT {results['bwt']:+.3f})",
        )
    ]
    curves = results.get("curves") or []
    if curves:
        xs = [c["global_step"] for c in curves]
        series = {n: (xs, [c["acc"][j] for c in curves]) for j, n in enumerate(names)}
        series["mean"] = (xs, [sum(c["acc"]) / len(c["acc"]) for c in curves])
        paths.append(
            line_plot(
                out / "curves.png",
                series,
                "optimizer steps (all tasks)",
                results.get("metric", "accuracy"),
                title=f"{method}: accuracy on every task during training",
            )
        )
    barrier = results.get("barrier") or []
    if barrier:  # mean accuracy on the tasks seen so far along theta_o -> theta, one line per boundary
        series = {
            f"after {names[b['task']]}": (b["alpha"], [sum(a) / len(a) for a in b["acc"]]) for b in barrier
        }
        paths.append(
            line_plot(
                out / "barrier.png",
                series,
                "a: theta = (1 - a) theta_o + a theta_task_end",
                f"mean {results.get('metric', 'accuracy')} on tasks seen",
                title=f"{method}: the line from each task's start to its end",
            )
        )
    return paths
