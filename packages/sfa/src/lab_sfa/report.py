"""The SFA part of `lab report` (entry point `lab.reports: sfa`): the paper's claims as verdicts (SFA
against sequential fine-tuning, L2/EWC and replay), ACC bars with 95% error bars, accuracy curves with task
boundaries and accuracy-matrix heat maps, over `lab sfa run` folders (results.json of `run_continual`).

Intervals: over seeds (paired per seed) when a method has two or more; with one seed, the test-set sampling
interval of ACC (binomial per task, from the sequence's n_test), which covers only the evaluation noise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from lab_shared.report import (
    Figure,
    Section,
    Verdict,
    fixed,
    interval,
    mean_ci,
    pyplot,
    save_figure,
    signed,
)
from lab_shared.runs import Run

TITLE = "SFA: continual fine-tuning with averaging (Kleiman et al. 2025, Soup to go)"
ORDER = 1  # its place on the page: SFA, chess, scheduling (as in the README)

# (claim, baseline, kind): "beats" needs the interval of SFA - baseline above 0; "matches" needs it above
# -MARGIN (SFA no worse than the baseline by more than MARGIN ACC)
CLAIMS = (
    ("Does SFA forget less than sequential fine-tuning (higher ACC than seq)?", "seq", "beats"),
    ("Does SFA match or beat L2 regularisation?", "l2", "matches"),
    ("Does SFA match or beat EWC?", "ewc", "matches"),
    ("Does SFA match replay without storing any data?", "replay", "matches"),
)
MARGIN = 0.01


def owns(run: Run) -> bool:
    c = run.config if isinstance(run.config, dict) else {}
    r = run.results if isinstance(run.results, dict) else {}
    if isinstance(c.get("base"), dict) and (run.path / "summary.json").is_file():
        return True  # benchmarks/sfa_paper.py: the paper-regime claims
    return isinstance(c.get("method"), dict) and isinstance(c.get("sequence"), dict) and ("R" in r or not r)


def results_of(run: Run) -> dict | None:
    """The paper-regime benchmark keeps its results in summary.json (tables and claims)."""
    import json

    f = run.path / "summary.json"
    if not f.is_file():
        return None
    data = json.loads(f.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) and "claims" in data else None


def _answer(overall: str) -> str:
    return {"holds": "yes", "does not hold": "no", "depends": "it depends on the sequence"}.get(
        overall, overall
    )


def paper_verdicts(run: Run) -> list[Verdict]:
    """One verdict per claim of benchmarks/sfa_paper.py: SFA minus the baseline per stage, paired per seed."""
    res, out = run.results, []
    titles = {k: t["title"] for k, t in (res.get("tables") or {}).items()}
    for claim, per in res["claims"].items():
        stages = []
        for stage, v in per.items():
            if not isinstance(v, dict):
                continue
            lo, hi = min(v["lo"], v["t_lo"]), max(v["hi"], v["t_hi"])
            stages.append(f"{titles.get(stage, stage)}: {signed(fixed(v['diff']))} {interval(lo, hi, fixed)} "
                          f"({v['seeds']} seeds, {v['verdict']})")  # fmt: skip
        answer = _answer(str(per.get("overall", "")))
        diffs = [v["diff"] for v in per.values() if isinstance(v, dict)]
        if "~" in claim and answer == "no" and diffs and all(d > 0 for d in diffs):
            answer = "no: SFA is better"
        out.append(Verdict(f"{claim}?", answer,
                           "ACC difference, 95% interval (the wider of the bootstrap and the paired t): " + "; ".join(stages) + "."))  # fmt: skip
    return out


def paper_bars(run: Run, path: Path) -> Figure:
    """ACC per method and stage (tuned points), error bars: 95% t-intervals over seeds."""
    tables = run.results["tables"]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(3.6 * len(tables) + 1, 4.4), sharey=True, squeeze=False)
    for ax, t in zip(axes[0], tables.values()):
        rows = t["rows"]
        names = [r["method"].replace("pretrained, no fine-tuning", "theta_pre") for r in rows]
        ax.bar(range(len(rows)), [r["acc"] for r in rows], yerr=[r.get("acc_ci") or 0 for r in rows], capsize=3,
               color=["C3" if n.startswith("sfa") else "C0" for n in names])  # fmt: skip
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_title(t["title"], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        lo = min(r["acc"] for r in rows)
        ax.set_ylim(max(0, lo - 0.1), 1)
    axes[0][0].set_ylabel("ACC (final mean accuracy)")
    fig.suptitle(
        "Paper regime: ACC of every tuned method (SFA in red), 95% intervals over seeds", fontsize=10
    )
    save_figure(fig, path)
    return Figure(path, "ACC of each method at its tuned point, per task order and the 10-task sequence; error "
                        "bars: 95% t-intervals over seeds (benchmarks/sfa_paper.py).", wide=True)  # fmt: skip


def paper_section(runs: list[Run], fig_dir: Path, sec: Section) -> None:
    for run in runs:
        sec.verdicts += paper_verdicts(run)
        sec.images.append(paper_bars(run, fig_dir / f"paper-acc-{run.name}.png"))
        t = next(iter(run.results["tables"].values()))
        sec.tables.append((f"{t['title']} ({run.name})", [{
            "method": r["method"], "point": r.get("point", ""), "seeds": r.get("seeds"),
            "ACC": fixed(r["acc"]), "95% interval": interval(r["acc"] - r.get("acc_ci", 0), r["acc"] + r.get("acc_ci", 0), fixed),
            "BWT": signed(fixed(r["bwt"])) if "bwt" in r else "", "plasticity": fixed(r["plasticity"]) if "plasticity" in r else "",
            "extra param copies": _num(r.get("param_copies")) if "param_copies" in r else "",
        } for r in t["rows"]]))  # fmt: skip


def _num(v: float | None) -> str:
    """Counts as integers, other values to 3 significant digits."""
    if v is None:
        return "n/a"
    return str(int(v)) if float(v).is_integer() else f"{float(v):g}"


def label(run: Run) -> str:
    """The method and the parameters set for it, e.g. "sfa (beta=0.1, p=0.5)"."""
    m = run.config.get("method") or {}
    name = str(m.get("name", run.results.get("method", "?")))
    given = {k: v for k, v in m.items() if k != "name" and v is not None}
    keys = {"sfa": ("beta", "p"), "l2": ("lam",), "ewc": ("lam",), "replay": ("buffer_size",),
            "wise_ft": ("alpha",), "ties": ("k", "lam"), "task_arithmetic": ("lam",)}.get(name, ())  # fmt: skip
    shown = ", ".join(f"{k}={_num(given[k])}" for k in keys if k in given)
    return f"{name} ({shown})" if shown else name


def acc_se(run: Run) -> float | None:
    """Standard error of ACC from the test sets' size (binomial per task), or None when unknown."""
    n = (run.config.get("sequence") or {}).get("n_test")
    final = run.results["R"][-1]
    if not n or run.results.get("metric", "accuracy") not in ("accuracy", "acc"):
        return None
    return math.sqrt(sum(a * (1 - a) / n for a in final)) / len(final)


