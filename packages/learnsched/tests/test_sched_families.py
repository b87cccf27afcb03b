"""Workload families, bursty arrivals, the planner, the safety net and the bench's best-heuristic bar."""

import json
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from lab_learnsched.bench import BenchConfig, compare_rows, run_sim_bench
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes, run_episode
from lab_learnsched.families import FAMILIES, family_dict, family_workload, to_toml
from lab_learnsched.familybench import FamilyBenchConfig, paired_bootstrap, run_family_bench
from lab_learnsched.oracles import exact_order
from lab_learnsched.safety import Guarded, best_heuristic, sim_scorer, validate_agent
from lab_learnsched.schedulers import make_scheduler
from lab_learnsched.workload import workload_from_dict
from lab_learnsched.workload_sources import load_workload
from lab_shared.errors import LabError
from lab_shared.rundir import RunDir

LAB = [sys.executable, "-m", "lab_shared.cli"]


@pytest.fixture(scope="module")
def fixed_shape_agent(tmp_path_factory):
    """A few PPO steps on `small` (queue 4): an agent that only fits that shape."""
    from lab_learnsched.agents.config import TrainConfig
    from lab_learnsched.agents.ppo import train_ppo

    cfg = TrainConfig(
        workload="small", num_envs=2, steps=64, eval_every=0, ckpt_every=0, eval_episodes=1, hidden=16
    )
    cfg.ppo.rollout = 32
    run = RunDir.create("sched-train", "ppo", cfg, root=tmp_path_factory.mktemp("agent"))
    return train_ppo(cfg, run, show_progress=False)["checkpoint"]


@pytest.mark.parametrize("fam", sorted(FAMILIES))
def test_every_family_is_a_valid_deterministic_workload(fam):
    a, b = family_dict(fam, 3), family_dict(fam, 3)
    assert a == b
    assert family_dict(fam, 4) != a
    wl = workload_from_dict(tomllib.loads(to_toml(a)), fam)  # the TOML writer round-trips
    assert wl.tables.to_dict() == a["tables"] and set(wl.templates) == set(a["templates"])
    assert 1 <= wl.buffer_pages < wl.tables.n_pages and wl.queue_size >= 1
    qs = wl.generate(0)
    assert len(qs) == wl.queries and all(q.size > 0 for q in qs)
    assert all(np.unique(q.pages).shape[0] == q.size for q in qs)  # distinct pages (features rely on it)
    assert load_workload(f"family:{fam}:3").tables == wl.tables
    if FAMILIES[fam].drift:
        assert wl.drift_at == wl.queries // 2 and wl.drift_weights


def test_bursty_arrivals_come_in_bursts():
    wl = family_workload("bursty", 1)
    assert wl.arrival == "bursty"
    t = np.array([q.arrival for q in wl.generate(5)])
    assert np.all(np.diff(t) >= 0)
    assert (np.diff(t) == 0).sum() > len(t) // 3  # many share their burst's instant
    assert (np.diff(t) > 0).sum() >= 2


def test_bad_family_specs():
    with pytest.raises(LabError, match="unknown workload family"):
        family_dict("nope", 0)
    with pytest.raises(LabError, match="family:NAME:SEED"):
        load_workload("family:joins")
    with pytest.raises(LabError, match="seed must be"):
        load_workload("family:joins:x")


