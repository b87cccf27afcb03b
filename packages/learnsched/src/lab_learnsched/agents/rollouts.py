"""PPO rollouts of `lab sched train --agent ppo | setnet` on Ray: rollout workers as actors, the same run as local.

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
from lab_learnsched.agents.setnet import SetNet


class _SliceWorker:
    """What both rollout actors share: rows [lo, hi) of the local batch, the rollout buffers of those rows,
    and the sampling step on a full-size batch (see the module docstring)."""

    lo: int
    hi: int
    net: torch.nn.Module
    obs: np.ndarray

    def begin(self, weights: dict, rng: torch.Tensor, steps: int) -> None:
        self.net.load_state_dict(weights)
        torch.set_rng_state(rng)
        n, dim = self.hi - self.lo, self.obs.shape[1]
        self.b_obs = torch.zeros(steps, n, dim)
        self.b_act = torch.zeros(steps, n, dtype=torch.long)
        self.b_logp, self.b_rew, self.b_done, self.b_val = (torch.zeros(steps, n) for _ in range(4))

    def _sample(self, t: int, num_envs: int, cols: int | None = None) -> torch.Tensor:
        """Sample step t's actions on the (num_envs, ...) batch with these rows filled in (the first
        `cols` features only, when given), record obs/act/logp/value of these rows, return their actions."""
        o = torch.from_numpy(self.obs)
        full = torch.zeros(num_envs, o.shape[1])  # the local batch's shape: the same arithmetic for each row
        full[self.lo : self.hi] = o
        with torch.no_grad():
            logits, v = self.net(full if cols is None else full[:, :cols])
        dist = Categorical(logits=logits)
        a = dist.sample()
        mine = slice(self.lo, self.hi)
        self.b_obs[t], self.b_act[t], self.b_logp[t], self.b_val[t] = (
            o,
            a[mine],
            dist.log_prob(a)[mine],
            v[mine],
        )
        return a[mine]

    def _bufs(self) -> tuple[torch.Tensor, ...]:
        return self.b_obs, self.b_act, self.b_logp, self.b_rew, self.b_done, self.b_val


class _Driver:
    """What both drivers share: the actors over contiguous slices of `n` envs, and gathering their parts."""

    ray: Any
    workers: list

    def _spawn(self, cls: type, workers: int, n: int, *args) -> None:
        k = max(1, min(workers or int(self.ray.cluster_resources().get("CPU", 1)), n))
        bounds = [round(i * n / k) for i in range(k + 1)]
        actor = self.ray.remote(num_cpus=1, max_restarts=0)(cls)
        self.workers = [actor.remote(*args, bounds[i], bounds[i + 1]) for i in range(k)]

    def _get(self, refs: list) -> list:
        from lab_shared.backend import _get

        return [_get(self.ray, r, "rollout") for r in refs]

    def _gather(self, parts: list) -> tuple[tuple[torch.Tensor, ...], np.ndarray]:
        """The workers' slices joined in env order; the driver continues from their RNG state (every worker
        drew the same stream)."""
        bufs = tuple(torch.cat([p[0][j] for p in parts], dim=1) for j in range(6))
        torch.set_rng_state(parts[0][2])
        return bufs, np.concatenate([p[1] for p in parts])

    def close(self) -> None:
        for w in self.workers:
            self.ray.kill(w)


class RolloutWorker(_SliceWorker):
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

    def step(self, t: int, num_envs: int, seeds: dict[int, int]) -> list[tuple[int, float]]:
        """Step t: new episodes for the envs that ended at t-1, then sample and step; (env, hit ratio) of
        the episodes that end now."""
        self.reset(seeds)
        a = self._sample(t, num_envs)
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
        return self._bufs(), self.obs.copy(), torch.get_rng_state()


class RayRollouts(_Driver):
    """The driver's side: `workers` actors over `num_envs` envs; `collect` runs one rollout."""

    def __init__(self, cfg, backend, workers: int, seeds: common.SeedStream):
        from lab_shared.backend import _ray_connect

        self.ray = _ray_connect(backend.address, backend.workers)
        n = cfg.num_envs
        self._spawn(RolloutWorker, workers, n, cfg)
        self.n, self.seeds = n, seeds
        first = {i: seeds.next() for i in range(n)}  # the local loop's first resets, env by env
        self._get([w.reset.remote(first) for w in self.workers])

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
        bufs, obs = self._gather(self._get([w.finish.remote(seeds) for w in self.workers]))
        return bufs, obs, ratios


def check_ray_agent(agent: str, backend: Any) -> None:
    """--backend ray runs the rollouts of the PPO agents (ppo, setnet) on actors; dqn trains here only."""
    from lab_shared.errors import LabError

    if backend is not None and backend.is_ray and agent not in ("ppo", "setnet"):
        raise LabError(
            f"--backend ray runs the PPO rollouts of --agent ppo | setnet; --agent {agent} trains locally only "
            "(its replay buffer learns from every step as it comes)"
        )


# ---------------------------------------------------------------- the shape-free agent (setppo)


