"""The shape-free agent: features, the vectorized env, permutation invariance, training, stop and resume."""

import numpy as np
import pytest
import torch

from lab_learnsched.agents.config import SetTrainConfig
from lab_learnsched.agents.setnet import SetAgentScheduler, SetNet, setnet_from_meta, setnet_meta
from lab_learnsched.agents.setppo import train_setnet
from lab_learnsched.bufferpool import BufferPool
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes, run_episode
from lab_learnsched.families import family_workload
from lab_learnsched.schedulers import SchedState, make_scheduler
from lab_learnsched.setfeatures import N_GLOBAL, N_TOKEN, SetFeaturizer, flat_dim
from lab_learnsched.vecenv import Episode, SetVecEnv
from lab_learnsched.workload import Tables, make_query
from lab_learnsched.workload_sources import load_workload
from lab_shared import signals
from lab_shared.errors import LabError
from lab_shared.rundir import RunDir

T = Tables(("a",), (100,))


def _q(qid, blocks):
    return make_query(T, f"q{qid}", {"a": blocks}, qid, 0.0)


def _tokens(obs, s):
    return obs[N_GLOBAL:].reshape(s, N_TOKEN)


def test_features_on_a_hand_case():
    # pool of 6 holding 0..5 (LRU order: 0 oldest). A reads 0,1 + 10,11; B reads 10,11,12; C reads 50
    pool = BufferPool.from_cached(100, 6, np.arange(6))
    a, b, c = _q(0, [0, 1, 10, 11]), _q(1, [10, 11, 12]), _q(2, [50])
    obs = SetFeaturizer().observe(SchedState([a, None, b, c], pool, backlog=[_q(3, [2, 3])]))
    tok = _tokens(obs, 4)
    assert obs.shape == (flat_dim(4),) and not tok[1].any()  # empty slot: all zero
    assert tok[0, 0] == 1 and tok[0, 2] == pytest.approx(0.5) and tok[0, 3] == pytest.approx(2 / 6)
    assert tok[0, 4] == pytest.approx(0.5)  # 10, 11 also read by B
    assert tok[0, 6] == pytest.approx(2 / 6)  # brings in 2 pages B needs
    # A reads 2 new pages into a full pool: evicts the 2 oldest not its own: 2 and 3, which the backlog needs
    assert tok[0, 8] == pytest.approx(2 / 6) and tok[0, 9] == pytest.approx(2 / 6)
    assert tok[3, 8] == pytest.approx(1 / 6) and tok[3, 9] == pytest.approx(1 / 6)  # C evicts 2
    # two-step estimate of A: 2 reads, then B costs 3 - 2 = 1 -> 3 pages
    assert tok[0, 16] == pytest.approx(3 / 6) and tok[0, 17] == pytest.approx(2 / 6)
    assert tok[3, 19] == 1 and tok[0, 19] == 0  # C has the fewest reads now
    assert tok[0, 11] == 0 and tok[2, 11] == pytest.approx(0.5) and tok[3, 11] == 1  # arrival ranks


@pytest.mark.parametrize("wl,policy", [("mixed", "lru"), ("poisson", "clock"), ("bursty", "lru")])
def test_incremental_env_matches_features_from_scratch(wl, policy):
    w = family_workload(wl, 1)
    env, ep, feat = BufferPoolEnv(w, policy=policy), Episode(w, policy=policy), SetFeaturizer()
    env.reset(seed=3)
    ep.reset(3)
    g = make_scheduler("greedy")
    out = np.zeros(flat_dim(ep.queue), np.float32)
    done = False
    while not done:
        st = env.state()
        ep.observe(out)
        np.testing.assert_allclose(feat.observe(st), out, atol=1e-5)
        a = g.choose(st)
        _, _, done, _, info = env.step(a)
        assert ep.step(a)[1]["reads"] == info["reads"]
    assert ep.finished


def test_vector_env_autoresets_and_counts_reads():
    wls = [load_workload("small"), family_workload("hotset", 2)]
    v = SetVecEnv(wls, num_envs=3, max_queue=16, seed=1)
    obs, _ = v.reset(seed=1)
    assert obs.shape == (3, flat_dim(16)) and v.observation_space.shape == obs.shape
    finished = 0
    for _ in range(200):
        m = v.action_masks()
        assert m.any(1).all()
        obs, r, term, trunc, info = v.step(m.argmax(1))
        assert (r <= 0).all() and not trunc.any()
        finished += term.sum()
        assert ((info["episode_reads"] >= 0) == term).all()
    assert finished > 3


