"""Collect the issue-13 TPC-H pg bench runs (one per access x clients x pool) into this folder and print the
doc tables: per-stream reads and wall times, paired 95% bootstrap intervals over the 8 streams.

usage: .venv/bin/python docs/results/sched-pg-tpch/issue13/combine.py [--write]   (W=/tmp/tpch13b by default)
"""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from lab_learnsched.familybench import paired_bootstrap

W = Path(os.environ.get("W", "/tmp/tpch13b"))
OUT = Path(__file__).resolve().parent
PREV = Path("/tmp/tpch13/runs/sched-bench")  # last session's exact-1 run (other load), for reproducibility
KEYS = ["exact-1-16MB", "estimated-1-16MB", "exact-4-16MB", "estimated-4-16MB", "exact-1-64MB", "exact-1-4MB",
        "exact-1-16MB-ref", "estimated-1-16MB-ref"]  # -ref: 1 client, fifo/greedy/planner, in the 4-client job
B = 4000


def run_dir(key: str) -> Path | None:
    ds = sorted((W / f"runs-{key}" / "sched-bench").glob("postgres-*"))
    return ds[0] if ds and (ds[0] / "results.json").is_file() else None


def per_stream(d: Path) -> dict:
    """{policy label: {"reads": [...], "stream_s": [...]}} of the main (test) episodes."""
    res = json.loads((d / "results.json").read_text())
    labels: list[str] = []
    for s in res["schedules"]:
        if s["set"] == "main" and s["policy"] not in labels:
            labels.append(s["policy"])
    out = {}
    for k, lab in enumerate(labels):
        eps = sorted((d / "episodes").glob(f"main-*-{k:02d}.json"))
        recs = [json.loads(p.read_text()) for p in eps]
        out[lab] = {
            "reads": [int(sum(r["reads"] for r in e["runs"])) for e in recs],
            "stream_s": [e["stream_ms"] / 1000 for e in recs],
            "in_flight": [sum(r["wall_ms"] for r in e["runs"]) / e["stream_ms"] for e in recs],
            "orders": [e["order"] for e in recs],
        }
        sched = [s["measured"] for s in res["schedules"] if s["set"] == "main" and s["policy"] == lab]
        assert sched == out[lab]["reads"], (d, lab)
    return out


def guarded(res: dict) -> str:
    s = res.get("safety") or []
    return s[0]["agent"] if s and s[0]["passed"] else res["best_heuristic"]["best"]


def boot_ratio(num_a, num_b, den_a, den_b, seed=0):
    """(mean(num_a) - mean(num_b)) / (mean(den_a) - mean(den_b)) with a paired percentile interval."""
    a, b, c, e = (np.asarray(x, float) for x in (num_a, num_b, den_a, den_b))
    idx = np.random.default_rng(seed).integers(0, len(a), size=(B, len(a)))
    den = c[idx].mean(1) - e[idx].mean(1)
    ok = np.abs(den) > 0
    r = (a[idx].mean(1) - b[idx].mean(1))[ok] / den[ok]
    point = (a.mean() - b.mean()) / (c.mean() - e.mean()) if c.mean() != e.mean() else float("nan")
    return float(point), float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))


def rel(x, b):
    """Paired relative difference of x vs b: mean and 95% interval, wins."""
    s = paired_bootstrap(np.asarray(x, float), np.asarray(b, float), None, B, 0)
    return s


def pct(s) -> str:
    return f"{100 * s['vs_best']:+.2f}% ({100 * s['vs_best_lo']:+.2f} .. {100 * s['vs_best_hi']:+.2f})"