METHOD_ORDER = ("seq", "sfa", "l2", "ewc", "replay", "wise_ft", "task_arithmetic", "ties", "multitask")


def _groups(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs by method label, in the paper's order (seq first, SFA next, then the baselines)."""
    out: dict[str, list[Run]] = defaultdict(list)
    for r in sorted(runs, key=lambda r: r.results.get("seed", 0)):
        out[label(r)].append(r)
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return dict(sorted(out.items(), key=lambda kv: (rank.get(kv[0].split(" ")[0], len(METHOD_ORDER)), kv[0])))


def acc_interval(rs: list[Run]) -> tuple[float, float, float, str]:
    """ACC mean and 95% interval of a method's runs, and what the interval covers."""
    accs = [r.results["acc"] for r in rs]
    if len(accs) >= 2:
        m, lo, hi = mean_ci(accs)
        return m, lo, hi, f"{len(accs)} seeds"
    se = acc_se(rs[0])
    if se is None:
        return accs[0], math.nan, math.nan, "1 seed"
    return accs[0], accs[0] - 1.96 * se, accs[0] + 1.96 * se, "1 seed, test-set sampling"


def diff_interval(a: list[Run], b: list[Run]) -> tuple[float, float, float, str] | None:
    """SFA - baseline ACC: paired per seed with 2+ common seeds, else from both test-set intervals."""
    sa = {r.results.get("seed"): r.results["acc"] for r in a}
    sb = {r.results.get("seed"): r.results["acc"] for r in b}
    common = sorted(set(sa) & set(sb), key=str)
    if len(common) >= 2:
        m, lo, hi = mean_ci([sa[s] - sb[s] for s in common])
        return m, lo, hi, f"paired over {len(common)} seeds"
    ea, eb = acc_se(a[0]), acc_se(b[0])
    d = a[0].results["acc"] - b[0].results["acc"]
    if ea is None or eb is None:
        return d, math.nan, math.nan, "1 seed, no interval"
    h = 1.96 * math.hypot(ea, eb)
    return d, d - h, d + h, "1 seed, test-set sampling only"


def verdicts(groups: dict[str, list[Run]]) -> list[Verdict]:
    by_method: dict[str, tuple[str, list[Run]]] = {}
    for lab_, rs in groups.items():
        by_method.setdefault(lab_.split(" ")[0], (lab_, rs))
    if "sfa" not in by_method:
        return []
    sfa_label, sfa = by_method["sfa"]
    out = []
    for claim, base, kind in CLAIMS:
        if base not in by_method:
            continue
        base_label, rs = by_method[base]
        d, lo, hi, how = diff_interval(sfa, rs)
        if math.isnan(lo):
            answer = "not resolved (no interval)"
        elif kind == "beats":
            answer = "yes" if lo > 0 else ("no" if hi < 0 else "not resolved (the interval covers 0)")
        else:
            answer = "yes" if lo > -MARGIN else ("no" if hi < -MARGIN else "not resolved")
        fa, fb = sfa[0].results["acc"], rs[0].results["acc"]
        detail = (
            f"ACC {sfa_label} minus {base_label}: {signed(fixed(d))} (95% interval {interval(lo, hi, fixed)}, {how}); "
            f"ACC {fixed(fa)} vs {fixed(fb)}"
            + (f"; 'match' allows {MARGIN} ACC." if kind == "matches" else ".")
        )
        out.append(Verdict(claim, answer, detail))
    return out


def acc_bars(groups: dict[str, list[Run]], path: Path) -> Figure:
    plt = pyplot()
    names = list(groups)
    stats = [acc_interval(rs) for rs in groups.values()]
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(max(7.5, 1.7 * len(names) + 3), 4.2), gridspec_kw={"wspace": 0.35}
    )
    xs = range(len(names))
    err = [[0 if math.isnan(s[1]) else s[0] - s[1] for s in stats],
           [0 if math.isnan(s[2]) else s[2] - s[0] for s in stats]]  # fmt: skip
    colors = [f"C{i % 10}" for i in xs]
    ax.bar(xs, [s[0] for s in stats], yerr=err, capsize=4, color=colors)
    for x, s in zip(xs, stats):
        ax.text(x, s[0] / 2, fixed(s[0]), ha="center", va="center", color="w", fontsize=9)
    ax.set_ylabel("ACC (final mean accuracy over tasks)")
    ax.set_title("Final average accuracy (ACC), 95% intervals")
    bwt = [sum(r.results["bwt"] for r in rs) / len(rs) for rs in groups.values()]
    bx.bar(xs, bwt, color=colors)
    bx.axhline(0, color="k", lw=0.8)
    bx.set_ylabel("BWT (negative = forgetting)")
    bx.set_title("Backward transfer (BWT)")
    for a in (ax, bx):
        a.set_xticks(list(xs))
        a.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
        a.grid(axis="y", alpha=0.3)
    save_figure(fig, path)
    how = sorted({s[3] for s in stats})
    return Figure(path, f"ACC and BWT per method; error bars: 95% intervals ({'; '.join(how)}).", wide=True)


