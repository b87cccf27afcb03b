"""`lab demo` piece: train a small PPO scheduler on the default workload and bench it against the baselines.

About a minute on 2 CPU cores: 12k PPO steps, then every policy on 8 held-out episodes of the default and
drift workloads, a buffer-size sweep and exact-optimum gaps on 8-query batches with a 300-page pool (at the
workload's own pool the batches fit and every order is optimal). Writes two run folders (train, bench);
the results page is `lab report` over them (lab_learnsched.report).
"""

from __future__ import annotations

from pathlib import Path

from lab_shared.rundir import RunDir


def run_demo(out_dir: Path, steps: int = 12_288, seeds: int = 8, quick: bool = False) -> list[Path]:
    """The train and bench run folders written under `out_dir`; `quick` shrinks every size (tests)."""
    from lab_learnsched.agents.config import TrainConfig
    from lab_learnsched.agents.ppo import train_ppo
    from lab_learnsched.bench import BenchConfig, run_sim_bench

    out_dir = Path(out_dir)
    cfg = TrainConfig(
        steps=steps, eval_every=max(1, steps // 3), eval_episodes=4 if quick else 8, ckpt_every=0
    )
    train_run = RunDir.create("train", "ppo", cfg, root=out_dir)
    res = train_ppo(cfg, train_run, show_progress=False)
    train_run.write_results(res)
    bcfg = BenchConfig(
        policies=["fifo", "random", "shortest", "greedy", "lookahead:2"],
        agents=[f"agent:{train_run.path}"],
        seeds=seeds,
        buffer_sweep=[400, 800, 1600],
        queue_sweep=[],
        sweep_seeds=2 if quick else 4,
        sweep_policies=["fifo", "greedy"],
        exact_batches=2 if quick else 6,
        exact_buffers=[300],
        val_seeds=2 if quick else 8,
    )
    if quick:
        bcfg.workloads = ["default"]
    bench_run = RunDir.create("bench", "sim", bcfg, root=out_dir)
    run_sim_bench(bcfg, bench_run)
    return [train_run.path, bench_run.path]
