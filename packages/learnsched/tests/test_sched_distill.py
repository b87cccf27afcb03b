"""Planner imitation (agents/distill.py): behaviour cloning generalises to unseen instances, DAgger rounds add
the net's own states, a stopped imitation resumes to the same weights, the CLI path runs it."""

import numpy as np
import torch

from lab_learnsched.agents.config import SetTrainConfig
from lab_learnsched.agents.distill import _Stop, collect_round, label_episode, pretrain, run_distill
from lab_learnsched.agents.setnet import SetNet
from lab_learnsched.agents.setppo import SetValidator, train_setnet, train_workloads
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.families import family_workload
from lab_learnsched.schedulers import make_scheduler
from lab_learnsched.setfeatures import N_GLOBAL, N_TOKEN, SetFeaturizer, flat_dim
from lab_shared import signals
from lab_shared.metrics import read_metrics
from lab_shared.rundir import RunDir

LABELS = "planner:1:1:16"


def _tiny(**kw):
    base = dict(families=["hotset"], instances=3, steps=0, eval_every=0, ckpt_every=0, val_instances=1,
                val_episodes=1, hidden=16, layers=1, heads=2, distill_planner=LABELS, distill_chunk=2,
                distill_epochs=4, distill_lr=3e-3)  # fmt: skip
    return SetTrainConfig(**{**base, **kw})


def _agreement(net, wl, seeds) -> tuple[float, float]:
    """(net argmax == planner, 1 / choices) over the planner's decisions on episodes of `wl`."""
    env, feat = BufferPoolEnv(wl), SetFeaturizer()
    dim = flat_dim(env.queue_size)
    obs, act = [], []
    for s in seeds:
        o, a, _, _ = label_episode(env, make_scheduler(LABELS), feat, s, dim)
        obs += o
        act += a
    o = torch.from_numpy(np.array(obs))
    with torch.no_grad():
        pred = net(o)[0].argmax(1).numpy()
    valid = (o[:, N_GLOBAL:].reshape(len(act), -1, N_TOKEN)[..., 0] > 0.5).sum(1).numpy()
    return float(np.mean(pred == np.array(act))), float(np.mean(1.0 / valid))


def test_cloned_net_agrees_with_the_planner_on_an_unseen_instance(tmp_path):
    cfg = _tiny(instances=4)
    obs, act, q, off = collect_round(cfg, train_workloads(cfg), 0, 24, tmp_path)
    assert off == 0 and len(act) > 300 and obs.shape == (len(act), flat_dim(cfg.max_queue))
    # the planner scored every valid slot, and its choice has the best score
    valid = obs[:, N_GLOBAL:].reshape(len(act), -1, N_TOKEN)[..., 0] > 0.5
    assert (np.isfinite(q) == valid).all()
    assert (q[np.arange(len(act)), act] == np.nanmin(q, 1)).all()
    torch.manual_seed(0)
    net = SetNet(16, 1, 2)
    test_wl = family_workload("hotset", 0)  # a test instance: never among the training instances
    before, chance = _agreement(net, test_wl, [0, 1, 2])
    pretrain(net, obs, act, epochs=12, lr=3e-3, seed=0, decay=True)
    after, _ = _agreement(net, test_wl, [0, 1, 2])
    assert after > 0.6 and after > chance + 0.25 and after > before + 0.2, (before, after, chance)
    torch.manual_seed(0)
    soft = SetNet(16, 1, 2)  # the planner's scores of every slot as a second target
    pretrain(soft, obs, act, epochs=12, lr=3e-3, seed=0, decay=True, q=q, soft=0.01)
    assert _agreement(soft, test_wl, [0, 1, 2])[0] > 0.6


