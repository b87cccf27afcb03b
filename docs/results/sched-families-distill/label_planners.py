"""Which planner setting is cheap enough to label with? Reads vs the best heuristic and ms/decision on
validation instances of the six training families (instance seeds 5000+, episode seeds 900000+)."""

import json
import sys
import time

import numpy as np

from lab_learnsched.agents.config import VAL_INSTANCE0, VAL_SEED0
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes, run_episode
from lab_learnsched.families import family_workload
from lab_learnsched.schedulers import HEURISTICS, make_scheduler

FAMS = ["hotset", "lookup", "mixed", "poisson", "bursty", "skew"]
SPECS = sys.argv[2].split(",")
K = 3
seeds = [VAL_SEED0 + j for j in range(2)]
out = {s: {"rel": [], "sec": 0.0, "dec": 0} for s in SPECS}
for fam in FAMS:
    for k in range(K):
        env = BufferPoolEnv(family_workload(fam, VAL_INSTANCE0 + k))
        eps = episodes(env, seeds)
        per = {h: [run_episode(env, make_scheduler(h), s, q).reads for s, q in zip(seeds, eps)] for h in HEURISTICS}
        best = np.array(min(per.values(), key=np.mean), float)
        for spec in SPECS:
            t = time.process_time()
            r = [run_episode(env, make_scheduler(spec), s, q) for s, q in zip(seeds, eps)]
            out[spec]["sec"] += time.process_time() - t
            out[spec]["dec"] += sum(len(x.order) for x in r)
            out[spec]["rel"] += list((np.array([x.reads for x in r]) - best) / np.maximum(best, 1))
res = {s: {"vs_best": float(np.mean(v["rel"])), "ms_per_decision": 1000 * v["sec"] / v["dec"], "episodes": len(v["rel"])} for s, v in out.items()}
json.dump(res, open(sys.argv[1], "w"), indent=1)
print(json.dumps(res, indent=1))
