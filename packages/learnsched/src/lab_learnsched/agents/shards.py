"""Sharded PPO rollouts (`rollout_shards = S > 0`): the same run on the local backend and on Ray.

The `num_envs` envs (setnet: slots) are cut into S contiguous shards, a number set in the config, never by
the cluster. A shard steps a whole rollout on its own: its envs, a private copy of the policy and its own
random streams -- rollout `it`'s actions come from a torch.Generator seeded by (seed, shard, it), and the
j-th episode of shard k gets the training seed base + j * S + k + 1 (setnet: and training instance number
default_rng((seed, k, j))). Nothing a shard computes depends on the other shards or on the process it runs
in, so local and Ray give the same rollouts: the local backend steps the S shards here one after another,
Ray spreads them over actors (one call a rollout, not one a step); the learner joins the parts in shard
order. A seed and S give bit-identical weights on either backend and any cluster size (tested).

Retry: after each rollout a shard returns a small snapshot of itself (per env: the episode number and
the actions taken since that episode began, and its hit/read counts). The simulator is deterministic, so
an actor that died is replaced and rebuilds its shards from their snapshots (reset with the episode's seed,
replay the actions) and runs the rollout again, with the same result (tested by killing an actor).

A checkpoint keeps each shard's episode count (`shard_pos`); a resumed run starts new episodes from there,
as the lockstep loop starts new episodes from its seed position. S = 1 is not the lockstep loop (its actions
come from the shard's generator, not from torch's global stream).
"""

from __future__ import annotations

import functools
import os
import pickle
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.distributions import Categorical

from lab_learnsched.agents.config import TRAIN_INSTANCE0, TRAIN_SEED0
from lab_shared.errors import LabError

MAX_RETRIES = 3  # a shard's rollout is run again on a new actor up to this many times


def check_shards(cfg: Any, agent: str) -> None:
    """rollout_shards: 0 (the lockstep loop) or 1..num_envs, for the PPO agents only."""
    s = int(getattr(cfg, "rollout_shards", 0))
    if s and agent not in ("ppo", "setnet"):
        raise LabError(
            f"rollout_shards is for --agent ppo | setnet; --agent {agent} steps its envs in lockstep"
        )
    if not 0 <= s <= cfg.num_envs:
        raise LabError(f"rollout_shards must be in [0, num_envs = {cfg.num_envs}], got {s}")


def bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous env slices [lo, hi) of `n` envs for `shards` shards (sizes differ by at most one)."""
    cut = [round(i * n / shards) for i in range(shards + 1)]
    return [(cut[i], cut[i + 1]) for i in range(shards)]


def _stream(*keys: int) -> int:
    """A 63-bit generator seed from integer keys (independent streams for different keys)."""
    a, b = np.random.SeedSequence([int(k) for k in keys]).generate_state(2)
    return (int(a) << 31) ^ int(b)


def episode_seed(seed: int, k: int, shards: int, j: int) -> int:
    """Training seed of shard k's j-th episode (0-based): the run's seed range, interleaved by shard."""
    return TRAIN_SEED0 + seed * 1_000_000 + j * shards + k + 1


@dataclass
class Snapshot:
    """What rebuilds a shard between rollouts: episodes started, and per env its episode number and the
    actions since that episode began."""

    pos: int
    eps: list[int]
    acts: list[list[int]]


@dataclass
class ShardJob:
    """Rollout `it` of shard k (envs [lo, hi)) with the pickled policy `net`, from `snap` (None: start new
    episodes at episode number `pos`), taken after rollout `snap_it`."""

    kind: str  # ppo | setnet
    cfg: Any
    run: str  # which training run (a worker may hold shards of several)
    k: int
    lo: int
    hi: int
    net: bytes
    it: int
    steps: int
    pos: int = 0
    snap: Snapshot | None = None
    snap_it: int = -1


@dataclass
class _Env:
    """One env of a shard and its current episode's record."""

    env: Any
    ep: int
    acts: list[int] = field(default_factory=list)
    hits: float = 0.0
    reads: float = 0.0


