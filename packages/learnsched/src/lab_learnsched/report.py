"""The scheduling part of `lab report` (entry point `lab.reports: sched`): verdicts of `lab sched bench`
runs (learned agent vs the best hand-written rule, paired per episode), reads against buffer size with
intervals, learning curves against the heuristics, and the gap to the exact optimum."""

from __future__ import annotations

import math
from pathlib import Path

from lab_shared.metrics import read_metrics
from lab_shared.report import (
    Figure,
    Section,
    Verdict,
    integer,
    interval,
    mean_ci,
    pct,
    pyplot,
    save_figure,
    sig,
    t95,
)
from lab_shared.runs import Run

TITLE = "Learned query scheduling (Zhang et al. 2020, buffer-pool-aware scheduling)"
ORDER = 3  # its place on the page: SFA, chess, scheduling (as in the README)


def _cfg(run: Run) -> dict:
    return run.config if isinstance(run.config, dict) else {}


def _is_bench(run: Run) -> bool:
    return isinstance(run.results, dict) and "main" in run.results and "buffer_sweep" in run.results


def _is_families(run: Run) -> bool:
    r = run.results if isinstance(run.results, dict) else {}
    return {"families", "instances", "heuristics"} <= set(_cfg(run)) and "summary" in r


def _is_train(run: Run) -> bool:
    c = _cfg(run)
    return str(c.get("agent", "")) in ("ppo", "dqn", "setnet") and "steps" in c


def owns(run: Run) -> bool:
    c = _cfg(run)
    return _is_bench(run) or _is_families(run) or _is_train(run) or ("buffer_sweep" in c and "policies" in c)


def _ci_of_std(mean: float, std: float, n: int) -> tuple[float, float]:
    """95% t-interval from a population std (numpy's default) over n paired episodes."""
    if n < 2 or std is None or not math.isfinite(std):
        return math.nan, math.nan
    h = t95(n - 1) * std / math.sqrt(n - 1)
    return mean - h, mean + h


def _agent_path(spec: str) -> str:
    return spec.split(":", 1)[1] if ":" in spec else ""


def verdicts(bench: Run) -> list[Verdict]:
    """One verdict per (workload, agent): fewer reads than the best heuristic chosen on validation?"""
    res, out = bench.results, []
    best = {b["workload"]: b["best"] for b in res.get("best_heuristic") or []}
    for r in res["main"]:
        pol = str(r.get("policy", ""))
        if not pol.startswith("agent") or "vs_best" not in r:
            continue
        n = int(r.get("episodes") or 0)
        lo, hi = _ci_of_std(r["vs_best"], r.get("vs_best_std"), n)
        answer = "yes" if hi < 0 else ("no" if lo > 0 else "not resolved")
        if answer == "not resolved" and not math.isnan(lo):
            answer = "no, not distinguishable"
        ref = next((x for x in res["main"] if x["workload"] == r["workload"] and x["policy"] == best.get(r["workload"])), None)  # fmt: skip
        detail = (
            f"{pct(r['vs_best'])} reads (95% CI {pct(lo)} .. {pct(hi)}) over {n} held-out episodes, fewer "
            f"reads in {pct(r.get('wins_vs_best'), 0, False)} of them: {integer(r['reads'], True)} vs "
            f"{integer(ref['reads'], True) if ref else 'n/a'} reads an episode."
        )
        if "gap_to_planner" in r:
            detail += f" A planner reads {pct(-r['gap_to_planner'])} relative to the agent."
        out.append(
            Verdict(
                f"Does the learned agent read less than the best hand-written rule ({best.get(r['workload'], '?')}, "
                f"chosen on validation) on '{r['workload']}'?",
                answer,
                detail,
            )
        )
    return out


