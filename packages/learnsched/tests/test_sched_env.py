"""The Gymnasium environment: checker, masks, determinism, vector envs, rewards and info."""

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from lab_learnsched.env import ENV_ID, BufferPoolEnv


def test_env_checker_passes():
    check_env(BufferPoolEnv("small"), skip_render_check=True)
    check_env(BufferPoolEnv("default"), skip_render_check=True)


def test_registered_and_vector_env():
    env = gym.make("lab_learnsched.env:" + ENV_ID, workload="small")
    assert env.unwrapped.queue_size == 4
    vec = gym.vector.SyncVectorEnv([lambda: BufferPoolEnv("small") for _ in range(3)])
    obs, _ = vec.reset(seed=[1, 2, 3])
    assert obs.shape == (3, vec.single_observation_space.shape[0])
    for _ in range(20):
        masks = np.stack(vec.call("action_masks"))
        acts = np.array([np.flatnonzero(m)[0] if m.any() else 0 for m in masks])
        obs, rew, term, trunc, info = vec.step(acts)
        assert np.all(rew <= 0)
    vec.close()


def test_masks_follow_queue_and_episode_ends():
    env = BufferPoolEnv("small")  # 8 queries, queue of 4
    env.reset(seed=0)
    total_pages = sum(q.size for q in list(env.pending) + [q for q in env.slots if q is not None])
    seen = []
    hits = reads = 0
    done = False
    while not done:
        m = env.action_masks()
        seen.append(int(m.sum()))
        _, r, done, _, info = env.step(int(np.flatnonzero(m)[-1]))
        assert np.isclose(r, -info["reads"] / env.reward_scale)
        hits, reads = hits + info["hits"], reads + info["reads"]
    assert seen == [4, 4, 4, 4, 4, 3, 2, 1]
    assert hits + reads == total_pages
    assert not env.action_masks().any()


def test_same_seed_same_episode():
    a, b = BufferPoolEnv("default"), BufferPoolEnv("default")
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    assert np.array_equal(oa, ob)
    for _ in range(10):
        act = int(np.flatnonzero(a.action_masks())[0])
        ra, rb = a.step(act), b.step(act)
        assert np.array_equal(ra[0], rb[0]) and ra[1] == rb[1] and ra[4] == rb[4]
    oc, _ = a.reset(seed=6)
    assert not np.array_equal(oa, oc)


def test_invalid_action_falls_back_to_fifo():
    env = BufferPoolEnv("small")
    env.reset(seed=0)
    for _ in range(6):
        env.step(int(np.flatnonzero(env.action_masks())[-1]))
    empty = int(np.flatnonzero(~env.action_masks())[0])
    _, _, _, _, info = env.step(empty)
    assert info["invalid_action"] and info["slot"] != empty


def test_observation_reflects_pool():
    env = BufferPoolEnv("small")
    obs0, _ = env.reset(seed=0)
    bd = env.feat.spec.bitmap_dim
    assert obs0[:bd].sum() == 0  # cold pool
    obs1, *_ = env.step(0)
    assert obs1[:bd].sum() > 0
    assert env.observation_space.contains(obs1)


def test_poisson_arrivals_enter_over_time():
    wl = BufferPoolEnv("small").workload.with_updates(arrival="poisson", rate=0.02)
    env = BufferPoolEnv(wl)
    env.reset(seed=1)
    arrivals = sorted(q.arrival for q in list(env.pending) + [q for q in env.slots if q is not None])
    assert env.action_masks().sum() < env.queue_size or arrivals[env.queue_size - 1] == 0.0
    done, info = False, {}
    while not done:
        assert env.action_masks().any()
        _, _, done, _, info = env.step(int(np.flatnonzero(env.action_masks())[0]))
    assert info["now"] >= arrivals[-1]  # the makespan covers the last arrival
