"""`rollout_shards = S`: S shards step each PPO rollout (agents/shards.py). The same weights for a seed on the
local backend and on a local Ray cluster (ppo and setnet); a shard rebuilt from its snapshot continues
exactly as the live one; a killed rollout actor is replaced and its rollout rerun with the same result."""

import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from lab_learnsched.agents import common
from lab_learnsched.agents.config import SetTrainConfig, TrainConfig
from lab_learnsched.agents.nets import SlotNet
from lab_learnsched.agents.ppo import train_ppo
from lab_learnsched.agents.setnet import SetNet
from lab_learnsched.agents.setppo import train_setnet
from lab_learnsched.agents.shards import ShardedRollouts, ShardHost, ShardJob, check_shards
from lab_shared.backend import Backend
from lab_shared.checkpoint import find_checkpoint, read_checkpoint
from lab_shared.errors import LabError
from lab_shared.metrics import read_metrics
from lab_shared.rundir import RunDir


def _ppo_cfg(shards: int = 2) -> TrainConfig:
    cfg = TrainConfig(workload="small", num_envs=3, steps=3 * 32 * 3, eval_every=0, ckpt_every=0,
                      eval_episodes=2, hidden=16, seed=3, rollout_shards=shards)  # fmt: skip
    cfg.ppo.rollout = 32  # 3 rollouts of 3 envs x 32 steps; episodes end inside rollouts and span them
    return cfg


def _set_cfg() -> SetTrainConfig:
    cfg = SetTrainConfig(families=["hotset", "mixed"], instances=2, num_envs=3, steps=3 * 16 * 3,
                         eval_every=0, ckpt_every=0, val_instances=1, val_episodes=1, hidden=16, layers=1,
                         heads=2, seed=2, rollout_shards=2)  # fmt: skip
    cfg.ppo.rollout = 16
    return cfg


def _same_weights(a: RunDir, b: RunDir) -> bool:
    wa, wb = (load_file(str(find_checkpoint(r.path) / "model.safetensors")) for r in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _ratios(run: RunDir) -> list:
    return [r.get("train_hit_ratio") for r in read_metrics(run.path / "metrics.jsonl")]


def test_ppo_shards_local_and_ray_give_the_same_weights(ray_local, tmp_path):
    cfg = _ppo_cfg()
    local = RunDir.create("sched-train", "local", cfg, root=tmp_path)
    res_l = train_ppo(cfg, local, show_progress=False)
    ray = RunDir.create("sched-train", "ray", cfg, root=tmp_path)
    res_r = train_ppo(cfg, ray, show_progress=False, backend=Backend("ray"))
    assert _same_weights(local, ray) and res_l["val_hit_ratio"] == res_r["val_hit_ratio"]
    assert _ratios(local) == _ratios(ray) and any(_ratios(local))
    state = read_checkpoint(find_checkpoint(ray.path))[0]
    assert len(state["shard_pos"]) == 2 and min(state["shard_pos"]) > 2  # episodes ended and restarted
    lock = RunDir.create("sched-train", "lockstep", _ppo_cfg(0), root=tmp_path)
    train_ppo(_ppo_cfg(0), lock, show_progress=False)
    assert not _same_weights(local, lock)  # the default (lockstep) loop is its own stream


def test_setnet_shards_local_and_ray_give_the_same_weights(ray_local, tmp_path):
    cfg = _set_cfg()
    local = RunDir.create("sched-train", "local", cfg, root=tmp_path)
    res_l = train_setnet(cfg, local, show_progress=False)
    ray = RunDir.create("sched-train", "ray", cfg, root=tmp_path)
    res_r = train_setnet(cfg, ray, show_progress=False, backend=Backend("ray"))
    assert _same_weights(local, ray) and res_l["val_vs_best"] == res_r["val_vs_best"]
    assert _ratios(local) == _ratios(ray) and any(_ratios(local))


def _equal(a: tuple, b: tuple) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("kind", ["ppo", "setnet"])
def test_a_shard_rebuilt_from_its_snapshot_continues_as_the_live_one(kind):
    cfg = _ppo_cfg(1) if kind == "ppo" else _set_cfg()
    torch.manual_seed(0)
    net = SlotNet(common.make_envs(cfg, 1)[0].feat.spec, 16) if kind == "ppo" else SetNet(16, 1, 2)
    import pickle

    blob = pickle.dumps(net)
    live = ShardHost()
    first = live.run([ShardJob(kind, cfg, "r", 0, 0, 2, blob, 0, 25)])[0]
    job = ShardJob(kind, cfg, "r", 0, 0, 2, blob, 1, 25, 0, first["snap"], 0)
    went_on = live.run([job])[0]
    rebuilt = ShardHost().run([job])[0]  # a new process would hold nothing either
    assert _equal(went_on["bufs"], rebuilt["bufs"]) and (went_on["obs"] == rebuilt["obs"]).all()
    assert went_on["ratios"] == rebuilt["ratios"] and went_on["snap"] == rebuilt["snap"]
    assert any(len(a) for a in first["snap"].acts)  # the rebuilt shard replayed episodes in flight


def test_a_killed_rollout_actor_is_replaced_and_its_rollout_rerun(ray_local):
    cfg = _ppo_cfg(3)  # 3 shards on 2 actors: actor 0 holds shards 0 and 2
    torch.manual_seed(0)
    net = SlotNet(common.make_envs(cfg, 1)[0].feat.spec, 16)
    here, there = ShardedRollouts("ppo", cfg), ShardedRollouts("ppo", cfg, Backend("ray"))
    assert len(there.hosts) == 2
    first = there.hosts[0]
    for it in range(3):
        if it == 2:  # kill actor 0's process between two rollouts
            os.kill(ray_local.get(there.hosts[0].pid.remote()), signal.SIGKILL)
        a, b = here.collect(net, 20, it), there.collect(net, 20, it)
        assert _equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]
    assert there.pos == here.pos and there.hosts[0] is not first  # replaced
    there.close()


def test_bad_shard_settings_are_one_line():
    with pytest.raises(LabError, match=r"rollout_shards must be in \[0, num_envs = 3\], got 4"):
        check_shards(_ppo_cfg(4), "ppo")
    with pytest.raises(LabError, match="rollout_shards is for --agent ppo"):
        check_shards(_ppo_cfg(2), "dqn")
    check_shards(_ppo_cfg(0), "dqn")
