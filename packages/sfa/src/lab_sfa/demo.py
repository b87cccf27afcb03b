"""The `lab demo` piece: seq vs SFA vs L2 vs replay on a short version of the default image sequence.

Each method is an ordinary `lab sfa run` folder (config.json, provenance.json, results.json, plots) under
out_dir/run/, so `lab runs compare` works on them; the results page is `lab report` over them
(lab_sfa.report).
"""

from __future__ import annotations

from pathlib import Path


def run_demo(out_dir: Path, quick: bool = False) -> list[Path]:
    """About a minute on 2 CPU cores: four methods, one seed, small tasks; `quick` shrinks it (tests)."""
    from lab_sfa.cli_run import execute_run
    from lab_sfa.methods import MethodConfig
    from lab_sfa.methods.l2 import lambda_eff
    from lab_sfa.run_config import RunConfig, resolve_run
    from lab_shared.rundir import RunDir

    out_dir = Path(out_dir)
    steps, lr, beta, p = (20 if quick else 150), 1e-3, 0.1, 0.5
    methods = [
        MethodConfig(name="seq"),
        MethodConfig(name="sfa", beta=beta, p=p),
        MethodConfig(name="l2", lam=round(lambda_eff(beta, p, lr, steps), 2)),
        MethodConfig(name="replay", buffer_size=0.05),
    ]
    paths = []
    for m in methods:
        cfg = RunConfig(method=m, pretrain_steps=30 if quick else 500, curves=m.name == "sfa")
        cfg.trainer.max_steps, cfg.trainer.lr = steps, lr
        s = cfg.sequence
        s.width, s.n_train, s.n_test, s.n_val = (16, 2000, 300, 100) if not quick else (16, 300, 100, 50)
        if quick:
            cfg.curve_samples = 50
        cfg = resolve_run(cfg)  # the method's defaults filled in, as `lab sfa run` records them
        run = RunDir.create("run", m.name, cfg, root=out_dir)
        execute_run(cfg, run)
        paths.append(run.path)
    return paths
