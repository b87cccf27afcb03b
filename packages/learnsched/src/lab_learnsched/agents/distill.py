"""Planner imitation for the shape-free agent: behaviour cloning, then DAgger rounds, then (optionally) PPO.

Behaviour cloning (round 0, `distill_episodes`): the labeller (`distill_planner`, a beam-search planner,
planner.py) runs episodes of the training instances; every decision with a real choice is recorded as
(observation, planner's slot), and SetNet is fitted with a masked cross-entropy. A cloned policy drifts into
states the planner never visits and its errors compound; DAgger (Ross et al., AISTATS 2011) fixes that:
each of `dagger_rounds` rounds rolls out the current net (the planner's own choice with probability
`dagger_beta ** round`) for `dagger_episodes` episodes, labels every visited state with the planner,
aggregates the data and refits (warm, `distill_epochs` epochs over everything). After every round the net is
scored on the validation episodes (setppo.SetValidator); the best one is kept in `best/`, and PPO
(setppo.py) may continue from the last round. Collection is saved in parts of `distill_chunk` episodes and
the net after every round, so a stopped run (SIGTERM, `lab sched train --resume RUN`) continues where it
stopped with the same data and weights: episodes, workloads and mixing draws depend only on (seed, round,
episode), and each fit is seeded by (seed, round).

`collect` / `pretrain` are the time-bounded warm start of `distill_seconds` (kept for that setting).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lab_learnsched.agents.config import TRAIN_SEED0, SetTrainConfig
from lab_learnsched.agents.setnet import SetNet
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.schedulers import make_scheduler
from lab_learnsched.setfeatures import N_GLOBAL, N_TOKEN, SetFeaturizer, flat_dim
from lab_shared import signals
from lab_shared.checkpoint import find_checkpoint, load_model_weights, save_checkpoint
from lab_shared.errors import LabError
from lab_shared.io import atomic_path, atomic_write_json, read_json


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


def pretrain(
    net: SetNet,
    obs: np.ndarray,
    act: np.ndarray,
    epochs: int,
    lr: float,
    seed: int,
    decay: bool = False,
    stop=None,
    q: np.ndarray | None = None,
    soft: float = 0.0,
) -> float:
    """Masked cross-entropy on the planner's choices; minibatches of similar widths (the order drawn from
    `seed`). `decay`: the learning rate falls linearly to 10% over the epochs; `stop()` is checked between
    epochs (True: raise _Stop). With planner scores `q` (estimated total reads per first slot, NaN: none) and
    `soft` > 0 a second cross-entropy pulls the net towards softmax(-(q - min q) / (soft * min q)): a slot
    the planner scores 1% worse gets e^-1 of the best one's weight at soft = 0.01, so the net learns which
    mistakes cost reads, not only the top choice. Returns the final training accuracy."""
    if len(act) == 0:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    o, a = torch.from_numpy(obs), torch.from_numpy(act)
    target = None
    if q is not None and soft > 0:
        qt = torch.from_numpy(q)
        ok = torch.isfinite(qt)
        qmin = torch.where(ok, qt, torch.inf).min(1, keepdim=True).values
        z = torch.where(ok, -(qt - qmin) / (soft * qmin.clamp(min=1.0)), torch.tensor(-torch.inf))
        has = ok.any(1)
        target = torch.zeros_like(qt)
        target[has] = torch.softmax(z[has], 1)
    valid = o[:, N_GLOBAL:].reshape(len(a), -1, N_TOKEN)[..., 0] > 0.5
    width = (valid * torch.arange(1, valid.shape[1] + 1)).max(1).values.clamp(min=1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    mb = 256
    net.train()
    for ep in range(epochs):
        if stop is not None and stop():
            raise _Stop
        if decay:
            for grp in opt.param_groups:
                grp["lr"] = lr * (1.0 - 0.9 * ep / max(epochs, 1))
        order = torch.argsort(width.float() + torch.rand(len(a), generator=g))
        chunks = [order[k : k + mb] for k in range(0, len(a), mb)]
        for j in torch.randperm(len(chunks), generator=g).tolist():
            idx = chunks[j]
            w = int(width[idx].max())
            logits, _ = net(o[idx, : N_GLOBAL + w * N_TOKEN])
            loss = F.cross_entropy(logits, a[idx])
            if target is not None:
                t = target[idx, :w]
                loss = loss - (t * torch.log_softmax(logits, 1)).sum(1).mean()
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


def check_distill(cfg: SetTrainConfig) -> None:
    """LabError (one line) for imitation settings that cannot run."""
    if not 0.0 <= cfg.dagger_beta <= 1.0:
        raise LabError(f"dagger_beta must be in [0, 1], got {cfg.dagger_beta}")
    if cfg.distill_soft < 0:
        raise LabError(f"distill_soft must be >= 0, got {cfg.distill_soft}")
    make_scheduler(cfg.distill_planner)  # an unknown planner spec is a LabError


class _Stop(Exception):
    """A stop signal arrived inside collection or a fit (the caller checkpoints and raises Preempted)."""


def episode_draw(
    cfg: SetTrainConfig, n_workloads: int, rnd: int, i: int
) -> tuple[int, int, np.random.Generator]:
    """(workload index, episode seed, rng for the mixing draws) of episode `i` of DAgger round `rnd`:
    a function of (seed, round, episode) only, so a resumed collection draws the same episodes."""
    rng = np.random.default_rng([cfg.seed, rnd, i, 7])
    wl = int(rng.integers(n_workloads))
    return wl, TRAIN_SEED0 + 500_000 + cfg.seed * 1_000_000 + rnd * 50_000 + i, rng


def label_episode(
    env: BufferPoolEnv,
    planner,
    feat: SetFeaturizer,
    seed: int,
    dim: int,
    net=None,
    beta: float = 1.0,
    rng=None,
) -> tuple[list[np.ndarray], list[int], list[np.ndarray], int]:
    """One episode: at every decision with a choice, record the observation, the planner's slot and its
    score per first slot (estimated total reads, NaN where it has none); act with the planner (probability
    `beta`, or always without `net`) or the net's argmax. Returns (observations, labels, scores, decisions
    where the action taken differed from the label)."""
    env.reset(seed=seed)
    planner.reset(seed)
    obs, act, qs, off = [], [], [], 0
    slots = (dim - N_GLOBAL) // N_TOKEN
    done = False
    while not done:
        st = env.state()
        valid = st.valid_slots()
        a = valid[0]
        if len(valid) > 1:  # forced moves teach nothing
            label = int(planner.choose(st))
            f = feat.observe(st)
            o = np.zeros(dim, np.float32)
            o[: f.shape[0]] = f
            q = np.full(slots, np.nan, np.float32)
            for k, v in getattr(planner, "first_scores", {}).items():
                q[k] = v
            obs.append(o)
            act.append(label)
            qs.append(q)
            a = label
            if net is not None and not (rng is not None and rng.random() < beta):
                with torch.no_grad():
                    a = int(net(torch.from_numpy(f)[None])[0][0].argmax())
                off += a != label
        _, _, done, _, _ = env.step(a)
    return obs, act, qs, off


def _save_part(path: Path, obs: np.ndarray, act: np.ndarray, q: np.ndarray, off: int) -> None:
    with atomic_path(path, suffix=".tmp") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, obs=obs, act=act, q=q, off=np.array([off]))


def collect_round(
    cfg: SetTrainConfig, workloads: list, rnd: int, n_episodes: int, data_dir: Path, net=None, log=None,
    stop=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:  # fmt: skip
    """Labelled decisions of round `rnd` (net=None: the planner drives; else DAgger with beta =
    dagger_beta ** rnd), in parts of `distill_chunk` episodes saved under `data_dir` (parts already there
    are read back, not recollected). Returns (observations, labels, planner scores, off-label actions)."""
    planner = make_scheduler(cfg.distill_planner)
    feat = SetFeaturizer()
    dim = flat_dim(cfg.max_queue)
    beta = 1.0 if net is None else cfg.dagger_beta**rnd
    was = None if net is None else net.training
    if net is not None:
        net.eval()
    envs: dict[int, BufferPoolEnv] = {}
    obs_all, act_all, q_all, off_all = [], [], [], 0
    slots = cfg.max_queue
    chunk = max(1, cfg.distill_chunk)
    t0 = time.time()
    for p, start in enumerate(range(0, n_episodes, chunk)):
        path = data_dir / f"round{rnd:02d}-part{p:04d}.npz"
        if path.exists():
            with np.load(path) as z:
                o, a, off = z["obs"], z["act"], int(z["off"][0])
                q = z["q"] if "q" in z else np.full((len(a), slots), np.nan, np.float32)
        else:
            if stop is not None and stop():
                raise _Stop
            obs, act, qs, off = [], [], [], 0
            for i in range(start, min(n_episodes, start + chunk)):
                w, seed, rng = episode_draw(cfg, len(workloads), rnd, i)
                if w not in envs:
                    envs[w] = BufferPoolEnv(workloads[w], policy=cfg.policy)
                o_i, a_i, q_i, off_i = label_episode(envs[w], planner, feat, seed, dim, net, beta, rng)
                obs += o_i
                qs += q_i
                act += a_i
                off += off_i
            o = np.array(obs, np.float32).reshape(-1, dim)
            a = np.array(act, np.int64)
            q = np.array(qs, np.float32).reshape(-1, slots)
            _save_part(path, o, a, q, off)
        obs_all.append(o)
        q_all.append(q)
        act_all.append(a)
        off_all += off
    if was is not None:
        net.train(was)
    o = np.concatenate(obs_all) if obs_all else np.zeros((0, dim), np.float32)
    a = np.concatenate(act_all) if act_all else np.zeros(0, np.int64)
    q = np.concatenate(q_all) if q_all else np.zeros((0, slots), np.float32)
    if log is not None:
        log(f"distill round {rnd}: {len(a)} labelled decisions from {n_episodes} episodes "
            f"({off_all} off-label actions, beta {beta:.2f}) in {time.time() - t0:.0f} s")  # fmt: skip
    return o, a, q, off_all


def run_distill(
    cfg: SetTrainConfig, run, net: SetNet, validate, workloads: list, save_best, log=None
) -> float:
    """Behaviour cloning + `dagger_rounds` DAgger rounds (module docstring), resumable from `run`'s
    `distill/` folder. `save_best(net, val, round)` is called when a round improves validation. Leaves the
    net of the last round in `net`; returns the best validation score. Raises _Stop on a stop signal."""
    root = run.path / "distill"
    data_dir, ck_root = root / "data", root / "net"
    state = read_json(root / "state.json") if (root / "state.json").exists() else {"done": -1, "best": None}
    if state["done"] >= 0:
        load_model_weights(net, find_checkpoint(ck_root) / "model.safetensors")
    best = float("inf") if state["best"] is None else float(state["best"])
    stop = signals.stop_requested
    obs_l, act_l, q_l = [], [], []
    for rnd in range(1 + cfg.dagger_rounds):
        n = cfg.distill_episodes if rnd == 0 else cfg.dagger_episodes
        if rnd <= state["done"]:  # done before a stop: its data is on disk, its fit is in the checkpoint
            o, a, q, _ = collect_round(cfg, workloads, rnd, n, data_dir)
            obs_l.append(o)
            act_l.append(a)
            q_l.append(q)
            continue
        td = time.time()
        o, a, q, off = collect_round(cfg, workloads, rnd, n, data_dir, None if rnd == 0 else net, log, stop)
        obs_l.append(o)
        act_l.append(a)
        q_l.append(q)
        t_fit = time.time()
        obs, act = np.concatenate(obs_l), np.concatenate(act_l)
        q = np.concatenate(q_l) if cfg.distill_soft > 0 else None
        acc = pretrain(net, obs, act, cfg.distill_epochs, cfg.distill_lr, cfg.seed * 1000 + rnd, True, stop,
                       q=q, soft=cfg.distill_soft)  # fmt: skip
        val = validate(net)
        ck = save_checkpoint(ck_root, rnd, net, None, {"round": rnd, "val_vs_best": val}, keep=1)
        improved = val < best
        if improved:
            best = val
            save_best(net, val, rnd)
        state = {"done": rnd, "best": best, "checkpoint": str(ck.name)}
        atomic_write_json(root / "state.json", state)
        run.metrics.log(step=0, distill_round=rnd, distill_decisions=int(len(act)), distill_new=int(len(a)),
                        distill_off_label=int(off), distill_accuracy=acc, val_vs_best=val,
                        distill_collect_seconds=t_fit - td, distill_fit_seconds=time.time() - t_fit)  # fmt: skip
        if log is not None:
            log(f"distill round {rnd}: {len(act)} decisions, train accuracy {acc:.3f}, validation "
                f"{100 * val:+.2f}% vs best heuristic{' (best)' if improved else ''}")  # fmt: skip
    return best
