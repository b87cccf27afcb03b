"""Steady-state cost of one PPO rollout in rollout shards: local vs a local Ray with 1 and 2 CPUs, the first
rollout (actor start) timed apart; the same buffers checked. Run under /tmp/lab-heavy2."""
import json, os, sys, time
import torch
from lab_learnsched.agents import common
from lab_learnsched.agents.config import TrainConfig
from lab_learnsched.agents.nets import SlotNet
from lab_learnsched.agents.shards import ShardedRollouts
from lab_shared.backend import Backend, _ray_connect

os.environ.pop("RAY_ADDRESS", None)
N = 30
cfg = TrainConfig(workload="small", num_envs=8, eval_every=0, ckpt_every=0, hidden=64, seed=0, rollout_shards=2)
torch.manual_seed(0)
net = SlotNet(common.make_envs(cfg, 1)[0].feat.spec, 64)

def run(backend):
    r = ShardedRollouts("ppo", cfg, backend)
    t = time.perf_counter(); first = r.collect(net, 64, 0); t1 = time.perf_counter() - t
    outs = [first]
    t = time.perf_counter()
    for it in range(1, N + 1):
        outs.append(r.collect(net, 64, it))
    per = (time.perf_counter() - t) / N
    r.close()
    return t1, per, outs

res = {}
t1, per, ref = run(Backend("local"))
res["local"] = {"first_s": t1, "s_per_rollout": per}
print(f"local: first rollout {t1:.2f} s, then {per:.3f} s a rollout", flush=True)
import ray
for w in (1, 2):
    _ray_connect(None, w)
    t1, per, outs = run(Backend("ray"))
    same = all(all(torch.equal(a, b) for a, b in zip(x[0], y[0])) and x[2] == y[2] for x, y in zip(ref, outs))
    res[f"ray-{w}"] = {"first_s": t1, "s_per_rollout": per, "same": same}
    print(f"ray {w} CPU: first rollout {t1:.2f} s (actor start), then {per:.3f} s a rollout, same {same}", flush=True)
    ray.shutdown()
o1 = res["ray-1"]["s_per_rollout"] / res["local"]["s_per_rollout"] - 1
sp = res["ray-1"]["s_per_rollout"] / res["ray-2"]["s_per_rollout"]
print(f"RESULT shard rollouts ({N} rollouts of 8 envs x 64 steps, 2 shards): Ray overhead a rollout {100*o1:+.0f}% at 1 CPU, speedup 1->2 CPUs {sp:.2f}x")
res["overhead_1"], res["speedup_1_to_2"], res["load_avg_at_end"] = o1, sp, os.getloadavg()
json.dump(res, open(sys.argv[1], "w"), indent=2)