def family_verdicts(run: Run, trains: list[Run] = ()) -> list[Verdict]:
    """`lab sched bench-families`: each agent over every held-out family together (the 'all' rows)."""
    out = []
    rows = [
        r for r in run.results["summary"] if r["family"] == "all" and str(r["policy"]).startswith("agent")
    ]
    fams = list(_cfg(run).get("families") or [])
    for r in rows:
        lo, hi = r.get("vs_best_lo", math.nan), r.get("vs_best_hi", math.nan)
        answer = "yes" if hi < 0 else ("no" if lo > 0 else "no, not distinguishable")
        planner = next(
            (x for x in run.results["summary"] if x["family"] == "all" and x["policy"] == "planner"), None
        )
        detail = (
            f"{pct(r['vs_best'])} reads (95% bootstrap interval {pct(lo)} .. {pct(hi)}) over {r['episodes']} "
            f"episodes of {_seen(r['policy'], fams, list(trains))} ({', '.join(fams)}); fewer reads in {pct(r.get('wins'), 0, False)}, "
            f"ties in {pct(r.get('ties'), 0, False)}."
        )
        if planner is not None:
            detail += f" A planner shows the room: {pct(planner['vs_best'])} reads."
        out.append(Verdict(f"Does one learned agent read less than the best hand-written rule on "
                           f"{_seen(r['policy'], fams, list(trains))}?", answer, detail))  # fmt: skip
    return out


def _trained_families(spec: str, trains: list[Run]) -> list[str] | None:
    """The families the agent of `spec` trained on: from its run folder's config when it is on disk, else
    from a training run of this report whose checkpoints live in the same run folder name."""
    p = Path(_agent_path(spec))
    for cand in (p, p.parent, p.parent.parent):
        if _cfg_of(cand).get("families"):
            return list(_cfg_of(cand)["families"])
    for t in trains:
        folders = {t.path.name} | {
            Path(str(t.results.get(k))).parent.parent.name
            for k in ("checkpoint", "best_checkpoint")
            if t.results.get(k)
        }
        if any(f and f in p.parts for f in folders) and _cfg(t).get("families"):
            return list(_cfg(t)["families"])
    return None


def _seen(spec: str, fams: list[str], trains: list[Run]) -> str:
    """Whether the agent trained on these families (when its training run can be found)."""
    trained = _trained_families(spec, trains)
    if not trained:
        return "workload families"
    if not set(fams) & set(trained):
        return "workload families it never trained on"
    return "the workload families it trained on" if set(fams) <= set(trained) else "workload families"