def curves_plot(run: Run, path: Path) -> Figure | None:
    res = run.results
    curves, names = res.get("curves") or [], res["tasks"]
    if not curves:
        return None
    T = (run.config.get("trainer") or {}).get("max_steps") or 0
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    xs = [c["global_step"] for c in curves]
    for j, n in enumerate(names):
        ax.plot(xs, [c["acc"][j] for c in curves], marker="o", ms=2.5, lw=1.2, label=n)
    ax.plot(xs, [sum(c["acc"]) / len(c["acc"]) for c in curves], color="k", lw=2, label="mean")
    top = max(max(c["acc"]) for c in curves)
    for k in range(len(names)):
        if T and k > 0:
            ax.axvline(k * T, color="grey", ls="--", lw=0.8)
        if T:
            ax.text((k + 0.5) * T, top * 1.02, f"task {k + 1}", ha="center", fontsize=8, color="#444")
    ax.set_ylim(top=top * 1.08)
    ax.set_xlabel("optimizer steps (all tasks; dashed lines: task boundaries)")
    ax.set_ylabel(f"test {res.get('metric', 'accuracy')}")
    ax.set_title(f"{label(run)}: accuracy on every task during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, path)
    return Figure(path, f"Accuracy on each task of {label(run)} (seed {res.get('seed')}) while it trains "
                        "through the sequence; each task starts at a dashed line.")  # fmt: skip


def heatmaps(groups: dict[str, list[Run]], path: Path) -> Figure:
    import numpy as np

    plt = pyplot()
    n = len(groups)
    cols = min(n, 2)
    rows_ = math.ceil(n / cols)
    first = next(iter(groups.values()))[0].results
    k = len(first["tasks"])
    fig, axes = plt.subplots(
        rows_, cols, figsize=(2.2 + 1.0 * k * cols, 0.8 + 0.75 * k * rows_), squeeze=False
    )
    im = None
    for ax, (name, rs) in zip(axes.flat, groups.items()):
        m = np.asarray(rs[0].results["R"], dtype=float)
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="w" if m[i, j] < 0.6 else "k")  # fmt: skip
        tasks = rs[0].results["tasks"]
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([f"T{j + 1}" for j in range(len(tasks))], fontsize=7)
        ax.set_yticks(range(len(tasks)))
        ax.set_yticklabels([f"after T{j + 1}" for j in range(len(tasks))], fontsize=7)
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=list(axes.flat), shrink=0.8, label="test accuracy")
    save_figure(fig, path)
    names = ", ".join(f"T{j + 1} = {t}" for j, t in enumerate(first["tasks"]))
    return Figure(path, f"Accuracy matrices R[i][j]: accuracy on task j after training task i ({names}); "
                        "the first seed of each method.")  # fmt: skip


