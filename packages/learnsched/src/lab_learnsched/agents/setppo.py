"""Masked PPO for the shape-free agent over a distribution of generated workloads (domain randomization).

Each episode of the vectorized env (vecenv.SetVecEnv) draws one of `instances` training instances of each
training family. Every `eval_every` steps the argmax policy is scored on fixed validation episodes of
other instances of the same families, as reads relative to the best heuristic of each instance (chosen
on those episodes from schedulers.HEURISTICS); the best-scoring weights are kept in `best/`. Held-out
families and test instances are never touched here. SIGINT/SIGTERM stop at the next rollout boundary
with a checkpoint (`lab sched train --resume RUN` continues). With `distill_seconds > 0` the network
first imitates the planner's decisions (agents/distill.py) and PPO continues from there; with
`distill_episodes > 0` that is behaviour cloning plus `dagger_rounds` DAgger rounds, each scored on the
same validation episodes (the best of imitation and PPO is kept in `best/`; `steps=0`: imitation only).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.distributions import Categorical

from lab_learnsched.agents.config import (
    TRAIN_INSTANCE0,
    TRAIN_SEED0,
    VAL_INSTANCE0,
    VAL_SEED0,
    PPOConfig,
    SetTrainConfig,
)
from lab_learnsched.agents.ppo import gae, ppo_step
from lab_learnsched.agents.setnet import SetAgentScheduler, SetNet, setnet_meta
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes, run_episode
from lab_learnsched.families import family_workload
from lab_learnsched.schedulers import HEURISTICS, make_scheduler
from lab_learnsched.setfeatures import N_GLOBAL, N_TOKEN
from lab_learnsched.vecenv import SetVecEnv
from lab_shared import signals
from lab_shared.checkpoint import (
    find_checkpoint,
    load_model_weights,
    load_optimizer_state,
    read_checkpoint,
    save_checkpoint,
)
from lab_shared.config import config_to_dict
from lab_shared.errors import LabError
from lab_shared.logs import get_logger
from lab_shared.progress import progress
from lab_shared.rundir import RunDir
from lab_shared.seed import get_rng_state, seed_everything, set_rng_state

_log = get_logger("lab.sched")


class SetValidator:
    """Agent reads vs the best heuristic of each validation instance, on fixed episodes."""

    def __init__(self, cfg: SetTrainConfig):
        self.cases = []  # (env, episode seeds, episodes, best heuristic reads per episode)
        seeds = [VAL_SEED0 + j for j in range(cfg.val_episodes)]
        for fam in cfg.families:
            for k in range(cfg.val_instances):
                env = BufferPoolEnv(family_workload(fam, VAL_INSTANCE0 + k), policy=cfg.policy)
                eps = episodes(env, seeds)
                per = {
                    h: [run_episode(env, make_scheduler(h), s, q).reads for s, q in zip(seeds, eps)]
                    for h in HEURISTICS
                }
                best = min(per, key=lambda h: np.mean(per[h]))
                self.cases.append((env, seeds, eps, np.array(per[best], float)))

    def __call__(self, net: SetNet) -> float:
        """Mean relative reads difference to the best heuristic (negative: the agent reads less)."""
        was = net.training
        sched = SetAgentScheduler(net, {})
        rel = []
        for env, seeds, eps, best in self.cases:
            reads = np.array([run_episode(env, sched, s, q).reads for s, q in zip(seeds, eps)], float)
            rel += list((reads - best) / np.maximum(best, 1))
        net.train(was)
        return float(np.mean(rel))


def _width(obs: torch.Tensor) -> torch.Tensor:
    """Slots up to the last valid one, per observation (the rest is padding the network can skip)."""
    valid = obs[:, N_GLOBAL:].reshape(obs.shape[0], -1, N_TOKEN)[..., 0] > 0.5
    idx = torch.arange(1, valid.shape[1] + 1)
    return (valid * idx).max(1).values.clamp(min=1)


def bucketed_update(net, opt, pc: PPOConfig, f_obs, f_act, f_logp, f_adv, f_ret) -> tuple[float, ...]:
    """PPO epochs with minibatches of similar queue widths, each trimmed to its widest window.

    Same losses as ppo.ppo_update; only the grouping differs (samples sorted by width with random tie
    order, minibatches shuffled), which cuts the attention cost of padded slots on mixed queue sizes.
    """
    n = f_obs.shape[0]
    width = _width(f_obs)
    mb = max(1, n // pc.minibatches)
    stats = []
    for _ in range(pc.epochs):
        order = torch.argsort(width.float() + torch.rand(n))
        chunks = [order[k : k + mb] for k in range(0, n, mb)]
        for j in torch.randperm(len(chunks)).tolist():
            idx = chunks[j]
            w = int(width[idx].max())
            logits, v = net(f_obs[idx, : N_GLOBAL + w * N_TOKEN])
            stats.append(ppo_step(net, opt, pc, logits, v, f_act[idx], f_logp[idx], f_adv[idx], f_ret[idx]))
    return tuple(float(x) for x in np.mean(stats, axis=0))


def train_workloads(cfg: SetTrainConfig) -> list:
    return [family_workload(f, TRAIN_INSTANCE0 + k) for f in cfg.families for k in range(cfg.instances)]


def _save(root: Path, step: int, net, opt, cfg, extra: dict, keep: int = 2) -> Path:
    meta = setnet_meta(net, families=list(cfg.families), policy=cfg.policy)
    state = {"agent": meta, "config": config_to_dict(cfg), **extra}
    return save_checkpoint(root, step, net, opt, state, rng=get_rng_state(), keep=keep)


def _shard_state(shards) -> dict:
    """What a checkpoint keeps of the rollout shards: each one's episode count."""
    return {"shard_pos": shards.pos} if shards is not None else {}


