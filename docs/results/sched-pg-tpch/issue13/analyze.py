"""Where a TPC-H stream's reads go: per template, PostgreSQL's reads in the fifo streams of a run vs the
distinct blocks of its traced access set (the run's training trace), and how much of a stream ordering
could share at all. usage: analyze.py RUN_DIR [RUN_DIR ...] (exact-set runs; prints Markdown)."""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def main(dirs: list[Path]) -> None:
    for d in dirs:
        res = json.loads((d / "results.json").read_text())
        cap = res["meta"]["capacity"]
        trace = json.loads((d / "train_trace.json").read_text())
        size = defaultdict(list)
        sets = []
        for q in trace["queries"]:
            blocks = q["blocks"]
            if isinstance(blocks, str):  # stored as a Python literal in the trace
                import ast

                blocks = ast.literal_eval(blocks)
            s = {(r, b) for r, bs in blocks.items() for b in bs}
            size[q["template"]].append(len(s))
            sets.append(s)
        reads = defaultdict(list)
        for p in sorted((d / "episodes").glob("main-*-00.json")):  # spec 0 = fifo
            for r in json.loads(p.read_text())["runs"]:
                reads[r["template"]].append(r["reads"])
        n = len(sorted((d / "episodes").glob("main-*-00.json")))
        tot = sum(sum(v) for v in reads.values()) / n
        print(f"## {d.name}: {n} fifo streams, {tot:,.0f} reads a stream, pool {cap} workload pages\n")
        print("| template | reads / stream | share | distinct blocks (traced) | reads / distinct |")
        print("|---|---|---|---|---|")
        for t, v in sorted(reads.items(), key=lambda x: -sum(x[1])):
            m, s = np.mean(v), np.mean(size[t]) if size[t] else float("nan")
            print(f"| {t} | {m:,.0f} | {m / tot:.1%} | {s:,.0f} | {m / s:.1f} |")
        # streams of 22 consecutive training instances: blocks summed per query vs the stream's union
        k = 22
        tot_s = [sum(len(x) for x in sets[i : i + k]) for i in range(0, len(sets) - k + 1, k)]
        uni = [len(set().union(*sets[i : i + k])) for i in range(0, len(sets) - k + 1, k)]
        within = [sum(min(len(x), cap) for x in sets[i : i + k]) for i in range(0, len(sets) - k + 1, k)]
        print(f"\ntraining-trace streams of {k}: distinct blocks summed per query {np.mean(tot_s):,.0f}, "
              f"their union {np.mean(uni):,.0f} (at most {np.mean(tot_s) - np.mean(uni):,.0f} blocks shared "
              f"across queries); sum of min(|set|, pool) {np.mean(within):,.0f}\n")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
