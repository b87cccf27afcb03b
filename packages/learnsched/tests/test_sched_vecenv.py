"""The batched vector env (one compiled call steps every episode) against the reference paths, exactly:
the Gymnasium env with features built from scratch, and one Episode stepped at a time (the Ray workers)."""

import numpy as np
import pytest

from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes
from lab_learnsched.families import family_workload
from lab_learnsched.setfeatures import SetFeaturizer, flat_dim
from lab_learnsched.vecenv import Episode, SetVecEnv
from lab_learnsched.workload_sources import load_workload


class Reference:
    """SetVecEnv's contract written out with BufferPoolEnv + SetFeaturizer (and, beside it, standalone
    Episodes): same workload picks and seeds, same-step autoreset, actions past a workload's queue -> 0."""

    def __init__(self, wls, n, max_queue, seed, seed_base, policy, fixed=None):
        self.wls, self.n, self.mq, self.policy, self.fixed = wls, n, max_queue, policy, fixed
        self.rng, self.seed_base, self.pos = np.random.default_rng(seed), seed_base, 0
        self.envs: dict = {}
        self.feat = SetFeaturizer()
        self.cur = [None] * n
        self.solo = [None] * n
        self.obs = np.zeros((n, flat_dim(max_queue)), np.float32)
        self.solo_obs = np.zeros_like(self.obs)
        self.reads, self.hits = np.zeros(n, np.int64), np.zeros(n, np.int64)
        for i in range(n):
            self._new(i)

    def _new(self, i):
        self.pos += 1
        wl = self.wls[int(self.rng.integers(len(self.wls)))]
        key = (id(wl), i)
        if key not in self.envs:
            self.envs[key] = (BufferPoolEnv(wl, policy=self.policy), Episode(wl, policy=self.policy))
        env, ep = self.envs[key]
        qs = self.fixed[self.pos % len(self.fixed)] if self.fixed else wl.generate(self.seed_base + self.pos)
        env.reset(options={"queries": qs})
        ep.bind(self.solo_obs[i])
        ep.reset(queries=qs)
        self.cur[i], self.solo[i] = env, ep
        self.reads[i] = self.hits[i] = 0
        self._observe(i)

    def _observe(self, i):
        o = self.feat.observe(self.cur[i].state())
        self.obs[i] = 0.0
        self.obs[i, : o.shape[0]] = o

    def masks(self):
        m = np.zeros((self.n, self.mq), bool)
        for i, env in enumerate(self.cur):
            m[i, : env.queue_size] = env.action_masks()
        return m

    def step(self, acts):
        rew, term = np.zeros(self.n, np.float32), np.zeros(self.n, bool)
        solo_rew = np.zeros(self.n, np.float32)
        ep_reads, ep_hits = np.full(self.n, -1), np.full(self.n, -1)
        for i, env in enumerate(self.cur):
            a = int(acts[i]) if acts[i] < env.queue_size else 0
            _, r, done, _, info = env.step(a)
            rew[i] = r
            self.reads[i] += info["reads"]
            self.hits[i] += info["hits"]
            ep = self.solo[i]
            solo_rew[i] = -ep.run(a) / ep.scale
            assert bool(ep.finished) == done
            if done:
                term[i] = True
                ep_reads[i], ep_hits[i] = self.reads[i], self.hits[i]
                assert (ep.reads, ep.hits) == (ep_reads[i], ep_hits[i])
                self._new(i)
            else:
                self._observe(i)
        np.testing.assert_array_equal(rew, solo_rew)
        np.testing.assert_array_equal(self.obs, self.solo_obs)
        return self.obs, rew, term, ep_reads, ep_hits


def _compare(wls, steps, n=4, max_queue=32, policy="lru", fixed=None, seed=7):
    v = SetVecEnv(wls, num_envs=n, max_queue=max_queue, seed=0, seed_base=500, policy=policy, episodes=fixed)
    obs, _ = v.reset(seed=seed)
    ref = Reference(wls, n, max_queue, seed, 500, policy, fixed)
    rng = np.random.default_rng(seed)
    ends = 0
    for _ in range(steps):
        m = v.action_masks()
        np.testing.assert_array_equal(obs, ref.obs)
        np.testing.assert_array_equal(m, ref.masks())
        # mostly valid slots; some out of range or empty (the FIFO fallback)
        acts = np.array([rng.choice(np.flatnonzero(row)) for row in m])
        odd = rng.random(n) < 0.15
        acts[odd] = rng.integers(-1, max_queue + 2, odd.sum())
        obs, rew, term, trunc, info = v.step(acts)
        r_obs, r_rew, r_term, r_reads, r_hits = ref.step(acts)
        np.testing.assert_array_equal(rew, r_rew)
        np.testing.assert_array_equal(term, r_term)
        np.testing.assert_array_equal(info["episode_reads"], r_reads)
        np.testing.assert_array_equal(info["episode_hits"], r_hits)
        assert not trunc.any()
        ends += int(term.sum())
    np.testing.assert_array_equal(obs, ref.obs)
    return ends


def test_default_workload_replayed_episodes_match_exactly():
    wl = load_workload("default")
    fixed = episodes(BufferPoolEnv(wl), list(range(5)))
    assert _compare([wl], 180, max_queue=8, fixed=fixed) >= 10


def test_family_mix_with_queue_32_matches_exactly():
    # rows switch between workloads of different sizes and queues (the store grows, views are rebuilt)
    wls = [family_workload("skew", 0).with_updates(queue_size=32), family_workload("hotset", 2),
           family_workload("mixed", 1), family_workload("joins", 0)]  # fmt: skip
    assert _compare(wls, 200) >= 8


@pytest.mark.parametrize("fams", [("poisson", "bursty"), ("skew", "shift")])
def test_clock_pool_and_arrivals_match_exactly(fams):
    wls = [family_workload(f, k) for f in fams for k in range(2)]
    assert _compare(wls, 150, n=3, policy="clock") >= 3
