import os, sys, time, cProfile, pstats
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
import numpy as np
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes
from lab_learnsched.families import family_workload
from lab_learnsched.vecenv import SetVecEnv
from lab_learnsched.workload_sources import load_workload
which = sys.argv[1]
if which == "default":
    wl = load_workload("default"); env = BufferPoolEnv(wl); eps = episodes(env, list(range(50)))
    v = SetVecEnv([wl], num_envs=16, max_queue=8, episodes=eps)
else:
    v = SetVecEnv([family_workload(f, k) for f in ("hotset", "mixed", "skew") for k in range(4)], 16, 32)
v.reset(seed=0)
for _ in range(200): v.step(v.action_masks().argmax(1))
pr = cProfile.Profile(); pr.enable()
t = time.process_time(); steps = 0
while time.process_time() - t < 4:
    v.step(v.action_masks().argmax(1)); steps += 16
pr.disable()
print(which, steps / (time.process_time() - t))
pstats.Stats(pr).sort_stats("tottime").print_stats(25)