def family_figure(run: Run, path: Path) -> Figure | None:
    """Reads relative to the best heuristic per family, each policy with its 95% bootstrap interval."""
    rows = [r for r in run.results["summary"] if "vs_best" in r]
    if not rows:
        return None
    fams = list(dict.fromkeys(r["family"] for r in rows))
    pols = [p for p in dict.fromkeys(r["policy"] for r in rows) if p not in ("fifo",)]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    w = 0.8 / max(1, len(pols))
    for i, pol in enumerate(pols):
        xs, ys, lo, hi = [], [], [], []
        for j, fam in enumerate(fams):
            r = next((x for x in rows if x["family"] == fam and x["policy"] == pol), None)
            if r is None:
                continue
            xs.append(j + (i - (len(pols) - 1) / 2) * w)
            ys.append(100 * r["vs_best"])
            lo.append(100 * (r["vs_best"] - r.get("vs_best_lo", r["vs_best"])))
            hi.append(100 * (r.get("vs_best_hi", r["vs_best"]) - r["vs_best"]))
        ax.bar(
            xs,
            ys,
            width=w,
            yerr=[lo, hi],
            capsize=2,
            label=_short(pol).replace("guarded:agent", "guarded agent"),
        )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(fams)))
    ax.set_xticklabels(fams)
    ax.set_ylabel("reads relative to the best heuristic (%)")
    ax.set_title("Workload families (negative = fewer reads than the best rule)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4, frameon=False)
    save_figure(fig, path)
    return Figure(path, "Reads of each policy relative to the best hand-written rule (chosen per instance on "
                        "validation episodes), per family and over all; 95% bootstrap intervals; "
                        "fifo is left out (far above).", wide=True)  # fmt: skip


def reads_vs_buffer(bench: Run, path: Path) -> Figure | None:
    """Left: reads against pool size, 95% intervals over episodes; right: reads relative to greedy, paired."""
    rows = [r for r in bench.results.get("buffer_sweep") or [] if "reads" in r]
    if not rows:
        return None
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    workloads = sorted({r["workload"] for r in rows})
    wl = workloads[0]
    mine = [r for r in rows if r["workload"] == wl]
    greedy = {r["buffer"]: r.get("_reads") for r in mine if r["policy"] == "greedy"}
    markers = "osD^v<>"
    for i, pol in enumerate(dict.fromkeys(r["policy"] for r in mine)):
        rs = sorted((r for r in mine if r["policy"] == pol), key=lambda r: r["buffer"])
        xs = [r["buffer"] for r in rs]
        ys = [r["reads"] for r in rs]
        err = [t95(r["episodes"] - 1) * r["reads_std"] / math.sqrt(max(1, r["episodes"] - 1)) for r in rs]
        style = dict(marker=markers[i % len(markers)], ms=5, capsize=3, label=_short(pol))
        ax.errorbar(xs, ys, yerr=err, **style)
        rel, lo, hi = [], [], []
        for r in rs:
            g, x = greedy.get(r["buffer"]), r.get("_reads")
            if not g or not x:
                rel.append(math.nan), lo.append(0), hi.append(0)
                continue
            m, a, b = mean_ci([(xi - gi) / max(gi, 1) for xi, gi in zip(x, g)])
            rel.append(100 * m)
            lo.append(0 if math.isnan(a) else 100 * (m - a))
            hi.append(0 if math.isnan(b) else 100 * (b - m))
        bx.errorbar(xs, rel, yerr=[lo, hi], **style)
    for a in (ax, bx):
        a.set_xscale("log")
        a.set_xticks(sorted({r["buffer"] for r in mine}))
        a.set_xticklabels([str(b) for b in sorted({r["buffer"] for r in mine})])
        a.minorticks_off()
        a.set_xlabel("buffer pool size (pages)")
        a.grid(alpha=0.3)
    ax.set_ylabel("reads per episode")
    ax.set_title(f"Reads against pool size ('{wl}')")
    bx.axhline(0, color="k", lw=0.8)
    bx.set_ylabel("reads relative to greedy (%)")
    bx.set_title("Paired per episode (negative = fewer reads)")
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="lower center", ncol=4, frameon=False,
               bbox_to_anchor=(0.5, -0.11))  # fmt: skip
    save_figure(fig, path)
    n = mine[0].get("episodes")
    return Figure(path, f"Reads against buffer pool size on '{wl}', mean of {n} test episodes with 95% "
                        "t-intervals (left; they hold the spread between episodes) and reads relative to "
                        "greedy-most-cached on the same episodes (right).", wide=True)  # fmt: skip


def _short(pol: str) -> str:
    if pol.startswith("agent"):
        return pol.split(":", 1)[0] + " (learned)"
    if pol.startswith("guarded:agent"):
        return "guarded agent (safety net)"
    return pol


def _name(pol: str) -> str:
    """A policy for tables: an agent's checkpoint path shortened to its run folder."""
    head, sep, path = str(pol).rpartition("agent:")
    if not sep or "/" not in path:
        return str(pol)
    parts = [q for q in Path(path).parts if q not in ("best",) and not q.startswith("step-")]
    return f"{head}agent:{parts[-1] if parts else path}"


