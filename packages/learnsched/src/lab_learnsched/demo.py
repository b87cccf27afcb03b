"""`lab demo` piece: train a small PPO scheduler on the default workload and bench it against the baselines.

About a minute on 2 CPU cores: 12k PPO steps, then every policy on 8 held-out episodes of the default and
drift workloads, a buffer-size sweep and exact-optimum gaps on 8-query batches.
"""

from __future__ import annotations

from pathlib import Path

from lab_shared.report import Section
from lab_shared.rundir import RunDir


def run_demo(out_dir: Path) -> Section:
    from lab_learnsched.agents.config import TrainConfig
    from lab_learnsched.agents.ppo import train_ppo
    from lab_learnsched.bench import BenchConfig, learning_curve, run_sim_bench

    out_dir = Path(out_dir)
    cfg = TrainConfig(steps=12_288, eval_every=4_096, eval_episodes=8, ckpt_every=0)
    train_run = RunDir.create("train", "ppo", cfg, root=out_dir)
    res = train_ppo(cfg, train_run, show_progress=False)
    curve = learning_curve(str(train_run.path), train_run.plots / "learning_curve.png")
    bcfg = BenchConfig(
        policies=["fifo", "random", "shortest", "greedy", "lookahead:2"],
        agents=[f"agent:{train_run.path}"],
        seeds=8,
        buffer_sweep=[400, 800, 1600],
        queue_sweep=[],
        sweep_seeds=4,
        sweep_policies=["fifo", "greedy"],
        exact_batches=6,
    )
    bench_run = RunDir.create("bench", "sim", bcfg, root=out_dir)
    out = run_sim_bench(bcfg, bench_run)
    keep = ["workload", "policy", "hit_ratio", "hit_ratio_std", "reads", "gap_floor"]
    main = [{k: r[k] for k in keep} for r in out["main"]]
    exact = [
        {k: r[k] for k in ("buffer", "policy", "reads", "optimum_reads", "gap_opt")} for r in out["exact"]
    ]
    images = [
        p for p in (curve, bench_run.plots / "reads_vs_buffer.png") if p is not None and Path(p).exists()
    ]
    text = (
        f"PPO trained {res['steps']} steps ({res['train_seconds']:.0f} s): validation hit ratio "
        f"{res['val_hit_ratio']:.3f} vs greedy-most-cached {res['val_greedy_hit_ratio']:.3f}. "
        "Held-out test episodes (seeds 0-7); a short demo run, see docs/sched.md for the full results."
    )
    return Section(
        "Learned query scheduling",
        text,
        tables=[
            ("Policies on held-out episodes", main),
            ("Gap to the exact optimum (8-query batches)", exact),
        ],
        images=images,
    )
