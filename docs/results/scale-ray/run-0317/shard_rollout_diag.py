import time, torch, pickle
from lab_learnsched.agents import common
from lab_learnsched.agents.config import TrainConfig
from lab_learnsched.agents.nets import SlotNet
from lab_learnsched.agents.shards import ShardedRollouts
from lab_shared.backend import Backend, _ray_connect
cfg = TrainConfig(workload="small", num_envs=8, steps=8*64*16, eval_every=0, ckpt_every=0, eval_episodes=2, hidden=64, seed=0, rollout_shards=2)
net = SlotNet(common.make_envs(cfg, 1)[0].feat.spec, 64)
print("net blob", len(pickle.dumps(net)))
loc = ShardedRollouts("ppo", cfg)
t=time.perf_counter()
for it in range(6): loc.collect(net, 64, it)
print("local s/rollout", (time.perf_counter()-t)/6)
_ray_connect(None, 1)
r = ShardedRollouts("ppo", cfg, Backend("ray"))
for it in range(6):
    t=time.perf_counter(); r.collect(net, 64, it); print("ray rollout", it, round(time.perf_counter()-t,3))