def _smooth(points: list[tuple[float, float]], n: int = 50) -> list[tuple[float, float]]:
    """A running mean over about len/n points (train episodes are noisy)."""
    k = max(1, len(points) // n)
    return [(points[i][0], sum(v for _, v in points[max(0, i - k + 1) : i + 1]) / len(points[max(0, i - k + 1) : i + 1]))
            for i in range(len(points))]  # fmt: skip


def learning_curve(train_path: Path, bench: Run | None, path: Path) -> Figure | None:
    """Validation against steps with the heuristics as lines: the hit ratio with greedy (validation) and the
    best heuristic (the bench's test episodes), or, for agents validated against the best heuristic
    (setnet), their validation reads relative to it."""
    m = train_path / "metrics.jsonl"
    if not m.is_file():
        return None
    rows = read_metrics(m)
    vb = [(r["step"], 100 * r["val_vs_best"]) for r in rows if "val_vs_best" in r]
    va = [(r["step"], r["val_hit_ratio"]) for r in rows if "val_hit_ratio" in r]
    tr = [(r["step"], r["train_hit_ratio"]) for r in rows if "train_hit_ratio" in r]
    if not (vb or va or tr):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    cap = ""
    if vb:
        ax.plot(*zip(*vb), color="C0", marker="o", ms=4, label="validation reads vs the best heuristic")
        ax.axhline(0, color="C3", ls=":", lw=2, label="best heuristic (per instance, validation)")
        ax.set_ylabel("reads relative to the best heuristic (%)")
        cap = " Below the dotted line the agent reads less than the best rule on validation episodes."
    else:
        if tr:
            ax.plot(*zip(*_smooth(tr)), color="C0", alpha=0.45, lw=1, label="train episodes (running mean)")
        if va:
            ax.plot(*zip(*va), color="C0", marker="o", ms=4, label="validation episodes (argmax)")
        gr = [r["val_greedy_hit_ratio"] for r in rows if "val_greedy_hit_ratio" in r]
        if gr:
            ax.axhline(gr[-1], color="C1", ls="--", label="greedy-most-cached (validation)")
        if bench is not None and _is_bench(bench):
            best = {b["workload"]: b["best"] for b in bench.results.get("best_heuristic") or []}
            wl = _cfg_of(train_path).get("workload") or "default"
            ref = next(
                (r for r in bench.results["main"] if r["workload"] == wl and r["policy"] == best.get(wl)),
                None,
            )
            if ref is not None:
                ax.axhline(
                    ref["hit_ratio"], color="C3", ls=":", lw=2, label=f"best heuristic {best[wl]} (test)"
                )
                cap = f" The dotted line is the best hand-written rule ({best[wl]}) on the bench's test episodes."
        ax.set_ylabel("buffer hit ratio")
    ax.set_xlabel("environment steps")
    ax.set_title("Learning curve against the heuristics")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    save_figure(fig, path)
    return Figure(path, f"The learned agent during training ({train_path.name}).{cap}")


def _cfg_of(path: Path) -> dict:
    import json

    try:
        c = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return c if isinstance(c, dict) else {}


def main_table(bench: Run) -> list[dict]:
    out = []
    for r in bench.results["main"]:
        n = int(r.get("episodes") or 0)
        lo, hi = _ci_of_std(r.get("reads", math.nan), r.get("reads_std", math.nan), n)
        out.append({
            "workload": r["workload"], "policy": _name(r["policy"]), "hit ratio": sig(r.get("hit_ratio")),
            "reads": integer(r.get("reads"), True), "95% CI": interval(lo, hi, lambda v: integer(v, True)),
            "vs best heuristic": pct(r.get("vs_best")) if "vs_best" in r else "",
            "fewer reads than best": pct(r.get("wins_vs_best"), 0, False) if "wins_vs_best" in r else "",
            "above planner": pct(r.get("gap_to_planner")) if "gap_to_planner" in r else "",
        })  # fmt: skip
    return out


def exact_table(bench: Run) -> tuple[list[dict], list[str]]:
    """The exact-optimum rows; a pool that holds every page of the batches (all gaps 0) becomes a note."""
    rows, notes = bench.results.get("exact") or [], []
    keep = []
    for buf in dict.fromkeys(r["buffer"] for r in rows):
        mine = [r for r in rows if r["buffer"] == buf]
        if all(r.get("gap_opt", 0) == 0 for r in mine):
            notes.append(f"At a pool of {buf} pages every order of the 8-query batches is optimal (the batch "
                         "fits in the pool), so that pool is left out of the table.")  # fmt: skip
            continue
        keep += [{
            "pool": r["buffer"], "policy": _name(r["policy"]), "reads": integer(r["reads"]),
            "optimum": integer(r["optimum_reads"]), "gap to optimum": pct(r.get("gap_opt")),
            "worst batch": pct(r.get("gap_opt_max")), "at optimum": pct(r.get("at_optimum"), 0, False),
        } for r in mine]  # fmt: skip
    return keep, notes


def section(runs: list[Run], fig_dir: Path) -> Section:
    benches = [r for r in runs if _is_bench(r)]
    trains = [r for r in runs if _is_train(r) and not _is_bench(r) and not _is_families(r)]
    sec = Section(TITLE)
    texts, drawn = [], set()
    for b in benches:
        tag = f" ({b.name})" if len(benches) > 1 else ""
        sec.verdicts += verdicts(b)
        fig = reads_vs_buffer(b, fig_dir / f"reads_vs_buffer-{b.name}.png")
        if fig:
            sec.images.append(fig)
        for spec in _cfg(b).get("agents") or []:
            p = Path(_agent_path(spec))
            for cand in (p, p.parent, p.parent.parent):
                if (cand / "metrics.jsonl").is_file():
                    f = learning_curve(cand, b, fig_dir / f"learning_curve-{cand.name}.png")
                    if f:
                        sec.images.append(f)
                        drawn.add(str(cand.resolve()))
                    break
        sec.tables.append((f"Policies on held-out test episodes{tag}", main_table(b)))
        exact, notes = exact_table(b)
        texts += notes
        if exact:
            sec.tables.append((f"Gap to the exact optimum on batches of 8 queries{tag}", exact))
    for t in trains:
        res = t.results
        if "val_vs_best" in res:
            texts.append(
                f"{t.name}: {str(_cfg(t).get('agent', '')).upper()} trained {integer(res.get('steps'), True)} "
                f"steps in {integer(res.get('train_seconds'))} s; best validation reads vs the best heuristic "
                f"{pct(res['val_vs_best'])} (final {pct(res.get('val_vs_best_final'))})."
            )
        else:
            texts.append(
                f"{t.name}: {str(_cfg(t).get('agent', '')).upper()} trained {integer(res.get('steps'), True)} steps "
                f"in {integer(res.get('train_seconds'))} s; validation hit ratio {sig(res.get('val_hit_ratio'))} vs "
                f"greedy-most-cached {sig(res.get('val_greedy_hit_ratio'))}."
            )
        if str(t.path.resolve()) not in drawn:
            f = learning_curve(
                t.path, benches[0] if benches else None, fig_dir / f"learning_curve-{t.name}.png"
            )
            if f:
                sec.images.append(f)
    for f in [r for r in runs if _is_families(r)]:
        sec.verdicts += family_verdicts(f, [r for r in runs if _is_train(r)])
        fig = family_figure(f, fig_dir / f"families-{f.name}.png")
        if fig:
            sec.images.append(fig)
        rows = [r for r in f.results["summary"] if r["family"] == "all"]
        sec.tables.append((f"All families of {f.name} together", [{
            "policy": _name(r["policy"]), "episodes": r["episodes"], "reads": integer(r["reads"], True),
            "vs best heuristic": pct(r.get("vs_best")),
            "95% interval": f"{pct(r.get('vs_best_lo'))} .. {pct(r.get('vs_best_hi'))}",
            "fewer reads": pct(r.get("wins"), 0, False), "ties": pct(r.get("ties"), 0, False),
        } for r in rows]))  # fmt: skip
        benches.append(f)  # counts as a verdict source below
    if not benches:
        texts.append("No `lab sched bench` run in this report: no verdict against the heuristics.")
    sec.text = "\n\n".join(
        ["Reads are pages read from disk (fewer is better); every policy runs the same held-out episodes, "
         "so differences are paired per episode. Intervals are 95% t-intervals over episodes."] + texts
    )  # fmt: skip
    return sec