class _Shard:
    """A shard's envs, mid-episode between rollouts; `kind` picks the env (ppo: BufferPoolEnv; setnet: a
    one-row vecenv.SetVecEnv per slot, a new one each episode)."""

    def __init__(self, job: ShardJob):
        self.kind, self.cfg, self.k, self.it = job.kind, job.cfg, job.k, job.snap_it
        n = job.hi - job.lo
        snap = job.snap or Snapshot(job.pos + n, list(range(job.pos, job.pos + n)), [[] for _ in range(n)])
        self.pos = snap.pos
        self.envs = [_Env(None, e) for e in snap.eps]
        self.obs = np.stack([self._begin(e, acts) for e, acts in zip(self.envs, snap.acts)])

    # -- envs
    def _begin(self, e: _Env, replay: list[int]) -> np.ndarray:
        """Start env `e`'s episode e.ep, then replay `replay` (the actions it had taken, which also counts
        its hits and reads again); its observation."""
        c = self.cfg
        seed = episode_seed(c.seed, self.k, c.rollout_shards, e.ep)
        if self.kind == "ppo":
            from lab_learnsched.agents import common

            if e.env is None:  # an env is reused for the slot's next episodes (reset clears it)
                e.env = common.make_envs(c, 1)[0]
            ob = e.env.reset(seed=seed)[0]
        else:
            from lab_learnsched.vecenv import SetVecEnv

            pick = int(np.random.default_rng([c.seed, self.k, e.ep]).integers(len(c.families) * c.instances))
            wl = _workload(c.families[pick // c.instances], TRAIN_INSTANCE0 + pick % c.instances)
            e.env = SetVecEnv([wl], 1, c.max_queue, seed=0, seed_base=seed - 1, policy=c.policy)
            ob = e.env.reset()[0][0]
        for a in replay:
            ob = self._step(e, a)[0]
        return ob

    def _step(self, e: _Env, a: int) -> tuple[np.ndarray, float, bool, float]:
        """(observation, reward, episode ended, its hit ratio) of action `a` in env `e` (recorded)."""
        e.acts.append(a)
        if self.kind == "ppo":
            ob, r, term, _, info = e.env.step(a)
            e.hits += info["hits"]
            e.reads += info["reads"]
            return ob, float(r), bool(term), e.hits / max(e.hits + e.reads, 1)
        ob, rew, term, _, info = e.env.step(np.array([a], np.int64))
        h, rd = int(info["episode_hits"][0]), int(info["episode_reads"][0])
        return ob[0], float(rew[0]) / self.cfg.reward_div, bool(term[0]), h / max(h + rd, 1)

    def _width(self) -> int | None:
        """setnet: the slots worth feeding (up to the widest queue of this shard's episodes)."""
        if self.kind == "ppo":
            return None
        from lab_learnsched.setfeatures import N_GLOBAL, N_TOKEN

        return N_GLOBAL + max(e.env.eps[0].queue for e in self.envs) * N_TOKEN

    # -- one rollout
    def rollout(self, net, it: int, steps: int) -> tuple[tuple[torch.Tensor, ...], list[float]]:
        n, dim = len(self.envs), self.obs.shape[1]
        b_obs, b_act = torch.zeros(steps, n, dim), torch.zeros(steps, n, dtype=torch.long)
        b_logp, b_rew, b_done, b_val = (torch.zeros(steps, n) for _ in range(4))
        gen = torch.Generator().manual_seed(_stream(self.cfg.seed, self.k, it))
        ratios = []
        for t in range(steps):  # the lockstep loop of ppo.py / setppo.py on these envs
            o = torch.from_numpy(self.obs)
            w = self._width()
            with torch.no_grad():
                logits, v = net(o if w is None else o[:, :w])
            dist = Categorical(logits=logits)
            a = torch.multinomial(dist.probs, 1, generator=gen).squeeze(1)
            b_obs[t], b_act[t], b_logp[t], b_val[t] = o, a, dist.log_prob(a), v
            for i, (e, ai) in enumerate(zip(self.envs, a.tolist())):
                ob, r, term, ratio = self._step(e, ai)
                b_rew[t, i], b_done[t, i] = r, float(term)
                if term:
                    ratios.append(ratio)
                    self.envs[i] = e = _Env(e.env if self.kind == "ppo" else None, self.pos)
                    self.pos += 1
                    ob = self._begin(e, [])
                self.obs[i] = ob
        self.it = it
        return (b_obs, b_act, b_logp, b_rew, b_done, b_val), ratios

    def snapshot(self) -> Snapshot:
        es = self.envs
        return Snapshot(self.pos, [e.ep for e in es], [list(e.acts) for e in es])


@functools.lru_cache(maxsize=512)
def _workload(family: str, instance: int):
    """A training instance, built once per process (setppo.train_workloads builds them all up front)."""
    from lab_learnsched.families import family_workload

    return family_workload(family, instance)


class ShardHost:
    """Holds live shards and runs their rollouts: in the learner's process (local) or as a Ray actor."""

    def __init__(self) -> None:
        self.live: dict[tuple[str, int], _Shard] = {}

    def pid(self) -> int:
        return os.getpid()

    def run(self, jobs: list[ShardJob]) -> list[dict]:
        """Each job's rollout, on its live shard when that is where the job's snapshot was taken, else
        on one rebuilt from the snapshot (a new actor, or a shard that moved)."""
        out = []
        for job in jobs:
            torch.set_num_threads(max(1, job.cfg.threads))
            with torch.random.fork_rng(devices=[]):  # the learner's torch stream is neither read nor moved
                sh = self.live.get((job.run, job.k))
                if sh is None or job.snap is None or sh.it != job.snap_it:
                    sh = _Shard(job)
                bufs, ratios = sh.rollout(pickle.loads(job.net), job.it, job.steps)
            self.live[(job.run, job.k)] = sh
            out.append({"bufs": bufs, "obs": sh.obs.copy(), "ratios": ratios, "snap": sh.snapshot()})
        return out


class ShardedRollouts:
    """The learner's side: `rollout_shards` shards a rollout, stepped here (local) or on Ray actors (as
    many as the cluster has CPUs, at most one a shard; shard k on actor k mod that number)."""

    def __init__(self, kind: str, cfg: Any, backend: Any = None, pos: list[int] | None = None):
        self.kind, self.cfg, self.run = kind, cfg, uuid.uuid4().hex
        self.parts = bounds(cfg.num_envs, cfg.rollout_shards)
        self.start = list(pos) if pos is not None else [0] * len(self.parts)
        if len(self.start) != len(self.parts):
            raise LabError(
                f"the checkpoint has {len(self.start)} rollout shards, the config {len(self.parts)}"
            )
        self.snaps: list[Snapshot | None] = [None] * len(self.parts)
        self.snap_it = -1
        self.ray = None
        self.hosts: list[Any] = [ShardHost()]
        if backend is not None and backend.is_ray:
            from lab_shared.backend import _ray_connect

            self.ray = _ray_connect(backend.address, backend.workers)
            cpus = int(self.ray.cluster_resources().get("CPU", 1))
            self.actor = self.ray.remote(num_cpus=1, max_restarts=0)(ShardHost)
            self.hosts = [self.actor.remote() for _ in range(max(1, min(cpus, len(self.parts))))]

    @property
    def pos(self) -> list[int]:
        """Episodes started by each shard (what a checkpoint keeps)."""
        return [s.pos if s is not None else p for s, p in zip(self.snaps, self.start)]

    def collect(self, net, steps: int, it: int) -> tuple[tuple[torch.Tensor, ...], np.ndarray, list[float]]:
        """Rollout number `it` with `net`'s weights: the shards' buffers joined in env order, the next
        observations, and the ended episodes' hit ratios (shard by shard)."""
        blob = pickle.dumps(net)
        jobs = [ShardJob(self.kind, self.cfg, self.run, k, lo, hi, blob, it, steps, self.start[k], self.snaps[k],
                         self.snap_it) for k, (lo, hi) in enumerate(self.parts)]  # fmt: skip
        outs = self._run(jobs)
        self.snaps, self.snap_it = [o["snap"] for o in outs], it
        bufs = tuple(torch.cat([o["bufs"][j] for o in outs], dim=1) for j in range(6))
        return bufs, np.concatenate([o["obs"] for o in outs]), [r for o in outs for r in o["ratios"]]

    def _run(self, jobs: list[ShardJob]) -> list[dict]:
        if self.ray is None:
            return self.hosts[0].run(jobs)
        from ray import exceptions as rex

        from lab_shared.backend import _get

        h = len(self.hosts)
        mine = [[j for j in jobs if j.k % h == a] for a in range(h)]
        refs = {a: self.hosts[a].run.remote(mine[a]) for a in range(h)}
        res: dict[int, dict] = {}
        for a in range(h):
            for attempt in range(MAX_RETRIES + 1):
                try:
                    got = _get(self.ray, refs[a], f"rollout shards of actor {a}")
                    break
                except rex.RayActorError as e:  # the actor died: a new one rebuilds the shards and reruns
                    if attempt == MAX_RETRIES:
                        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                        raise LabError(f"rollout actor failed {MAX_RETRIES + 1} times: {first}") from None
                    self.hosts[a] = self.actor.remote()
                    refs[a] = self.hosts[a].run.remote(mine[a])
            res.update({j.k: o for j, o in zip(mine[a], got)})
        return [res[k] for k in range(len(jobs))]

    def close(self) -> None:
        if self.ray is not None:
            for a in self.hosts:
                self.ray.kill(a)
        self.hosts = []