def test_setnet_is_permutation_equivariant_and_shape_free():
    torch.manual_seed(0)
    net = SetNet(16, 1, 2).eval()
    w = family_workload("mixed", 0)
    env = BufferPoolEnv(w)
    env.reset(seed=0)
    st = env.state()
    obs = SetFeaturizer().observe(st)
    perm = np.random.default_rng(0).permutation(len(st.slots))
    pobs = SetFeaturizer().observe(SchedState([st.slots[i] for i in perm], st.pool, st.now, st.backlog))
    with torch.no_grad():
        s1, v1 = net(torch.from_numpy(obs)[None])
        s2, v2 = net(torch.from_numpy(pobs)[None])
    np.testing.assert_allclose(s1[0, perm].numpy(), s2[0].numpy(), rtol=1e-4, atol=1e-5)
    assert v1.item() == pytest.approx(v2.item(), rel=1e-4, abs=1e-5)
    assert (s1[0][~torch.from_numpy(st.valid())] < -1e8).all()
    # one network, any workload and queue size
    sched = SetAgentScheduler(net, setnet_meta(net))
    for spec in ("small", "default"):
        e = BufferPoolEnv(spec)
        assert sched.fits(e) and run_episode(e, sched, 0).reads > 0
    meta = setnet_meta(net)
    meta["tokens"] = N_TOKEN - 1
    with pytest.raises(LabError, match="retrain"):
        setnet_from_meta(meta)


def _tiny(**kw):
    cfg = SetTrainConfig(families=["hotset"], instances=2, steps=256, num_envs=4, eval_every=0, ckpt_every=0,
                         val_instances=1, val_episodes=1, hidden=16, layers=1, heads=2, **kw)  # fmt: skip
    cfg.ppo.rollout = 32
    return cfg


def test_tiny_setnet_training_checkpoint_runs_anywhere(tmp_path):
    cfg = _tiny()
    run = RunDir.create("sched-train", "setnet", cfg, root=tmp_path)
    res = train_setnet(cfg, run, show_progress=False)
    assert res["steps"] == 256 and np.isfinite(res["val_vs_best"])
    agent = make_scheduler(f"agent:{res['best_checkpoint']}")
    assert isinstance(agent, SetAgentScheduler)
    for spec in ("small", "default", "family:joins:0"):
        env = BufferPoolEnv(load_workload(spec))
        assert run_episode(env, agent, 0, episodes(env, [0])[0]).reads > 0
    with pytest.raises(LabError, match="setnet"):
        make_scheduler(f"agent+la:{res['best_checkpoint']}")


def test_stop_signal_checkpoints_and_resume_continues(tmp_path):
    cfg = _tiny()
    run = RunDir.create("sched-train", "setnet", cfg, root=tmp_path)
    signals._received = 15  # as if SIGTERM arrived: stop at the first rollout boundary
    try:
        with pytest.raises(signals.Preempted) as e:
            train_setnet(cfg, run, show_progress=False)
    finally:
        signals.clear()
    assert e.value.step == 0 and e.value.checkpoint is not None
    res = train_setnet(cfg, run, resume=run.path, show_progress=False)
    assert res["steps"] == 256


def test_distilled_warm_start_imitates_the_planner(tmp_path):
    from lab_learnsched.agents.distill import collect, pretrain
    from lab_learnsched.agents.setppo import train_workloads

    cfg = _tiny(distill_planner="planner:2:1:32")
    obs, act = collect(cfg, train_workloads(cfg), seconds=120.0, max_decisions=300)
    assert len(act) == 300 and obs.shape == (len(act), flat_dim(cfg.max_queue))
    valid = obs[:, N_GLOBAL:].reshape(len(act), -1, N_TOKEN)[..., 0] > 0.5
    assert valid[np.arange(len(act)), act].all()  # every label is a valid slot
    torch.manual_seed(0)
    net = SetNet(16, 1, 2)
    chance = float(np.mean(1.0 / valid.sum(1)))
    assert pretrain(net, obs, act, epochs=15, lr=3e-3, seed=0) > chance + 0.15
    cfg2 = _tiny(distill_seconds=2.0, distill_planner="planner:2:1:32", distill_epochs=2)
    run = RunDir.create("sched-train", "setnet", cfg2, root=tmp_path)
    res = train_setnet(cfg2, run, show_progress=False)
    assert res["steps"] == 256 and "distill_accuracy" in (run.path / "metrics.jsonl").read_text()