def main() -> None:
    runs = {k: run_dir(k) for k in KEYS}
    runs = {k: d for k, d in runs.items() if d is not None}
    res = {k: json.loads((d / "results.json").read_text()) for k, d in runs.items()}
    st = {k: per_stream(d) for k, d in runs.items()}
    prev = sorted(PREV.glob("postgres-*")) if PREV.is_dir() else []
    lines: list[str] = []
    p = lines.append
    summary: dict = {}
    for k in runs:
        r, s = res[k], st[k]
        if "best_heuristic" not in r:  # a -ref run: no bar
            summary[k] = {lab: {"reads": float(np.mean(v["reads"])), "stream_s": float(np.mean(v["stream_s"]))}
                          for lab, v in s.items()}
            continue
        best = r["best_heuristic"]["best"]
        g = guarded(r)
        rows = {}
        for lab in s:
            row = {"reads": float(np.mean(s[lab]["reads"])), "stream_s": float(np.mean(s[lab]["stream_s"]))}
            if lab != best:
                row.update(rel(s[lab]["reads"], s[best]["reads"]))
            rows[lab] = row
        summary[k] = {"best": best, "guarded": g, "safety": r.get("safety"), "rows": rows,
                      "validation_reads": r["best_heuristic"]["validation_reads"],
                      "seconds": r["meta"]["seconds"], "capacity": r["meta"]["capacity"],
                      "nbuffers": r["meta"]["nbuffers"], "access_seconds": r["meta"]["access_seconds"],
                      "agents": r["meta"]["agents"], "load_id": r["meta"]["load"]["load_id"],
                      "estimate_quality": (r.get("estimate_quality") or {}).get("all"),
                      "sim_total_err": next(a for a in r["pg_agreement"] if a["model"] == "clock_exact")["total_err"],
                      "pgss_check": r["pgss_check"]}
        p(f"### {k}: best heuristic on validation = {best}; safety net -> {g}; {r['meta']['seconds']:.0f} s; "
          f"capacity {r['meta']['capacity']} of {r['meta']['nbuffers']} buffers")
        p("")
        p("| policy | reads / stream | vs best (95% CI) | wins vs best | stream s |")
        p("|---|---|---|---|---|")
        for lab, row in rows.items():
            vb = "0" if lab == best else pct(row)
            w = "-" if lab == best else f"{round(len(s[lab]['reads']) * row['wins'])}/{len(s[lab]['reads'])}"
            p(f"| {lab}{' (best)' if lab == best else ''} | {row['reads']:,.0f} | {vb} | {w} | {row['stream_s']:.2f} |")
        p(f"| guarded:learned (= {g}) | {rows[g]['reads']:,.0f} | {'0' if g == best else pct(rows[g])} | | |"
          if "learned" in s else "")
        q = summary[k]["estimate_quality"]
        if q:
            p(f"estimated vs traced sets ({q['instances']} instances): Jaccard {q['jaccard']:.3f}, recall "
              f"{q['recall']:.3f}, precision {q['precision']:.3f}, size ratio {q.get('size_ratio', float('nan')):.3f}")
        p(f"validation reads: { {n: round(v) for n, v in r['best_heuristic']['validation_reads'].items()} }")
        p("")
    # (a) exact vs estimated, 1 client: the same streams on the same load; fifo needs no sets (identical)
    a, e = "exact-1-16MB", "estimated-1-16MB"
    if a in st and e in st:
        p("### (a) exact vs estimated access sets, 1 client (paired per stream, same load)")
        p("")
        fa, fe = st[a]["fifo"]["reads"], st[e]["fifo"]["reads"]
        p(f"fifo identical in both runs: {fa == fe} (exact {np.mean(fa):,.0f}, estimated {np.mean(fe):,.0f})")
        bx = st[a][summary[a]["best"]]["reads"]
        p("")
        p("| policy | exact: reads | vs exact best | estimated: reads | vs exact best | vs estimated best |"
          " saving vs fifo kept under estimates (95% CI) |")
        p("|---|---|---|---|---|---|---|")
        surv = {}
        for lab in ["fifo", "shortest", "greedy", "lookahead:1", "planner", "learned"]:
            if lab not in st[a] or lab not in st[e]:
                continue
            xa, xe = st[a][lab]["reads"], st[e][lab]["reads"]
            ra, re_ = rel(xa, bx), rel(xe, bx)
            rb = rel(xe, st[e][summary[e]["best"]]["reads"])
            saves = lab != "fifo" and rel(xa, fa)["vs_best_hi"] < 0  # a saving under exact sets (CI < 0)
            sv = boot_ratio(fe, xe, fa, xa) if saves else None
            surv[lab] = {"exact_vs_exact_best": ra, "est_vs_exact_best": re_, "est_vs_est_best": rb,
                         "saving_kept": sv}
            svs = "- (no saving vs fifo on exact sets)" if sv is None else f"{100 * sv[0]:.0f}% ({100 * sv[1]:.0f} .. {100 * sv[2]:.0f})"
            p(f"| {lab} | {np.mean(xa):,.0f} | {pct(ra)} | {np.mean(xe):,.0f} | {pct(re_)} | {pct(rb)} | {svs} |")
        ga, ge = summary[a]["guarded"], summary[e]["guarded"]
        xa, xe = st[a][ga]["reads"], st[e][ge]["reads"]
        sv = boot_ratio(fe, xe, fa, xa) if rel(xa, fa)["vs_best_hi"] < 0 else None
        svs = "-" if sv is None else f"{100 * sv[0]:.0f}% ({100 * sv[1]:.0f} .. {100 * sv[2]:.0f})"
        surv["deployed"] = {"exact": ga, "estimated": ge, "est_vs_exact_best": rel(xe, bx), "saving_kept": sv}
        p(f"| deployed (guarded:learned = {ga} / {ge}) | {np.mean(xa):,.0f} | {pct(rel(xa, bx)) if ga != summary[a]['best'] else '0'}"
          f" | {np.mean(xe):,.0f} | {pct(rel(xe, bx))} | 0 | {svs} |")
        for kk, name in ((a, "exact"), (e, "estimated")):
            p(f"- {name}: best heuristic {summary[kk]['best']}, guarded learned -> {summary[kk]['guarded']}")
        summary["a_exact_vs_estimated"] = surv
        p("")
    # (b) 1 vs 4 clients
    for acc in ("exact", "estimated"):
        one, four = f"{acc}-1-16MB", f"{acc}-4-16MB"
        if one not in st or four not in st:
            continue
        p(f"### (b) {acc} sets: 1 vs 4 clients (paired per stream)")
        p("")
        ref = st.get(f"{acc}-1-16MB-ref", {})
        p("| policy | reads, 1 client | reads, 4 clients | 4 vs 1 (95% CI) | vs best, 4 clients | wins | "
          "stream s, 1 (1 core) | stream s, 1 (2 cores, same job) | stream s, 4 | speed-up vs 1 (same job) | "
          "queries in flight, 4 clients |")
        p("|---|---|---|---|---|---|---|---|---|---|---|")
        b4 = summary[four]["best"]
        rows = {}
        for lab in st[four]:
            x1, x4 = st[one][lab]["reads"], st[four][lab]["reads"]
            t1, t4 = st[one][lab]["stream_s"], st[four][lab]["stream_s"]
            d = rel(x4, x1)
            vb = "0 (best)" if lab == b4 else pct(rel(x4, st[four][b4]["reads"]))
            w = "-" if lab == b4 else f"{int(np.sum(np.array(x4) < np.array(st[four][b4]['reads'])))}/{len(x4)}"
            rows[lab] = {"four_vs_one": d, "stream_s_1": float(np.mean(t1)), "stream_s_4": float(np.mean(t4))}
            tr = ref.get(lab, {}).get("stream_s")
            if tr:
                rows[lab]["ref_same_reads"] = ref[lab]["reads"] == x1  # the same schedules as the 1-client run?
                rows[lab]["stream_s_1_ref"] = float(np.mean(tr))
                sp = boot_ratio(tr, np.zeros(len(tr)), t4, np.zeros(len(t4)))
                rows[lab]["speedup_ref"] = sp
            c7 = (f"{np.mean(tr):.2f}" + ("" if rows[lab]["ref_same_reads"] else " (other reads)")) if tr else "-"
            c9 = f"{sp[0]:.2f}x ({sp[1]:.2f} .. {sp[2]:.2f})" if tr else "-"
            p(f"| {lab} | {np.mean(x1):,.0f} | {np.mean(x4):,.0f} | {pct(d)} | {vb} | {w} | {np.mean(t1):.2f} | "
              f"{c7} | {np.mean(t4):.2f} | {c9} | {np.mean(st[four][lab]['in_flight']):.2f} |")
            rows[lab]["in_flight_4"] = float(np.mean(st[four][lab]["in_flight"]))
        p(f"- 4 clients: best heuristic {b4}, guarded learned -> {summary[four]['guarded']}")
        summary[f"b_{acc}_1_vs_4"] = rows
        p("")
    four = [k for k in ("exact-4-16MB", "estimated-4-16MB") if k in st]
    if four:  # do 4-client reads follow the policy or the number of queries in flight?
        pts = [(k, lab, e, r, f) for k in four for lab, v in st[k].items()
               for e, (r, f) in enumerate(zip(v["reads"], v["in_flight"]))]
        fit = [x for x in pts if x[1] != "planner"]
        X = np.array([[float(e == j) for j in range(8)] + [f] for _, _, e, _, f in fit])
        coef = np.linalg.lstsq(X, np.array([x[3] for x in fit], float), rcond=None)[0]
        p("### 4 clients: reads against queries in flight (per-stream intercepts, one slope, fitted on every "
          "policy but the planner)")
        p("")
        p(f"slope: {coef[-1]:,.0f} reads per stream for each extra query in flight")
        p("")
        p("| policy | mean in flight | mean residual (reads) | residual sd |")
        p("|---|---|---|---|")
        conc = {"slope": float(coef[-1])}
        for lab in st[four[0]]:
            res_ = [r - coef[e] - coef[-1] * f for _, l2, e, r, f in pts if l2 == lab]
            fl = [f for _, l2, _, _, f in pts if l2 == lab]
            conc[lab] = {"in_flight": float(np.mean(fl)), "residual": float(np.mean(res_))}
            p(f"| {lab} | {np.mean(fl):.2f} | {np.mean(res_):+,.0f} | {np.std(res_):,.0f} |")
        if len(four) == 2:
            d = rel(st[four[1]]["fifo"]["reads"], st[four[0]]["fifo"]["reads"])
            conc["fifo_repeat"] = d
            p(f"\nthe same fifo schedules in the two 4-client runs: {pct(d)} reads (timing noise)")
        summary["four_clients_concurrency"] = conc
        p("")
    if prev and "exact-1-16MB" in st:
        ps = per_stream(prev[0])
        p("### reproducibility: last session's exact-1 run (another load of the same data) vs this one")
        p("")
        p("| policy | last session | this session | difference |")
        p("|---|---|---|---|")
        for lab in ps:
            if lab in st["exact-1-16MB"]:
                x0, x1 = np.mean(ps[lab]["reads"]), np.mean(st["exact-1-16MB"][lab]["reads"])
                p(f"| {lab} | {x0:,.0f} | {x1:,.0f} | {100 * (x1 - x0) / x0:+.3f}% |")
        summary["prev_exact_1"] = {lab: float(np.mean(v["reads"])) for lab, v in ps.items()}
        p("")
    text = "\n".join(lines)
    print(text)
    if "--write" in sys.argv:
        (OUT / "tables.md").write_text(text + "\n")
        (OUT / "results.json").write_text(json.dumps(
            {"summary": summary, "per_stream": st, "runs": {k: res[k] for k in runs}}, indent=1, default=str))
        (OUT / "config.json").write_text(json.dumps(
            {k: json.loads((d / "pg_config.json").read_text()) for k, d in runs.items()}, indent=1))
        (OUT / "provenance.json").write_text(json.dumps(
            {k: json.loads((d / "provenance.json").read_text()) for k, d in runs.items()}, indent=1))
        for k, d in runs.items():
            for name in ("pg_main.md", "pg_agreement.md", "pg_estimate_quality.md"):
                if (d / name).is_file():
                    shutil.copy(d / name, OUT / f"{k}_{name}")
        for log in sorted(W.glob("*.log")):
            if log.stat().st_size and not log.name.startswith("test"):
                shutil.copy(log, OUT / log.name)


if __name__ == "__main__":
    main()
