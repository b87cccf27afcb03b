"""Simulator throughput: buffer-pool steps (one query executed) per second, fast kernels vs the reference.

A step = one query of the default workload (3 tables, ~3,000 pages, pool of 800 pages, ~150 pages a query)
run through the buffer pool, timed in CPU time of this process (the machine is shared: wall time would
measure the neighbours). The same episodes run through the numba simulator, the plain reference
(`lab_learnsched.bufferpool_naive`, the correctness oracle) and, for context, a tuned pure-Python LRU on an
OrderedDict. Single thread. Also reports full environment steps (pool + observation) per second.

    .venv/bin/python benchmarks/sched_sim.py [--full]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import OrderedDict

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from lab_learnsched.bufferpool import BufferPool  # noqa: E402
from lab_learnsched.bufferpool_naive import HITS  # noqa: E402
from lab_learnsched.env import BufferPoolEnv  # noqa: E402
from lab_learnsched.workload_sources import load_workload  # noqa: E402


def fast_rate(eps, n_pages, cap, policy, repeat):
    pool = BufferPool(n_pages, cap, policy)
    pool.access(eps[0][0])  # JIT warm-up (compiled code is cached on disk)
    steps, reads, t = 0, 0, time.process_time()
    for _ in range(repeat):
        for ep in eps:
            pool.reset()
            for q in ep:
                reads += pool.access(q)[1]
                steps += 1
    return steps / (time.process_time() - t), reads // repeat


def reference_rate(eps, cap, policy):
    steps, reads, t = 0, 0, time.process_time()
    for ep in eps:
        flags = HITS[policy]([int(p) for q in ep for p in q], cap)
        reads += len(flags) - sum(flags)
        steps += len(ep)
    return steps / (time.process_time() - t), reads


def ordered_dict_rate(eps, cap):
    steps, t = 0, time.process_time()
    for ep in eps:
        cache: OrderedDict[int, None] = OrderedDict()
        for q in ep:
            for p in q.tolist():
                if p in cache:
                    cache.move_to_end(p)
                else:
                    if len(cache) >= cap:
                        cache.popitem(last=False)
                    cache[p] = None
            steps += 1
    return steps / (time.process_time() - t)


def env_rate(n_episodes):
    env = BufferPoolEnv("default")
    steps, t = 0, time.process_time()
    for s in range(n_episodes):
        env.reset(seed=s)
        done = False
        while not done:
            a = int(np.flatnonzero(env.action_masks())[0])
            _, _, done, _, _ = env.step(a)
            steps += 1
    return steps / (time.process_time() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="more episodes for steadier numbers")
    args = ap.parse_args()
    wl = load_workload("default")
    n_fast, n_ref = (400, 6) if args.full else (200, 3)
    eps = [[q.pages for q in wl.generate(s)] for s in range(n_fast)]
    cap, n = wl.buffer_pages, wl.tables.n_pages
    print(
        f"default workload: {n} pages, pool {cap}, {np.mean([len(q) for e in eps for q in e]):.0f} pages/query"
    )
    results = {}
    for policy in ("lru", "clock"):
        f, fr = fast_rate(eps, n, cap, policy, repeat=3)
        r, rr = reference_rate(eps[:n_ref], cap, policy)
        _, fr_check = fast_rate(eps[:n_ref], n, cap, policy, repeat=1)
        assert fr_check == rr, "fast and reference simulators disagree"
        results[policy] = (f, r)
        print(f"{policy:6s} fast {f:12,.0f} steps/s   reference {r:10,.1f} steps/s   ratio {f / r:8,.0f}x")
    od = ordered_dict_rate(eps[:20], cap)
    print(f"lru    tuned pure-Python OrderedDict {od:,.0f} steps/s (fast is {results['lru'][0] / od:,.0f}x)")
    print(
        f"environment steps (pool + observation + bookkeeping): {env_rate(30 if not args.full else 100):,.0f} steps/s"
    )
    f, r = results["lru"]
    print(
        f"RESULT sched_sim: {f:,.0f} steps/s, {f / r:,.0f}x the reference (LRU, default workload, 1 thread) "
        f"(target: >= 50,000 steps/s and >= 100x)"
    )


if __name__ == "__main__":
    main()
