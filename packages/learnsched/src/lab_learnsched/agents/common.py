"""Pieces both agents' training loops share: environments, seeds, validation, checkpoints, the end of a run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from lab_learnsched.agents.config import TRAIN_SEED0, VAL_SEED0, TrainConfig
from lab_learnsched.agents.nets import SlotNet
from lab_learnsched.agents.policy import AgentScheduler, agent_meta
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes, run_episode
from lab_learnsched.schedulers import GreedyMostCached
from lab_learnsched.workload_sources import load_workload
from lab_shared.checkpoint import (
    find_checkpoint,
    load_model_weights,
    load_optimizer_state,
    read_checkpoint,
    save_checkpoint,
)
from lab_shared.config import config_to_dict
from lab_shared.rundir import RunDir
from lab_shared.seed import get_rng_state, set_rng_state


def make_envs(cfg: TrainConfig, n: int) -> list[BufferPoolEnv]:
    wl = load_workload(cfg.workload)
    return [
        BufferPoolEnv(wl, cfg.buffer_pages or None, cfg.queue_size or None, cfg.policy, cfg.bins)
        for _ in range(n)
    ]


class SeedStream:
    """Training episode seeds, disjoint from validation and test seeds; its position is checkpointed."""

    def __init__(self, seed: int, pos: int = 0):
        self.base = TRAIN_SEED0 + seed * 1_000_000
        self.pos = pos

    def next(self) -> int:
        self.pos += 1
        return self.base + self.pos


class Validator:
    """Hit ratio of the argmax policy on fixed validation episodes, next to greedy-most-cached's."""

    def __init__(self, env: BufferPoolEnv, n: int):
        self.env = env
        self.eps = episodes(env, [VAL_SEED0 + i for i in range(n)])
        self.greedy = self._score(GreedyMostCached())

    def _score(self, sched) -> float:
        return float(
            np.mean(
                [run_episode(self.env, sched, VAL_SEED0 + i, q).hit_ratio for i, q in enumerate(self.eps)]
            )
        )

    def __call__(self, net: SlotNet, meta: dict) -> float:
        was = net.training
        r = self._score(AgentScheduler(net, meta))
        net.train(was)
        return r


def meta_for(cfg: TrainConfig, env: BufferPoolEnv, kind: str) -> dict:
    return agent_meta(kind, env.feat.spec, cfg.hidden, env.reward_scale, cfg.workload, cfg.policy)


def save(
    run: RunDir,
    step: int,
    net: SlotNet,
    opt: torch.optim.Optimizer,
    meta: dict,
    cfg: TrainConfig,
    extra: dict,
) -> Path:
    state = {"agent": meta, "config": config_to_dict(cfg), **extra}
    return save_checkpoint(run.checkpoints, step, net, opt, state, rng=get_rng_state(), keep=2)


def finish(
    agent: str,
    run: RunDir,
    step: int,
    net: SlotNet,
    opt: torch.optim.Optimizer,
    meta: dict,
    cfg: TrainConfig,
    validate: Validator,
    seeds: SeedStream,
    best: float,
    bar,
    t0: float,
    extra: dict | None = None,
) -> dict:
    """End of training: close the bar, validate once more, save the final checkpoint; the run's result."""
    if bar is not None:
        bar.close()
    final_val = validate(net, meta)
    state = {"seed_pos": seeds.pos, "best": max(best, final_val), **(extra or {})}
    ck = save(run, step, net, opt, meta, cfg, state)
    return {
        "agent": agent,
        "steps": step,
        "val_hit_ratio": final_val,
        "val_greedy_hit_ratio": validate.greedy,
        "checkpoint": str(ck),
        "train_seconds": time.time() - t0,
    }


def load(resume: str | Path, net: SlotNet, opt: torch.optim.Optimizer) -> dict:
    """Restore weights, optimizer and RNG state; returns the checkpoint's state dict."""
    ck = find_checkpoint(resume)
    state, opt_t, rng_t = read_checkpoint(ck)
    load_model_weights(net, ck / "model.safetensors")
    if opt_t is not None and "optimizer" in state:
        load_optimizer_state(opt, opt_t, state["optimizer"])
    if rng_t is not None and "rng" in state:
        set_rng_state(rng_t, state["rng"])
    return state
