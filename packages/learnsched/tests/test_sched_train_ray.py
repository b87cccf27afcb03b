"""`lab sched train --agent ppo --backend ray`: rollout workers as Ray actors (each owns envs and a policy
copy, gets the weights every iteration) give the same weights as the one-process loop for a seed; the
agents that train locally only say so in one line."""

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from lab_learnsched.agents.config import SetTrainConfig, TrainConfig
from lab_learnsched.agents.ppo import train_ppo
from lab_learnsched.agents.rollouts import check_ray_agent
from lab_learnsched.agents.setppo import train_setnet
from lab_shared.backend import Backend
from lab_shared.checkpoint import find_checkpoint
from lab_shared.errors import LabError
from lab_shared.metrics import read_metrics
from lab_shared.rundir import RunDir


def _cfg() -> TrainConfig:
    cfg = TrainConfig(workload="small", num_envs=3, steps=3 * 32 * 3, eval_every=0, ckpt_every=0,
                      eval_episodes=2, hidden=16, seed=3)  # fmt: skip
    cfg.ppo.rollout = 32  # 3 iterations of 3 envs x 32 steps; several episodes end inside rollouts
    return cfg


def _weights(run: RunDir) -> dict:
    return load_file(str(find_checkpoint(run.path) / "model.safetensors"))


def test_ray_rollout_workers_give_the_local_weights(ray_local, tmp_path):
    cfg = _cfg()
    local = RunDir.create("sched-train", "local", cfg, root=tmp_path)
    res_l = train_ppo(cfg, local, show_progress=False)
    ray = RunDir.create("sched-train", "ray", cfg, root=tmp_path)
    res_r = train_ppo(cfg, ray, show_progress=False, backend=Backend("ray"), workers=2)
    wl, wr = _weights(local), _weights(ray)
    assert wl.keys() == wr.keys() and all((wl[k] == wr[k]).all() for k in wl)
    assert res_l["val_hit_ratio"] == res_r["val_hit_ratio"]
    ml = [r for r in read_metrics(local.path / "metrics.jsonl") if "train_hit_ratio" in r]
    mr = [r for r in read_metrics(ray.path / "metrics.jsonl") if "train_hit_ratio" in r]
    assert [r["train_hit_ratio"] for r in ml] == [r["train_hit_ratio"] for r in mr] and ml


def test_setnet_rollout_workers_give_the_local_weights(ray_local, tmp_path):
    cfg = SetTrainConfig(families=["hotset", "mixed"], instances=2, num_envs=3, steps=3 * 16 * 3,
                         eval_every=0, ckpt_every=0, val_instances=1, val_episodes=1, hidden=16, layers=1,
                         heads=2, seed=2)  # fmt: skip
    cfg.ppo.rollout = 16
    local = RunDir.create("sched-train", "local", cfg, root=tmp_path)
    res_l = train_setnet(cfg, local, show_progress=False)
    ray = RunDir.create("sched-train", "ray", cfg, root=tmp_path)
    res_r = train_setnet(cfg, ray, show_progress=False, backend=Backend("ray"), workers=2)
    wl, wr = _weights(local), _weights(ray)
    assert wl.keys() == wr.keys() and all((wl[k] == wr[k]).all() for k in wl)
    assert res_l["val_vs_best"] == res_r["val_vs_best"]
    ml = [r.get("train_hit_ratio") for r in read_metrics(local.path / "metrics.jsonl")]
    assert ml == [r.get("train_hit_ratio") for r in read_metrics(ray.path / "metrics.jsonl")] and any(ml)


def test_other_agents_on_ray_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(LabError, match="--agent dqn trains locally only"):
        check_ray_agent("dqn", Backend("ray"))
    check_ray_agent("dqn", Backend("local"))
    check_ray_agent("setnet", Backend("ray"))
    from lab_learnsched.cli import app

    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    r = CliRunner().invoke(app, ["train", "--agent", "dqn", "--steps", "10", "--backend", "ray"])
    assert isinstance(r.exception, LabError) and len(str(r.exception).splitlines()) == 1
    assert not (tmp_path / "runs").exists()