class SetRolloutWorker(_SliceWorker):
    """Slots [lo, hi) of the set agent's vectorized env (vecenv.SetVecEnv's episode mechanics, its
    `Episode` objects kept per slot and workload as there), a policy copy, and their part of one rollout.
    Which workload and seed a slot's next episode gets is the driver's call (one stream for all slots)."""

    def __init__(self, cfg, workloads: list, lo: int, hi: int):
        from lab_learnsched.setfeatures import flat_dim

        torch.set_num_threads(1)
        self.cfg, self.wls, self.lo, self.hi = cfg, workloads, lo, hi
        self.net = SetNet(cfg.hidden, cfg.layers, cfg.heads)
        self.obs = np.zeros((hi - lo, flat_dim(cfg.max_queue)), np.float32)
        self.cache: dict[tuple[int, int], Any] = {}
        self.eps: list[Any] = [None] * (hi - lo)

    def reset(self, new: dict[int, tuple[int, int]]) -> np.ndarray:
        """New episodes: slot i (global) -> (workload index, seed), as SetVecEnv._new does them."""
        from lab_learnsched.vecenv import Episode

        for i, (k, seed) in sorted(new.items()):
            if not self.lo <= i < self.hi:
                continue
            j = i - self.lo
            ep = self.cache.get((k, j))
            if ep is None:
                ep = self.cache[(k, j)] = Episode(self.wls[k], policy=self.cfg.policy)
            ep.bind(self.obs[j])
            ep.reset(seed)
            self.eps[j] = ep
            ep.observe(self.obs[j])
        return self.obs.copy()

    def step(self, t: int, num_envs: int, width: int, new: dict) -> list[tuple[int, float]]:
        """setppo's rollout step t on these slots (the batch at `num_envs` rows, `width` slots wide)."""
        from lab_learnsched.setfeatures import N_GLOBAL, N_TOKEN

        self.reset(new)
        acts = self._sample(t, num_envs, N_GLOBAL + width * N_TOKEN).numpy().tolist()
        rew = np.zeros(self.hi - self.lo, np.float32)
        term = np.zeros(self.hi - self.lo, bool)
        ended = []
        for j, ep in enumerate(self.eps):  # SetVecEnv.step, the resets left to the driver
            rew[j] = -ep.run(acts[j] if acts[j] < ep.queue else 0) / ep.scale
            if ep.st[2] == ep.st[3]:
                term[j] = True
                ended.append((self.lo + j, ep.hits / max(ep.hits + ep.reads, 1)))
        self.b_rew[t] = torch.from_numpy(rew) / self.cfg.reward_div
        self.b_done[t] = torch.from_numpy(term.astype(np.float32))
        return ended

    def finish(self, new: dict) -> tuple:
        obs = self.reset(new)
        return self._bufs(), obs, torch.get_rng_state()


class RaySetRollouts(_Driver):
    """The driver's side for setppo: SetVecEnv's workload picks and episode seeds (`rng`, `seed_pos`, the
    checkpointed position), handed to `workers` SetRolloutWorker actors in slot order."""

    def __init__(self, cfg, backend, workers: int, workloads: list, seed: int, seed_base: int, seed_pos: int):
        from lab_learnsched.vecenv import Episode
        from lab_shared.backend import _ray_connect
        from lab_shared.errors import LabError

        ray = _ray_connect(backend.address, backend.workers)
        self.ray, self.n = ray, cfg.num_envs
        self.rng = np.random.default_rng(seed)
        self.seed_base, self.seed_pos = int(seed_base), int(seed_pos)
        self.queues = []
        for wl in workloads:
            q = Episode(wl, policy=cfg.policy).queue
            if q > cfg.max_queue:
                raise LabError(f"workload {wl.name}: queue {q} > max_queue {cfg.max_queue}")
            self.queues.append(q)
        self.slot_wl = [0] * self.n
        self._spawn(SetRolloutWorker, workers, self.n, cfg, ray.put(list(workloads)))

    def _new(self, slots: list[int]) -> dict[int, tuple[int, int]]:
        """SetVecEnv._new for each slot in order: the next seed position, then a workload from `rng`."""
        out = {}
        for i in slots:
            self.seed_pos += 1
            k = int(self.rng.integers(len(self.queues)))
            self.slot_wl[i] = k
            out[i] = (k, self.seed_base + self.seed_pos)
        return out

    def reset(self) -> np.ndarray:
        new = self._new(list(range(self.n)))
        return np.concatenate(self._get([w.reset.remote(new) for w in self.workers]))

    def collect(self, net, steps: int) -> tuple[tuple[torch.Tensor, ...], np.ndarray, list[float]]:
        weights = self.ray.put({k: v.detach().clone() for k, v in net.state_dict().items()})
        self._get([w.begin.remote(weights, torch.get_rng_state(), steps) for w in self.workers])
        new: dict = {}
        ratios: list[float] = []
        for t in range(steps):
            width = max(self.queues[k] for k in self.slot_wl)  # setppo trims the padding no env uses
            parts = self._get([w.step.remote(t, self.n, width, new) for w in self.workers])
            ended = sorted(e for part in parts for e in part)
            ratios += [r for _, r in ended]
            new = self._new([i for i, _ in ended])
        bufs, obs = self._gather(self._get([w.finish.remote(new) for w in self.workers]))
        return bufs, obs, ratios