def test_dagger_aggregates_the_states_the_net_visits(tmp_path):
    cfg = _tiny(distill_episodes=4, dagger_rounds=1, dagger_episodes=3, dagger_beta=0.0)
    run = RunDir.create("sched-train", "setnet", cfg, root=tmp_path)
    res = train_setnet(cfg, run, show_progress=False)
    rows = [r for r in read_metrics(run.path / "metrics.jsonl") if "distill_round" in r]
    assert [r["distill_round"] for r in rows] == [0, 1]
    r0, r1 = rows
    assert r0["distill_off_label"] == 0 and r1["distill_off_label"] > 0  # round 1: the net drove
    assert r1["distill_decisions"] == r0["distill_decisions"] + r1["distill_new"] > r0["distill_decisions"]
    assert sorted(p.name for p in (run.path / "distill" / "data").iterdir()) == [
        "round00-part0000.npz", "round00-part0001.npz", "round01-part0000.npz", "round01-part0001.npz"]  # fmt: skip
    assert res["steps"] == 0 and np.isfinite(res["val_vs_best"])
    assert make_scheduler(f"agent:{res['best_checkpoint']}") is not None


def test_stopped_imitation_resumes_to_the_same_weights(tmp_path):
    cfg = _tiny(distill_episodes=4, dagger_rounds=2, dagger_episodes=2)
    validate = SetValidator(cfg)
    wls = train_workloads(cfg)

    def fresh(name):
        torch.manual_seed(cfg.seed)
        return RunDir.create("sched-train", name, cfg, root=tmp_path), SetNet(16, 1, 2)

    run_a, net_a = fresh("a")
    run_distill(cfg, run_a, net_a, validate, wls, lambda *a: None)
    run_b, net_b = fresh("b")

    def stop_after_round0(net):
        signals._received = 15  # as if SIGTERM arrived during round 0's validation
        return validate(net)

    try:
        try:
            run_distill(cfg, run_b, net_b, stop_after_round0, wls, lambda *a: None)
            raise AssertionError("no stop")
        except _Stop:
            pass
    finally:
        signals.clear()
    assert (run_b.path / "distill" / "state.json").exists()
    net_b2 = SetNet(16, 1, 2)  # a new process: weights come from the round-0 checkpoint
    run_distill(cfg, run_b, net_b2, validate, wls, lambda *a: None)
    for pa, pb in zip(net_a.state_dict().values(), net_b2.state_dict().values()):
        assert torch.equal(pa, pb)


def test_cli_imitation_only_with_steps_0(tmp_path, monkeypatch):
    import pytest
    from typer.testing import CliRunner

    from lab_learnsched.cli import app
    from lab_shared.errors import LabError

    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    tiny = ["--set", "families=hotset", "--set", "instances=2", "--set", "val_instances=1", "--set",
            "val_episodes=1", "--set", "hidden=16", "--set", "layers=1", "--set", f"distill_planner={LABELS}",
            "--set", "distill_epochs=2", "--quiet"]  # fmt: skip
    r = CliRunner().invoke(app, ["train", "--agent", "setnet", "--steps", "0", *tiny])
    assert isinstance(r.exception, LabError) and "steps" in str(r.exception)  # PPO needs steps
    assert not (tmp_path / "runs").exists()
    with pytest.raises(LabError, match="dagger_beta"):
        r = CliRunner().invoke(app, ["train", "--agent", "setnet", "--steps", "0", *tiny, "--set",
                                     "distill_episodes=2", "--set", "dagger_beta=2"])  # fmt: skip
        raise r.exception
    assert not (tmp_path / "runs").exists()  # bad input: no run folder
    r = CliRunner().invoke(app, ["train", "--agent", "setnet", "--steps", "0", *tiny, "--set",
                                 "distill_episodes=2", "--set", "dagger_rounds=1", "--set", "dagger_episodes=1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    (run,) = (tmp_path / "runs" / "sched-train").iterdir()
    rows = [m for m in read_metrics(run / "metrics.jsonl") if "distill_round" in m]
    assert [m["distill_round"] for m in rows] == [0, 1] and (run / "best" / "latest").exists()