def test_cli_workload_gen(tmp_path):
    env = {**os.environ, "LAB_RUNS": str(tmp_path / "runs")}
    out = tmp_path / "w.toml"
    r = subprocess.run(LAB + ["sched", "workload", "gen", "--family", "joins", "--seed", "2", "--out", str(out)],
                       capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "joins-2" in r.stdout and out.exists()
    assert load_workload(str(out)).tables == family_workload("joins", 2).tables
    js = tmp_path / "w.json"
    r = subprocess.run(LAB + ["sched", "workload", "gen", "--family", "joins", "--seed", "2", "--out", str(js)],
                       capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode == 0 and json.loads(js.read_text())["tables"] == family_dict("joins", 2)["tables"]
    r = subprocess.run(
        LAB + ["sched", "workload", "gen", "--family", "joins"], capture_output=True, text=True, env=env
    )
    assert (
        r.returncode == 2
        and r.stderr.strip().startswith("error:")
        and len(r.stderr.strip().splitlines()) == 1
    )


def test_planner_between_optimum_and_fifo_on_small_batches():
    wl = load_workload("default").with_updates(queries=6)
    env = BufferPoolEnv(wl, 300, 6)
    eps = episodes(env, [0, 1, 2])
    for sd, q in zip([0, 1, 2], eps):
        env.reset(seed=sd, options={"queries": q})
        _, opt = exact_order(env.pool, [x.pages for x in q])
        p = run_episode(env, make_scheduler("planner:4:3:256"), sd, q).reads
        f = run_episode(env, make_scheduler("fifo"), sd, q).reads
        assert opt <= p <= f


def test_planner_beats_the_heuristics_where_there_is_room():
    env = BufferPoolEnv(family_workload("scans", 0))
    seeds = [0, 1]
    eps = episodes(env, seeds)
    tot = {s: sum(run_episode(env, make_scheduler(s), sd, q).reads for sd, q in zip(seeds, eps))
           for s in ("lookahead:1", "greedy", "planner")}  # fmt: skip
    assert tot["planner"] < min(tot["lookahead:1"], tot["greedy"])
    with pytest.raises(LabError):
        make_scheduler("planner:0")


def test_safety_net_falls_back_when_the_agent_is_worse():
    env = BufferPoolEnv("small")
    score = sim_scorer(env, [900_000, 900_001, 900_002])
    best, reads = best_heuristic(score)
    assert reads[best] == min(reads.values())
    bad = make_scheduler("fifo")
    bad.name = "agent:bad"
    v = validate_agent(bad, score, candidates=["greedy", "lookahead:1"])
    assert not v.passed and "falls back" in v.status
    g = Guarded(bad, v)
    assert g.active is g.fallback and g.name == f"guarded:{v.heuristic}"
    good = make_scheduler("planner")
    v2 = validate_agent(good, score, heuristic="fifo")
    assert v2.passed == (v2.agent_reads < v2.heuristic_reads)
    assert Guarded(good, v2).active is (good if v2.passed else Guarded(good, v2).fallback) or not v2.passed


def test_compare_rows_adds_best_and_planner_columns():
    rows = [
        {"policy": "greedy", "_reads": [10, 10]},
        {"policy": "lookahead:1", "_reads": [8, 12]},
        {"policy": "planner", "_reads": [5, 5]},
        {"policy": "agent:x", "status": "n/a: shape"},
    ]
    out = compare_rows(rows, "greedy", "planner")
    by = {r["policy"]: r for r in out}
    assert by["best heuristic (greedy)"]["vs_best"] == 0
    assert by["lookahead:1"]["vs_best"] == pytest.approx(0.0) and by["lookahead:1"]["wins_vs_best"] == 0.5
    assert by["greedy"]["gap_to_planner"] == pytest.approx(1.0)
    assert by["agent:x"]["status"] == "n/a: shape" and "vs_best" not in by["agent:x"]
    assert all("_reads" not in r for r in out)


def test_bench_reports_best_heuristic_planner_and_unfit_agents(tmp_path, fixed_shape_agent):
    cfg = BenchConfig(
        workloads=["small"], policies=["fifo", "greedy"], agents=[f"agent:{fixed_shape_agent}"], seeds=3,
        buffer_sweep=[], queue_sweep=[3], sweep_seeds=2, sweep_policies=["greedy"], exact_batches=2,
        exact_size=4, exact_buffers=[0], val_seeds=2, heuristics=["fifo", "greedy", "lookahead:1"],
    )  # fmt: skip
    out = run_sim_bench(cfg, RunDir.create("sched-bench", "sim", root=tmp_path))
    pols = [r["policy"] for r in out["main"]]
    assert "planner" in pols and "lookahead:1" in pols
    assert any(p.startswith("best heuristic (") for p in pols)
    assert all("vs_best" in r and "gap_to_planner" in r for r in out["main"] if "status" not in r)
    assert out["best_heuristic"][0]["best"] in cfg.heuristics
    # the agent was trained on queue 4: in the queue-3 sweep it is reported, not dropped
    unfit = [r for r in out["queue_sweep"] if r.get("status") == "n/a: shape"]
    assert len(unfit) == 1 and unfit[0]["policy"].startswith("agent:")
    assert any(r["policy"].startswith("guarded:agent") for r in out["main"])
    assert out["safety"] and "validation" in out["safety"][0]["status"]
    assert any(r.get("status") == "n/a: shape" for r in out["exact"]) is False  # exact batches use queue 4


def test_paired_bootstrap_and_family_bench():
    x, b, p = np.array([9.0, 10, 11, 8]), np.array([10.0, 10, 12, 10]), np.array([8.0, 9, 10, 8])
    st = paired_bootstrap(x, b, p, 500, 0)
    assert st["vs_best_lo"] <= st["vs_best"] <= st["vs_best_hi"] and st["wins"] == 0.75 and st["ties"] == 0.25
    assert st["gap_closed"] == pytest.approx((10.5 - 9.5) / (10.5 - 8.75))
    out = run_family_bench(FamilyBenchConfig(families=["hotset"], instances=1, seeds=1, val_seeds=1,
                                             heuristics=["fifo", "greedy"], planner="planner:2:1:32", bootstrap=50))  # fmt: skip
    s = {r["policy"]: r for r in out["summary"]}
    assert (
        set(s) == {"fifo", "greedy", "planner:2:1:32"}
        and s[out["episodes"][0]["best_heuristic"]]["vs_best"] == 0
    )
