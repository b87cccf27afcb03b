"""Masked double DQN (one file): replay buffer, target network, epsilon-greedy over valid slots.

The paper's agent family. Q-values come from the shared per-slot scorer (nets.SlotNet), so invalid slots
are masked in the argmax, in the target's max and in exploration. The replay buffer is not checkpointed: a
resumed run refills it (documented trade-off: checkpoints stay small).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lab_learnsched.agents import common
from lab_learnsched.agents.config import TrainConfig
from lab_learnsched.agents.nets import SlotNet, masks_from_obs
from lab_shared.progress import progress
from lab_shared.rundir import RunDir
from lab_shared.seed import seed_everything


class Replay:
    """A ring buffer of transitions (obs, action, reward, next obs, done) in numpy arrays."""

    def __init__(self, size: int, dim: int, rng: np.random.Generator):
        self.obs = np.zeros((size, dim), np.float32)
        self.nxt = np.zeros((size, dim), np.float32)
        self.act = np.zeros(size, np.int64)
        self.rew = np.zeros(size, np.float32)
        self.done = np.zeros(size, np.float32)
        self.size, self.pos, self.full, self.rng = size, 0, False, rng

    def add(self, o, a, r, n, d) -> None:
        i = self.pos
        self.obs[i], self.act[i], self.rew[i], self.nxt[i], self.done[i] = o, a, r, n, d
        self.pos = (i + 1) % self.size
        self.full = self.full or self.pos == 0

    def __len__(self) -> int:
        return self.size if self.full else self.pos

    def sample(self, k: int):
        idx = self.rng.integers(0, len(self), size=k)
        t = torch.from_numpy
        return t(self.obs[idx]), t(self.act[idx]), t(self.rew[idx]), t(self.nxt[idx]), t(self.done[idx])


def train_dqn(
    cfg: TrainConfig, run: RunDir, resume: str | Path | None = None, show_progress: bool = True
) -> dict:
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    dc = cfg.dqn
    envs = common.make_envs(cfg, cfg.num_envs)
    meta = common.meta_for(cfg, envs[0], "dqn")
    spec = envs[0].feat.spec
    net, target = SlotNet(spec, cfg.hidden), SlotNet(spec, cfg.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    validate = common.Validator(common.make_envs(cfg, 1)[0], cfg.eval_episodes)
    step, seeds, best = 0, common.SeedStream(cfg.seed), -1.0
    if resume:
        st = common.load(resume, net, opt)
        step, seeds, best = (
            int(st["step"]),
            common.SeedStream(cfg.seed, int(st["seed_pos"])),
            float(st["best"]),
        )
    target.load_state_dict(net.state_dict())
    rng = np.random.default_rng(cfg.seed + step)
    n = cfg.num_envs
    obs = np.stack([e.reset(seed=seeds.next())[0] for e in envs])
    replay = Replay(dc.buffer_size, obs.shape[1], rng)
    ep_hits, ep_reads = np.zeros(n), np.zeros(n)
    done_ratios: list[float] = []
    losses: list[float] = []
    next_eval = (step // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None
    next_ckpt = (step // cfg.ckpt_every + 1) * cfg.ckpt_every if cfg.ckpt_every else None
    next_log, next_target = step + 2_000, step + dc.target_every
    start_learning = step + dc.learning_starts
    t0 = time.time()
    bar = progress(total=cfg.steps, desc="dqn") if show_progress else None
    if bar is not None and step:
        bar.update(step)
    vec_steps = 0
    while step < cfg.steps:
        eps = dc.eps_end + (dc.eps_start - dc.eps_end) * max(0.0, 1.0 - step / (dc.eps_fraction * cfg.steps))
        with torch.no_grad():
            q, _ = net(torch.from_numpy(obs))
        greedy = q.argmax(1).numpy()
        for i, e in enumerate(envs):
            valid = np.flatnonzero(e.action_masks())
            a = int(rng.choice(valid)) if rng.random() < eps else int(greedy[i])
            ob, r, term, _, info = e.step(a)
            replay.add(obs[i], a, r, ob, float(term))
            ep_hits[i] += info["hits"]
            ep_reads[i] += info["reads"]
            if term:
                done_ratios.append(ep_hits[i] / max(ep_hits[i] + ep_reads[i], 1))
                ep_hits[i] = ep_reads[i] = 0
                ob = e.reset(seed=seeds.next())[0]
            obs[i] = ob
        step += n
        vec_steps += 1
        if bar is not None:
            bar.update(n)
        if step >= start_learning and vec_steps % dc.train_every == 0:
            o, a, r, nx, d = replay.sample(dc.batch_size)
            with torch.no_grad():
                tq, _ = target(nx)
                if dc.double:
                    oq, _ = net(nx)
                    na = oq.argmax(1, keepdim=True)
                    nq = tq.gather(1, na).squeeze(1)
                else:
                    nq = tq.max(1).values
                nq = torch.where(masks_from_obs(nx, spec).any(1), nq, torch.zeros_like(nq))
                y = r + dc.gamma * (1.0 - d) * nq
            qa = net(o)[0].gather(1, a[:, None]).squeeze(1)
            loss = F.smooth_l1_loss(qa, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), dc.max_grad_norm)
            opt.step()
            losses.append(loss.item())
        if step >= next_target:
            target.load_state_dict(net.state_dict())
            next_target += dc.target_every
        at_eval = next_eval is not None and step >= next_eval
        if step >= next_log or at_eval or step >= cfg.steps:
            log = {"epsilon": eps, "sps": step / (time.time() - t0)}
            if losses:
                log["td_loss"] = float(np.mean(losses))
                losses = []
            if done_ratios:
                log["train_hit_ratio"] = float(np.mean(done_ratios))
                done_ratios = []
            if at_eval:
                log["val_hit_ratio"] = validate(net, meta)
                log["val_greedy_hit_ratio"] = validate.greedy
                best = max(best, log["val_hit_ratio"])
                next_eval += cfg.eval_every
            run.metrics.log(step=step, **log)
            next_log = step + 2_000
        if next_ckpt is not None and step >= next_ckpt and step < cfg.steps:
            common.save(run, step, net, opt, meta, cfg, {"seed_pos": seeds.pos, "best": best})
            next_ckpt += cfg.ckpt_every
    return common.finish("dqn", run, step, net, opt, meta, cfg, validate, seeds, best, bar, t0)
