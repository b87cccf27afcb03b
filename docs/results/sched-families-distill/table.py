"""Markdown rows of a bench-families results.json in the layout of docs/sched.md:
python docs/results/sched-families-distill/table.py RESULTS.json [family,...]"""

import json
import sys

NAMES = {"sched-families-distill/agent": "imitation agent (BC + 3 DAgger rounds)",
         "sched-families/ppo/agent": "PPO set agent (previous)"}


def name(pol: str) -> str:
    g = pol.startswith("guarded:")
    base = pol[8:] if g else pol
    for k, v in NAMES.items():
        if k in base:
            base = v
    return ("guarded " if g else "") + base


res = json.load(open(sys.argv[1]))
fams = sys.argv[2].split(",") if len(sys.argv) > 2 else None
print("| family | policy | episodes | reads | best heuristic | planner | vs best (95% CI) | wins | gap closed (95% CI) |")
print("|---|---|---|---|---|---|---|---|---|")
for r in res["summary"]:
    if fams and r["family"] not in fams:
        continue
    if r["policy"] in ("fifo", "shortest", "greedy"):
        continue
    print(f"| {r['family']} | {name(r['policy'])} | {r['episodes']} | {r['reads']:.0f} | {r['best_reads']:.0f} | "
          f"{r['planner_reads']:.0f} | {100 * r['vs_best']:+.1f}% ({100 * r['vs_best_lo']:+.1f}% .. "
          f"{100 * r['vs_best_hi']:+.1f}%) | {100 * r['wins']:.0f}% | {100 * r['gap_closed']:.0f}% "
          f"({100 * r['gap_closed_lo']:.0f}% .. {100 * r['gap_closed_hi']:.0f}%) |")
