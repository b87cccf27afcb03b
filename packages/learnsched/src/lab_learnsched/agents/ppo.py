"""Masked PPO (CleanRL-style, one file): clipped policy loss, GAE, entropy bonus, invalid slots masked.

Rollouts come from `num_envs` environments stepped in lockstep; a finished episode is reset at once with
the next training seed. Every `eval_every` steps the argmax policy is scored on fixed validation episodes
(logged next to greedy-most-cached); checkpoints every `ckpt_every` steps and at the end (resumable).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.distributions import Categorical

from lab_learnsched.agents import common
from lab_learnsched.agents.config import PPOConfig, TrainConfig
from lab_learnsched.agents.nets import SlotNet
from lab_shared.progress import progress
from lab_shared.rundir import RunDir
from lab_shared.seed import seed_everything


def gae(
    rew: torch.Tensor, val: torch.Tensor, done: torch.Tensor, next_v: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """Generalised advantage estimates of a (T, N) rollout; done[t] = the episode ended at step t."""
    t_len, n = rew.shape
    adv = torch.zeros(t_len, n)
    last = torch.zeros(n)
    for t in reversed(range(t_len)):
        nv = next_v if t == t_len - 1 else val[t + 1]
        nonterm = 1.0 - done[t]
        delta = rew[t] + gamma * nv * nonterm - val[t]
        last = delta + gamma * lam * nonterm * last
        adv[t] = last
    return adv


def ppo_update(
    net, opt, pc: PPOConfig, f_obs, f_act, f_logp, f_adv, f_ret
) -> tuple[float, float, float, float]:
    """Clipped PPO epochs over one flattened rollout; returns mean (policy loss, value loss, entropy, kl)."""
    per_update = f_obs.shape[0]
    mb = max(1, per_update // pc.minibatches)
    stats = []
    for _ in range(pc.epochs):
        perm = torch.randperm(per_update)
        for k in range(0, per_update, mb):
            idx = perm[k : k + mb]
            logits, v = net(f_obs[idx])
            stats.append(ppo_step(net, opt, pc, logits, v, f_act[idx], f_logp[idx], f_adv[idx], f_ret[idx]))
    return tuple(float(x) for x in np.mean(stats, axis=0))


def ppo_step(net, opt, pc, logits, v, act, old_logp, adv, ret) -> tuple[float, float, float, float]:
    """One clipped-PPO minibatch step from the net's `logits` and values `v` on a minibatch: normalised
    advantages, clipped policy loss, value loss, entropy bonus, clipped gradients. Returns (policy loss,
    value loss, entropy, approximate KL)."""
    dist = Categorical(logits=logits)
    logp = dist.log_prob(act)
    ratio = (logp - old_logp).exp()
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - pc.clip, 1 + pc.clip)).mean()
    vloss = 0.5 * (v - ret).pow(2).mean()
    ent = dist.entropy().mean()
    loss = pg + pc.vf_coef * vloss - pc.ent_coef * ent
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), pc.max_grad_norm)
    opt.step()
    with torch.no_grad():
        kl = ((ratio - 1) - (logp - old_logp)).mean()
    return pg.item(), vloss.item(), ent.item(), kl.item()


def train_ppo(
    cfg: TrainConfig,
    run: RunDir,
    resume: str | Path | None = None,
    show_progress: bool = True,
    backend=None,
    workers: int = 0,
) -> dict:
    """PPO on `num_envs` envs stepped here, or (`backend` Ray) by `workers` rollout actors (agents/rollouts.py:
    the same rollouts, hence the same weights for a seed). With `cfg.rollout_shards` S > 0, S shards step
    each rollout (agents/shards.py), here or as Ray tasks on `backend`: the same weights on both."""
    from lab_learnsched.agents.shards import ShardedRollouts, check_shards

    check_shards(cfg, "ppo")
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    pc = cfg.ppo
    envs = common.make_envs(cfg, cfg.num_envs)
    meta = common.meta_for(cfg, envs[0], "ppo")
    net = SlotNet(envs[0].feat.spec, cfg.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, eps=1e-5)
    validate = common.Validator(common.make_envs(cfg, 1)[0], cfg.eval_episodes)
    step, seeds, best, shard_pos = 0, common.SeedStream(cfg.seed), -1.0, None
    if resume:
        st = common.load(resume, net, opt)
        step, seeds, best = (
            int(st["step"]),
            common.SeedStream(cfg.seed, int(st["seed_pos"])),
            float(st["best"]),
        )
        shard_pos = st.get("shard_pos")
    n, t_len = cfg.num_envs, pc.rollout
    rollouts = shards = None
    if cfg.rollout_shards:
        shards = ShardedRollouts("ppo", cfg, backend, shard_pos)
        obs = np.zeros((n, envs[0].observation_space.shape[0]), np.float32)
    elif backend is not None and backend.is_ray:
        from lab_learnsched.agents.rollouts import RayRollouts

        rollouts = RayRollouts(cfg, backend, workers, seeds)  # the envs' first resets happen there
        obs = np.zeros((n, envs[0].observation_space.shape[0]), np.float32)
    else:
        obs = np.stack([e.reset(seed=seeds.next())[0] for e in envs])
    ep_hits, ep_reads = np.zeros(n), np.zeros(n)
    done_ratios: list[float] = []
    dim = obs.shape[1]
    b_obs = torch.zeros(t_len, n, dim)
    b_act = torch.zeros(t_len, n, dtype=torch.long)
    b_logp, b_rew, b_done, b_val = (torch.zeros(t_len, n) for _ in range(4))
    per_update = n * t_len
    next_eval = (step // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None
    next_ckpt = (step // cfg.ckpt_every + 1) * cfg.ckpt_every if cfg.ckpt_every else None
    t0 = time.time()
    bar = progress(total=cfg.steps, desc="ppo") if show_progress else None
    if bar is not None and step:
        bar.update(step)
    while step < cfg.steps:
        if pc.anneal_lr:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * max(0.05, 1.0 - step / cfg.steps)
        # -- rollout --
        if shards is not None:
            (b_obs, b_act, b_logp, b_rew, b_done, b_val), obs, ended = shards.collect(
                net, t_len, step // per_update
            )
            done_ratios += ended
        elif rollouts is not None:
            (b_obs, b_act, b_logp, b_rew, b_done, b_val), obs, ended = rollouts.collect(net, t_len)
            done_ratios += ended
        for t in range(t_len if rollouts is None and shards is None else 0):
            o = torch.from_numpy(obs)
            with torch.no_grad():
                logits, v = net(o)
            dist = Categorical(logits=logits)
            a = dist.sample()
            b_obs[t], b_act[t], b_logp[t], b_val[t] = o, a, dist.log_prob(a), v
            for i, e in enumerate(envs):
                ob, r, term, _, info = e.step(int(a[i]))
                ep_hits[i] += info["hits"]
                ep_reads[i] += info["reads"]
                b_rew[t, i], b_done[t, i] = r, float(term)
                if term:
                    done_ratios.append(ep_hits[i] / max(ep_hits[i] + ep_reads[i], 1))
                    ep_hits[i] = ep_reads[i] = 0
                    ob = e.reset(seed=seeds.next())[0]
                obs[i] = ob
        step += per_update
        # -- GAE (b_done[t] marks that the episode ended at step t) --
        with torch.no_grad():
            next_v = net(torch.from_numpy(obs))[1]
        adv = gae(b_rew, b_val, b_done, next_v, pc.gamma, pc.gae_lambda)
        ret = adv + b_val
        # -- update --
        stats = ppo_update(
            net,
            opt,
            pc,
            b_obs.reshape(-1, dim),
            b_act.reshape(-1),
            b_logp.reshape(-1),
            adv.reshape(-1),
            ret.reshape(-1),
        )
        pg_, vl_, ent_, kl_ = stats
        log = {
            "pg_loss": pg_,
            "v_loss": vl_,
            "entropy": ent_,
            "approx_kl": kl_,
            "sps": step / (time.time() - t0),
        }
        if done_ratios:
            log["train_hit_ratio"] = float(np.mean(done_ratios))
            done_ratios = []
        if next_eval is not None and (step >= next_eval or step >= cfg.steps):
            log["val_hit_ratio"] = validate(net, meta)
            log["val_greedy_hit_ratio"] = validate.greedy
            best = max(best, log["val_hit_ratio"])
            next_eval += cfg.eval_every
        run.metrics.log(step=step, **log)
        if bar is not None:
            bar.update(per_update, hit=round(log.get("train_hit_ratio", 0.0), 3))
        if next_ckpt is not None and step >= next_ckpt and step < cfg.steps:
            extra = {"shard_pos": shards.pos} if shards is not None else {}
            common.save(run, step, net, opt, meta, cfg, {"seed_pos": seeds.pos, "best": best, **extra})
            next_ckpt += cfg.ckpt_every
    if rollouts is not None:
        rollouts.close()
    extra = {"shard_pos": shards.pos} if shards is not None else None
    return common.finish("ppo", run, step, net, opt, meta, cfg, validate, seeds, best, bar, t0, extra)