def _mean_of(rs: list[Run]):
    return lambda key: sum(r.results.get(key) or 0 for r in rs) / len(rs)


def section(runs: list[Run], fig_dir: Path) -> Section:
    paper = [r for r in runs if "claims" in r.results]
    runs = [r for r in runs if "R" in r.results]
    sec = Section(TITLE)
    paper_section(paper, fig_dir, sec)
    if not runs:
        sec.text = ("The paper's claims, tested in the paper's regime (pretraining covers every task's domain; every "
                    "method tuned on its own grid); SFA minus each baseline, paired per seed.")  # fmt: skip
        return sec
    groups = _groups(runs)
    sec.verdicts += verdicts(groups)
    sec.images.append(acc_bars(groups, fig_dir / "acc_bars.png"))
    for lab_, rs in groups.items():
        f = curves_plot(rs[0], fig_dir / f"curves-{lab_.split(' ')[0]}.png")
        if f:
            sec.images.append(f)
    sec.images.append(heatmaps(groups, fig_dir / "accuracy_matrices.png"))
    rows = []
    for lab_, rs in groups.items():
        m, lo, hi, how = acc_interval(rs)
        mean = _mean_of(rs)
        rows.append({
            "method": lab_, "seeds": len(rs), "ACC": fixed(m), "95% interval": interval(lo, hi, fixed),
            "BWT": signed(fixed(mean("bwt"))), "forgetting": fixed(mean("forgetting")),
            "plasticity": fixed(mean("plasticity")),
            "extra param copies": _num(rs[0].results.get("max_extra_param_copies")),
            "stored examples": _num(rs[0].results.get("max_stored_examples")),
        })  # fmt: skip
    sec.tables.append(("Methods (ACC = final mean accuracy; BWT = backward transfer)", rows))
    first = runs[0].results
    cfg = runs[0].config
    steps = (cfg.get("trainer") or {}).get("max_steps")
    sec.text = (
        f"Sequence '{first['sequence']}': {' -> '.join(first['tasks'])}; {steps} optimizer steps per task, "
        f"{len(runs)} run(s). ACC is the mean accuracy on every task after the last one; BWT the mean change "
        "on earlier tasks since each was learned (negative = forgetting). The paper's claims: SFA beats "
        "sequential fine-tuning, matches or beats L2/EWC and merging, and comes close to replay without "
        "storing data."
    )
    return sec