def train_setnet(
    cfg: SetTrainConfig,
    run: RunDir,
    resume: str | Path | None = None,
    show_progress: bool = True,
    backend=None,
    workers: int = 0,
) -> dict:
    """PPO of the set agent on the vectorized env here, or (`backend` Ray) on `workers` rollout actors
    (agents/rollouts.py: the same rollouts, hence the same weights for a seed). With `cfg.rollout_shards`
    S > 0, S shards step each rollout (agents/shards.py), here or on Ray: the same weights on both."""
    from lab_learnsched.agents.shards import ShardedRollouts, check_shards

    check_shards(cfg, "setnet")
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    pc = cfg.ppo
    net = SetNet(cfg.hidden, cfg.layers, cfg.heads)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, eps=1e-5)
    step, seed_pos, best, shard_pos = 0, 0, float("inf"), None
    imitate = cfg.distill_episodes > 0
    if imitate:
        from lab_learnsched.agents.distill import check_distill

        check_distill(cfg)
    ck = None
    if resume:
        try:
            ck = find_checkpoint(resume)
        except LabError:
            if not (imitate and (run.path / "distill").exists()):
                raise
    validate = SetValidator(cfg)
    if imitate and ck is None:  # fresh, or stopped during imitation: (continue to) imitate, then PPO
        from lab_learnsched.agents.distill import _Stop, run_distill

        def save_best(n, val, rnd):
            _save(run.path / "best", rnd, n, None, cfg, {"val_vs_best": val, "distilled": True}, keep=1)

        try:
            with signals.catch_stop_signals():
                best = run_distill(cfg, run, net, validate, train_workloads(cfg), save_best, _log.info)
        except _Stop:
            raise signals.Preempted(0, run.path / "distill", run.path) from None
        seed_everything(cfg.seed + 1)  # PPO's draws start here, the same after a resumed imitation
    if ck is not None:
        st, opt_t, rng_t = read_checkpoint(ck)
        load_model_weights(net, ck / "model.safetensors")
        if opt_t is not None and "optimizer" in st:
            load_optimizer_state(opt, opt_t, st["optimizer"])
        if rng_t is not None and "rng" in st:
            set_rng_state(rng_t, st["rng"])
        step, seed_pos, best = int(st["step"]), int(st["seed_pos"]), float(st["best"])
        shard_pos = st.get("shard_pos")
    if not resume and not imitate and cfg.distill_seconds > 0:
        from lab_learnsched.agents.distill import collect, pretrain

        td = time.time()
        obs_d, act_d = collect(cfg, train_workloads(cfg), cfg.distill_seconds)
        acc = pretrain(net, obs_d, act_d, cfg.distill_epochs, cfg.distill_lr, cfg.seed)
        val = validate(net)
        run.metrics.log(step=0, distill_decisions=len(act_d), distill_accuracy=acc, val_vs_best=val,
                        distill_seconds=time.time() - td)  # fmt: skip
        best = val
        _save(run.path / "best", 0, net, None, cfg, {"val_vs_best": best, "distilled": True}, keep=1)
    rollouts = shards = None
    if cfg.rollout_shards:
        from lab_learnsched.setfeatures import flat_dim

        env = shards = ShardedRollouts("setnet", cfg, backend, shard_pos)
        env.seed_pos = seed_pos  # kept as it was: the shards count their own episodes (shard_pos)
        obs = np.zeros((cfg.num_envs, flat_dim(cfg.max_queue)), np.float32)
    elif backend is not None and backend.is_ray:
        from lab_learnsched.agents.rollouts import RaySetRollouts

        env = rollouts = RaySetRollouts(cfg, backend, workers, train_workloads(cfg), cfg.seed + step,
                                        TRAIN_SEED0 + cfg.seed * 1_000_000, seed_pos)  # fmt: skip
        obs = rollouts.reset()
    else:
        env = SetVecEnv(
            train_workloads(cfg),
            cfg.num_envs,
            cfg.max_queue,
            seed=cfg.seed + step,
            seed_base=TRAIN_SEED0 + cfg.seed * 1_000_000,
            policy=cfg.policy,
        )
        env.seed_pos = seed_pos
        obs, _ = env.reset()
    n, t_len = cfg.num_envs, pc.rollout
    dim = obs.shape[1]
    b_obs = torch.zeros(t_len, n, dim)
    b_act = torch.zeros(t_len, n, dtype=torch.long)
    b_logp, b_rew, b_done, b_val = (torch.zeros(t_len, n) for _ in range(4))
    per_update = n * t_len
    next_eval = (step // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None
    next_ckpt = (step // cfg.ckpt_every + 1) * cfg.ckpt_every if cfg.ckpt_every else None
    t0, step0 = time.time(), step
    bar = progress(total=cfg.steps, desc="setnet") if show_progress else None
    if bar is not None and step:
        bar.update(step)
    ratios: list[float] = []

    def checkpoint(at: int, best_val: float) -> Path:
        """The resumable state at step `at`: weights, optimizer, env seeds, shards."""
        extra = {"seed_pos": env.seed_pos, "best": best_val, **_shard_state(shards)}
        return _save(run.checkpoints, at, net, opt, cfg, extra)

    with signals.catch_stop_signals():
        while step < cfg.steps:
            if signals.stop_requested():
                ck = checkpoint(step, best)
                raise signals.Preempted(step, ck, run.path)
            frac = step / cfg.steps
            if cfg.max_seconds > 0:
                frac = max(frac, (time.time() - t0) / cfg.max_seconds)
                if frac >= 1.0:
                    break
            if pc.anneal_lr:
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * max(0.05, 1.0 - frac)
            if shards is not None:
                (b_obs, b_act, b_logp, b_rew, b_done, b_val), obs, ended = shards.collect(
                    net, t_len, step // per_update
                )
                ratios += ended
            elif rollouts is not None:
                (b_obs, b_act, b_logp, b_rew, b_done, b_val), obs, ended = rollouts.collect(net, t_len)
                ratios += ended
            for t in range(t_len if rollouts is None and shards is None else 0):
                o = torch.from_numpy(obs)
                w = max(ep.queue for ep in env.eps)  # trim the padding no env uses
                with torch.no_grad():
                    logits, v = net(o[:, : N_GLOBAL + w * N_TOKEN])
                dist = Categorical(logits=logits)
                a = dist.sample()
                b_obs[t], b_act[t], b_logp[t], b_val[t] = o, a, dist.log_prob(a), v
                obs, r, term, _, info = env.step(a.numpy())
                b_rew[t] = torch.from_numpy(r) / cfg.reward_div
                b_done[t] = torch.from_numpy(term.astype(np.float32))
                for i in np.flatnonzero(term):
                    h, rd = info["episode_hits"][i], info["episode_reads"][i]
                    ratios.append(h / max(h + rd, 1))
            step += per_update
            with torch.no_grad():
                next_v = net(torch.from_numpy(obs))[1]
            adv = gae(b_rew, b_val, b_done, next_v, pc.gamma, pc.gae_lambda)
            ret = adv + b_val
            stats = bucketed_update(
                net,
                opt,
                pc,
                b_obs.reshape(-1, dim),
                b_act.reshape(-1),
                b_logp.reshape(-1),
                adv.reshape(-1),
                ret.reshape(-1),
            )
            log = dict(zip(("pg_loss", "v_loss", "entropy", "approx_kl"), stats))
            log["sps"] = (step - step0) / (time.time() - t0)
            if ratios:
                log["train_hit_ratio"] = float(np.mean(ratios))
                ratios = []
            if next_eval is not None and (step >= next_eval or step >= cfg.steps):
                log["val_vs_best"] = validate(net)
                if log["val_vs_best"] < best:
                    best = log["val_vs_best"]
                    _save(run.path / "best", step, net, None, cfg, {"val_vs_best": best}, keep=1)
                next_eval += cfg.eval_every
            run.metrics.log(step=step, **log)
            if bar is not None:
                bar.update(per_update, hit=round(log.get("train_hit_ratio", 0.0), 3))
            if next_ckpt is not None and step >= next_ckpt and step < cfg.steps:
                checkpoint(step, best)
                next_ckpt += cfg.ckpt_every
    if bar is not None:
        bar.close()
    if rollouts is not None or shards is not None:
        env.close()
    final = validate(net)
    ck = checkpoint(step, min(best, final))
    if final < best or not (run.path / "best").exists():  # a tie keeps the earlier (imitation) copy
        _save(run.path / "best", step, net, None, cfg, {"val_vs_best": final}, keep=1)
        best = final
    return {
        "agent": "setnet",
        "steps": step,
        "val_vs_best_final": final,
        "val_vs_best": best,
        "checkpoint": str(ck),
        "best_checkpoint": str(find_checkpoint(run.path / "best")),
        "train_seconds": time.time() - t0,
    }
