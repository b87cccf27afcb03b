"""The `lab demo` piece: seq vs SFA vs L2 vs replay on a short version of the default image sequence."""

from __future__ import annotations

from pathlib import Path


def run_demo(out_dir: Path):
    """About a minute on 2 CPU cores: four methods, one seed, small tasks; writes plots and a table."""
    from lab_sfa.continual import RunConfig, run_continual
    from lab_sfa.methods.base import MethodConfig
    from lab_sfa.methods.l2 import lambda_eff
    from lab_sfa.plots import run_plots
    from lab_shared.io import atomic_write_json
    from lab_shared.report import Section, bar_plot, write_table

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps, lr, beta, p = 150, 1e-3, 0.1, 0.5
    methods = [
        MethodConfig(name="seq"),
        MethodConfig(name="sfa", beta=beta, p=p),
        MethodConfig(name="l2", lam=round(lambda_eff(beta, p, lr, steps), 2)),
        MethodConfig(name="replay", buffer_size=0.05),
    ]
    rows, images = [], []
    for m in methods:
        cfg = RunConfig(method=m, pretrain_steps=500, curves=m.name == "sfa")
        cfg.trainer.max_steps, cfg.trainer.lr = steps, lr
        cfg.sequence.width, cfg.sequence.n_train, cfg.sequence.n_test, cfg.sequence.n_val = 16, 2000, 300, 100
        res = run_continual(cfg)
        atomic_write_json(out_dir / f"{m.name}.json", res)
        if m.name == "sfa":
            images += run_plots(res, out_dir)
        label = {"sfa": f"sfa (beta={beta}, p={p})", "l2": f"l2 (lambda_eff={m.lam})"}.get(m.name, m.name)
        rows.append(
            {
                "method": label,
                "ACC": round(res["acc"], 3),
                "BWT": round(res["bwt"], 3),
                "plasticity": round(res["plasticity"], 3),
                "extra param copies": round(res["max_extra_param_copies"], 2),
                "stored examples": res["max_stored_examples"],
            }
        )
    write_table(rows, out_dir / "sfa_demo")
    images.insert(
        0, bar_plot(out_dir / "acc.png", [r["method"] for r in rows], [r["ACC"] for r in rows], "ACC")
    )
    text = (
        "Fashion-MNIST-pretrained small CNN, then MNIST -> FMNIST rotated 90 -> FMNIST permuted -> digits, "
        f"{steps} steps per task, 1 seed (a smoke-sized version of `lab sfa sweep`; see docs/sfa.md for the "
        "3-seed table)."
    )
    return Section("SFA: continual learning with averaging", text=text, tables=[("", rows)], images=images)
