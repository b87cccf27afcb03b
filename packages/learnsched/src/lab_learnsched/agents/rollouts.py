"""PPO rollouts of `lab sched train --agent ppo` on Ray: rollout workers as actors, the same run as local.

Each `RolloutWorker` actor owns a contiguous slice of the `num_envs` environments and a copy of the policy.
Every iteration the driver sends it the weights and its torch RNG state; the workers then step in lockstep,
one Ray call a step: each samples its envs' actions, steps them and reports which episodes ended. The
driver hands out the next episode seeds in env order (the local loop's order: one seed stream for all envs)
and at the end gathers the slices into the (steps, envs) rollout the update reads.

The policy runs as in the local loop: on a (num_envs, ...) batch in which the other workers' rows are
zeros, so each row's arithmetic is that of the one-process batch (same shapes) and `Categorical.sample()`
consumes the random stream exactly as there (torch draws one exponential per element): every row gets the
draw it gets locally. The driver then continues from the workers' RNG state. So a seed gives the same weights on either backend (tested). The per-step call costs a
round trip: worth it where an environment step is slow (many or large envs), not for the small simulator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.distributions import Categorical

from lab_learnsched.agents import common
from lab_learnsched.agents.nets import SlotNet


class RolloutWorker:
    """Envs [lo, hi) of `num_envs`, a policy copy, and their part of one rollout."""

    def __init__(self, cfg, lo: int, hi: int):
        torch.set_num_threads(1)
        self.cfg, self.lo, self.hi = cfg, lo, hi
        self.envs = common.make_envs(cfg, hi - lo)
        self.net = SlotNet(self.envs[0].feat.spec, cfg.hidden)
        self.obs: np.ndarray | None = None
        self.hits, self.reads = np.zeros(hi - lo), np.zeros(hi - lo)

    def reset(self, seeds: dict[int, int]) -> None:
        """Start a new episode in each env i (a global index) with seeds[i]."""
        if self.obs is None:
            self.obs = np.stack([e.reset(seed=seeds[self.lo + j])[0] for j, e in enumerate(self.envs)])
            return
        for i, s in seeds.items():
            if self.lo <= i < self.hi:  # the driver sends every worker all the seeds of a step
                self.obs[i - self.lo] = self.envs[i - self.lo].reset(seed=s)[0]

    def begin(self, weights: dict, rng: torch.Tensor, steps: int) -> None:
        self.net.load_state_dict(weights)
        torch.set_rng_state(rng)
        n, dim = self.hi - self.lo, self.obs.shape[1]
        self.b_obs = torch.zeros(steps, n, dim)
        self.b_act = torch.zeros(steps, n, dtype=torch.long)
        self.b_logp, self.b_rew, self.b_done, self.b_val = (torch.zeros(steps, n) for _ in range(4))

    def step(self, t: int, num_envs: int, seeds: dict[int, int]) -> list[tuple[int, float]]:
        """Step t: new episodes for the envs that ended at t-1, then sample and step; (env, hit ratio) of
        the episodes that end now."""
        self.reset(seeds)
        o = torch.from_numpy(self.obs)
        full = torch.zeros(num_envs, o.shape[1])  # the local batch's shape: the same arithmetic for each row
        full[self.lo : self.hi] = o
        with torch.no_grad():
            logits, v = self.net(full)
        dist = Categorical(logits=logits)
        a = dist.sample()
        mine = slice(self.lo, self.hi)
        self.b_obs[t], self.b_act[t], self.b_logp[t], self.b_val[t] = (
            o,
            a[mine],
            dist.log_prob(a)[mine],
            v[mine],
        )
        a = a[mine]
        ended = []
        for j, e in enumerate(self.envs):
            ob, r, term, _, info = e.step(int(a[j]))
            self.hits[j] += info["hits"]
            self.reads[j] += info["reads"]
            self.b_rew[t, j], self.b_done[t, j] = r, float(term)
            if term:
                ended.append((self.lo + j, self.hits[j] / max(self.hits[j] + self.reads[j], 1)))
                self.hits[j] = self.reads[j] = 0
            self.obs[j] = ob
        return ended

    def finish(self, seeds: dict[int, int]) -> tuple:
        """The slice of the rollout, the observations after it, and the RNG state it left."""
        self.reset(seeds)
        bufs = (self.b_obs, self.b_act, self.b_logp, self.b_rew, self.b_done, self.b_val)
        return bufs, self.obs.copy(), torch.get_rng_state()


class RayRollouts:
    """The driver's side: `workers` actors over `num_envs` envs; `collect` runs one rollout."""

    def __init__(self, cfg, backend, workers: int, seeds: common.SeedStream):
        from lab_shared.backend import _ray_connect

        ray = _ray_connect(backend.address, backend.workers)
        self.ray = ray
        n = cfg.num_envs
        k = max(1, min(workers or int(ray.cluster_resources().get("CPU", 1)), n))
        bounds = [round(i * n / k) for i in range(k + 1)]
        actor = ray.remote(num_cpus=1, max_restarts=0)(RolloutWorker)
        self.workers = [actor.remote(cfg, bounds[i], bounds[i + 1]) for i in range(k)]
        self.n, self.seeds = n, seeds
        first = {i: seeds.next() for i in range(n)}  # the local loop's first resets, env by env
        self._get([w.reset.remote(first) for w in self.workers])

    def _get(self, refs: list) -> list:
        from lab_shared.backend import _get

        return [_get(self.ray, r, "rollout") for r in refs]

    def collect(self, net, steps: int) -> tuple[tuple[torch.Tensor, ...], np.ndarray, list[float]]:
        """One rollout of `steps` steps with `net`'s weights: (obs, act, logp, rew, done, val), the next
        observations, and the hit ratios of the episodes that ended (in the local loop's order)."""
        weights = self.ray.put({k: v.detach().clone() for k, v in net.state_dict().items()})
        rng = torch.get_rng_state()
        self._get([w.begin.remote(weights, rng, steps) for w in self.workers])
        seeds: dict[int, int] = {}
        ratios: list[float] = []
        for t in range(steps):
            ended = [
                e for part in self._get([w.step.remote(t, self.n, seeds) for w in self.workers]) for e in part
            ]
            ended.sort()
            ratios += [r for _, r in ended]
            seeds = {i: self.seeds.next() for i, _ in ended}  # in env order, as the local loop
        parts = self._get([w.finish.remote(seeds) for w in self.workers])
        bufs = tuple(torch.cat([p[0][j] for p in parts], dim=1) for j in range(6))
        obs = np.concatenate([p[1] for p in parts])
        torch.set_rng_state(parts[0][2])  # every worker drew the same stream: continue from it
        return bufs, obs, ratios

    def close(self) -> None:
        for w in self.workers:
            self.ray.kill(w)


def check_ray_agent(agent: str, backend: Any) -> None:
    """--backend ray trains PPO's rollouts on actors; the other agents run here only (one line if asked)."""
    from lab_shared.errors import LabError

    if backend is not None and backend.is_ray and agent != "ppo":
        raise LabError(
            f"--backend ray runs the rollouts of --agent ppo; --agent {agent} trains locally only "
            "(its vectorized env draws every env's workloads from one shared stream)"
        )
