"""A warm start for the shape-free agent: imitate the planner's decisions (behaviour cloning), then PPO.

`collect` runs the planner (planner.py) on episodes of the training instances and records, at every
decision, the observation (setfeatures) and the planner's choice; `pretrain` fits SetNet to those choices
with a masked cross-entropy. The planner is slow (tens of ms a decision) but only needed here: the
distilled network decides in well under a millisecond. PPO (setppo.py) then continues from these weights.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from lab_learnsched.agents.config import TRAIN_SEED0, SetTrainConfig
from lab_learnsched.agents.setnet import SetNet
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.schedulers import make_scheduler
from lab_learnsched.setfeatures import N_GLOBAL, N_TOKEN, SetFeaturizer, flat_dim


def collect(
    cfg: SetTrainConfig, workloads: list, seconds: float, max_decisions: int | None = None, log=None
) -> tuple[np.ndarray, np.ndarray]:
    """(observations padded to cfg.max_queue slots, planner actions) from planner episodes for `seconds`
    (or until `max_decisions` are recorded)."""
    rng = np.random.default_rng(cfg.seed + 77)
    planner = make_scheduler(cfg.distill_planner)
    feat = SetFeaturizer()
    dim = flat_dim(cfg.max_queue)
    obs, act = [], []
    t0, n_ep = time.time(), 0
    enough = lambda: time.time() - t0 >= seconds or (max_decisions is not None and len(act) >= max_decisions)  # noqa: E731
    while not enough():
        wl = workloads[int(rng.integers(len(workloads)))]
        env = BufferPoolEnv(wl, policy=cfg.policy)
        seed = TRAIN_SEED0 + 500_000 + n_ep
        env.reset(seed=seed)
        planner.reset(seed)
        done = False
        while not done and not enough():
            st = env.state()
            valid = st.valid_slots()
            a = planner.choose(st)
            if len(valid) > 1:  # forced moves teach nothing
                o = np.zeros(dim, np.float32)
                f = feat.observe(st)
                o[: f.shape[0]] = f
                obs.append(o)
                act.append(a)
            _, _, done, _, _ = env.step(a)
        n_ep += 1
    if log is not None:
        log(f"distill: {len(act)} planner decisions from {n_ep} episodes in {time.time() - t0:.0f} s")
    return np.array(obs, np.float32).reshape(-1, dim), np.array(act, np.int64)


def pretrain(net: SetNet, obs: np.ndarray, act: np.ndarray, epochs: int, lr: float, seed: int) -> float:
    """Masked cross-entropy on the planner's choices; minibatches of similar widths. Returns the final
    training accuracy (argmax = planner's choice)."""
    if len(act) == 0:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    o, a = torch.from_numpy(obs), torch.from_numpy(act)
    valid = o[:, N_GLOBAL:].reshape(len(a), -1, N_TOKEN)[..., 0] > 0.5
    width = (valid * torch.arange(1, valid.shape[1] + 1)).max(1).values.clamp(min=1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    mb = 256
    net.train()
    for _ in range(epochs):
        order = torch.argsort(width.float() + torch.rand(len(a), generator=g))
        chunks = [order[k : k + mb] for k in range(0, len(a), mb)]
        for j in torch.randperm(len(chunks), generator=g).tolist():
            idx = chunks[j]
            w = int(width[idx].max())
            logits, _ = net(o[idx, : N_GLOBAL + w * N_TOKEN])
            loss = F.cross_entropy(logits, a[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
    with torch.no_grad():
        hits = 0
        for k in range(0, len(a), 1024):
            logits, _ = net(o[k : k + 1024])
            hits += int((logits.argmax(1) == a[k : k + 1024]).sum())
    return hits / len(a)
