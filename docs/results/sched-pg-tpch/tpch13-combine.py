"""Collect the four TPC-H pg bench runs into docs/results/sched-pg-tpch/ and print the doc tables."""
import json, shutil, sys
from pathlib import Path

OUT = Path("/work/main/docs/results/sched-pg-tpch")
runs = {}
for d in sorted(Path("/tmp/tpch13/runs/sched-bench").iterdir()):
    if not (d / "results.json").is_file():
        continue
    cfg = json.loads((d / "pg_config.json").read_text())
    runs[f"{cfg['access']}-{cfg['clients']}"] = d
keys = [k for k in ("exact-1", "estimated-1", "exact-4", "estimated-4") if k in runs]
res = {k: json.loads((runs[k] / "results.json").read_text()) for k in keys}
if "--write" in sys.argv:
    for f in OUT.iterdir():
        if f.is_file():
            f.unlink()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({k: res[k] for k in keys}, indent=1, default=str))
    (OUT / "config.json").write_text(json.dumps({k: json.loads((runs[k] / "pg_config.json").read_text()) for k in keys}, indent=1))
    (OUT / "provenance.json").write_text(json.dumps({k: json.loads((runs[k] / "provenance.json").read_text()) for k in keys if (runs[k] / "provenance.json").is_file()}, indent=1))
    for k in keys:
        for name in ("pg_main.md", "pg_agreement.md", "pg_estimate_quality.md"):
            if (runs[k] / name).is_file():
                shutil.copy(runs[k] / name, OUT / f"{k}_{name}")
    for s in ("load.sh", "size.sh", "job1.sh", "job2.sh", "run.sh", "combine.py"):
        shutil.copy(f"/tmp/tpch13/{s}", OUT / s)
    for s in ("job1.log", "job2.log"):
        if Path(f"/tmp/tpch13/{s}").is_file():
            shutil.copy(f"/tmp/tpch13/{s}", OUT / s)

def rows(k):
    return {r["policy"]: r for r in res[k]["pg_main"]}

pols = [r["policy"] for r in res[keys[0]]["pg_main"]]
print("| policy | " + " | ".join(f"reads {k}" for k in keys) + " | " + " | ".join(f"stream s {k}" for k in keys) + " |")
print("|---" * (1 + 2 * len(keys)) + "|")
for p in pols:
    cells = []
    for k in keys:
        r = rows(k).get(p) or next((v for n, v in rows(k).items() if n.startswith(p.split(" (")[0]) and p.startswith("best")), None)
        if r is None:
            cells.append("-"); continue
        vb = r.get("vs_best")
        cells.append(f"{r['reads']:,.0f}" + (f" ({100*vb:+.2f}%)" if vb is not None else ""))
    times = []
    for k in keys:
        r = rows(k).get(p) or next((v for n, v in rows(k).items() if n.startswith("best heuristic") and p.startswith("best")), None)
        times.append(f"{r['stream_s']:.1f}" if r else "-")
    print(f"| {p} | " + " | ".join(cells) + " | " + " | ".join(times) + " |")
print()
for k in keys:
    b = res[k].get("best_heuristic", {})
    print(k, "best:", b.get("best"), "val:", {n: round(v) for n, v in b.get("validation_reads", {}).items()}, "safety:", [s["status"] for s in res[k].get("safety", [])])
    q = res[k].get("estimate_quality", {}).get("all")
    if q: print("  quality:", {n: round(v, 3) for n, v in q.items()})
    m = res[k]["meta"]; print("  seconds", m["seconds"], "capacity", m["capacity"], "nbuffers", m["nbuffers"], "access_s", m.get("access_seconds"))
    a = next(x for x in res[k]["pg_agreement"] if x["model"] == "clock_exact"); print("  sim total_err", round(a["total_err"], 3), "pgss", res[k]["pgss_check"])
    wins = {r["policy"]: r.get("wins_vs_best") for r in res[k]["pg_main"]}; print("  wins", wins)
