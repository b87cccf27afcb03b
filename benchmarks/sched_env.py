"""Environment throughput: steps/s of the vectorized shape-free env (vecenv.SetVecEnv) vs the Gymnasium env.

A step = one scheduling decision: the buffer pool runs the chosen query, the queue window and the
bookkeeping are updated and the next observation is built. Both envs replay the same pre-generated
episodes of the default workload (3 tables, ~3,000 pages, pool 800, queue 8, ~150 pages a query), so the
workload generator is not timed; actions: the first valid slot. The vector env steps its 16 episodes in
one compiled call. Timed in CPU time of this process (the machine is shared), single thread, in
`--rounds` interleaved rounds (old, new, mix, old, new, mix, ...) so that load changes hit every env
alike; a figure is all steps over all CPU time of that env. Also reports the vector env on a mix of
generated family workloads (queues 6-31, padded to 32; generated episodes included: the generator's share is timed).

    .venv/bin/python benchmarks/sched_env.py [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from lab_learnsched.env import BufferPoolEnv  # noqa: E402
from lab_learnsched.evaluate import episodes  # noqa: E402
from lab_learnsched.families import family_workload  # noqa: E402
from lab_learnsched.vecenv import SetVecEnv  # noqa: E402
from lab_learnsched.workload_sources import load_workload  # noqa: E402


def old_rate(env, eps, seconds):
    steps, k, t = 0, 0, time.process_time()
    while time.process_time() - t < seconds:
        env.reset(seed=0, options={"queries": eps[k % len(eps)]})
        k += 1
        done = False
        while not done:
            _, _, done, _, _ = env.step(int(env.action_masks().argmax()))
            steps += 1
    return steps, time.process_time() - t


def vec_rate(v, seconds):
    v.reset(seed=0)
    steps, t = 0, time.process_time()
    while time.process_time() - t < seconds:
        v.step(v.action_masks().argmax(1))
        steps += v.num_envs
    return steps, time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0, help="CPU seconds per env, over all rounds")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    wl = load_workload("default")
    env = BufferPoolEnv(wl)
    eps = episodes(env, list(range(50)))
    old_rate(env, eps, 0.5)  # JIT warm-up (compiled kernels are cached on disk)
    vec = SetVecEnv([wl], num_envs=16, max_queue=8, episodes=eps)
    vec_rate(vec, 0.5)
    mix = SetVecEnv([family_workload(f, k) for f in ("hotset", "mixed", "skew") for k in range(4)], 16, 32)
    vec_rate(mix, 0.5)
    runs = {"old": (lambda s: old_rate(env, eps, s)), "new": (lambda s: vec_rate(vec, s)),
            "mix": (lambda s: vec_rate(mix, s))}  # fmt: skip
    per = args.seconds / max(1, args.rounds)
    tot = {k: [0.0, 0.0] for k in runs}  # steps, CPU seconds
    for r in range(max(1, args.rounds)):
        for k, f in runs.items():
            steps, dt = f(per)
            tot[k][0] += steps
            tot[k][1] += dt
            print(f"round {r}: {k} {steps / dt:10,.0f} steps/s")
    old, new, mixed = (tot[k][0] / tot[k][1] for k in ("old", "new", "mix"))
    print(f"gymnasium env (flat bitmaps)     {old:10,.0f} steps/s")
    print(f"vector env, 16 episodes          {new:10,.0f} steps/s")
    print(f"vector env, family mix, q<=31    {mixed:10,.0f} steps/s (episodes generated on the fly)")
    print(
        f"RESULT sched_env: {new:,.0f} steps/s vs today's {old:,.0f} steps/s = {new / old:.1f}x; "
        f"family mix {mixed:,.0f} steps/s (target: >= 20,000 steps/s and >= 8x)"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
