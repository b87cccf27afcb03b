"""`lab sched bench --backend ray`: the simulator's episodes on a local Ray cluster give the same tables as
in-process; an unreachable cluster is one line and exit 2 before any work."""

import os
import subprocess
import sys

from lab_learnsched.bench import BenchConfig, run_sim_bench
from lab_shared.backend import Backend
from lab_shared.rundir import RunDir


def _cfg():
    return BenchConfig(
        workloads=["small"],
        policies=["fifo", "random", "greedy", "lookahead:1"],
        seeds=3,
        buffer_sweep=[60, 120],
        queue_sweep=[2, 4],
        sweep_seeds=2,
        sweep_policies=["fifo", "greedy"],
        exact_batches=0,
    )


def _strip(out):
    return {
        k: [{c: v for c, v in r.items() if c != "ms_per_decision"} for r in rows] for k, rows in out.items()
    }


def test_ray_bench_matches_local(ray_local, tmp_path):
    local = run_sim_bench(_cfg(), RunDir.create("sched-bench", "sim", root=tmp_path))
    ray = run_sim_bench(_cfg(), RunDir.create("sched-bench", "ray", root=tmp_path), Backend("ray"))
    assert _strip(ray) == _strip(local)
    pols = {r["policy"] for r in local["main"]}  # the 4 asked + the best-heuristic bar and the planner
    assert (
        pols >= {"fifo", "random", "greedy", "lookahead:1", "planner"}
        and local["buffer_sweep"]
        and local["queue_sweep"]
    )


def test_unreachable_address_is_one_line(tmp_path):
    env = {**os.environ, "LAB_RUNS": str(tmp_path / "runs")}
    cmd = [sys.executable, "-m", "lab_shared.cli", "sched", "bench", "-w", "small", "--backend", "ray"]
    proc = subprocess.run([*cmd, "--address", "127.0.0.1:9"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: no Ray cluster at 127.0.0.1:9 (start one with `ray start --head`, or check --address)"
    ]
    assert not (tmp_path / "runs").exists()  # nothing written
