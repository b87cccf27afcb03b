"""sfa_table: every method on the default image sequence, tuned with the same grid budget, over seeds.

Default (quick, ~3 min on 2 cores): 1 seed, 2 grid points per tuned method, short tasks.
--full: the README table: 3 seeds, 4 grid points per tuned method (L2's lambdas matched to SFA's grid through
lambda_eff = -ln(1 - beta) / (lr p T)), T = 100 steps per task. --regimes: the SFA-vs-L2/EWC regime study.
Sweeps are resumable: rerunning with the same --out continues where it stopped.

    .venv/bin/python benchmarks/sfa_table.py --full --out runs/sfa-table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab_sfa.methods.l2 import lambda_eff
from lab_sfa.sweep import run_sweep
from lab_shared.report import markdown_table
from lab_shared.rundir import RunDir


def table_spec(full: bool, seeds: list[int], steps: int, lr: float, pretrain_steps: int) -> dict:
    """The sweep: seq and multitask (no knobs), and the same number of grid points for every tuned method."""
    if full:
        sfa_pts = [(0.1, 0.1), (0.3, 0.1), (0.1, 0.5), (0.3, 0.5)]
        ewc, ta, ties, wise = (
            [10.0, 100.0, 1000.0, 10000.0],
            [0.3, 0.5, 0.7, 1.0],
            [0.8, 1.2, 1.6, 2.0],
            [
                0.3,
                0.5,
                0.7,
                0.9,
            ],
        )
        replay = [(0.01, 32), (0.01, 64), (0.05, 32), (0.05, 64)]
    else:
        sfa_pts = [(0.1, 0.1), (0.3, 0.5)]
        ewc, ta, ties, wise = [100.0, 1000.0], [0.5, 1.0], [1.0, 2.0], [0.5, 0.8]
        replay = [(0.01, 64), (0.05, 64)]
    l2 = [round(lambda_eff(b, p, lr, steps), 3) for b, p in sfa_pts]
    grid = [
        {"method": "seq"},
        {"method": "multitask"},
        *({"method": "sfa", "method.beta": b, "method.p": p} for b, p in sfa_pts),
        {"method": "l2", "method.lam": l2},
        {"method": "ewc", "method.lam": ewc},
        *({"method": "replay", "method.buffer_size": s, "method.replay_batch": rb} for s, rb in replay),
        {"method": "task_arithmetic", "method.lam": ta},
        {"method": "ties", "method.lam": ties, "method.k": 0.2},
        {"method": "wise_ft", "method.alpha": wise},
    ]
    base = {
        "trainer.max_steps": steps,
        "trainer.lr": lr,
        "pretrain_steps": pretrain_steps,
        "sequence.n_test": 500 if full else 300,
        "sequence.n_val": 300 if full else 200,
    }
    return {"seeds": seeds, "select": "val_acc", "base": base, "grid": grid}


def regime_spec(seeds: list[int]) -> list[tuple[str, dict]]:
    """SFA vs matched L2 vs EWC vs seq under different regimes (pretraining, learning rate, optimizer)."""
    regimes = [
        ("pretrained, adam lr 1e-4", {"trainer.lr": 1e-4, "trainer.max_steps": 200}),
        ("no pretraining, adam lr 1e-3", {"trainer.lr": 1e-3, "pretrain_steps": 0}),
        (
            "pretrained, sgd lr 0.05",
            {"trainer.lr": 0.05, "trainer.optimizer": "sgd", "trainer.momentum": 0.0},
        ),
    ]
    out = []
    for name, over in regimes:
        lr, steps = over["trainer.lr"], over.get("trainer.max_steps", 100)
        pts = [(0.1, 0.1), (0.3, 0.5)]
        base = {
            "trainer.max_steps": 100,
            "pretrain_steps": 800,
            "sequence.n_test": 300,
            "sequence.n_val": 200,
        }
        base.update(over)
        grid = [
            {"method": "seq"},
            *({"method": "sfa", "method.beta": b, "method.p": p} for b, p in pts),
            {"method": "l2", "method.lam": [round(lambda_eff(b, p, lr, steps), 4) for b, p in pts]},
            {"method": "ewc", "method.lam": [100.0, 1000.0]},
            {"method": "replay", "method.buffer_size": 0.05},
        ]
        out.append((name, {"seeds": seeds, "select": "val_acc", "base": base, "grid": grid}))
    return out


def _row(table: list[dict], method: str) -> dict:
    return next((r for r in table if r["method"] == method), {"ACC": "n/a"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--full", action="store_true", help="3 seeds, 4 grid points per method (the README table)"
    )
    ap.add_argument("--regimes", action="store_true", help="run the SFA-vs-L2/EWC regime study instead")
    ap.add_argument(
        "--seeds", default=None, help="comma-separated seeds (default: 0,1,2 with --full, else 0)"
    )
    ap.add_argument("--out", default=None, help="sweep folder (reused, so a rerun resumes)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else ([0, 1, 2] if args.full else [0])
    if args.regimes:
        root = Path(args.out or "runs/sfa-regimes")
        lines = []
        for name, spec in regime_spec(seeds):
            folder = root / name.replace(" ", "_").replace(",", "")
            folder.mkdir(parents=True, exist_ok=True)
            summary = run_sweep(spec, RunDir.open(folder))
            print(f"\n## {name}\n" + markdown_table(summary["table"]))
            t = summary["table"]
            lines.append(
                f"{name}: seq {_row(t, 'seq')['ACC']} | sfa {_row(t, 'sfa')['ACC']} | "
                f"l2 {_row(t, 'l2')['ACC']} | ewc {_row(t, 'ewc')['ACC']}"
            )
        print("\n".join(lines))
        print(
            "RESULT sfa_table: regimes -> "
            + " ; ".join(lines)
            + " (target: find where SFA beats L2/EWC most)"
        )
        return 0
    steps, lr = (100, 1e-3) if args.full else (40, 1e-3)
    spec = table_spec(args.full, seeds, steps, lr, pretrain_steps=800 if args.full else 300)
    folder = Path(args.out or ("runs/sfa-table" if args.full else "runs/sfa-table-quick"))
    folder.mkdir(parents=True, exist_ok=True)
    summary = run_sweep(spec, RunDir.open(folder))
    table = summary["table"]
    print(markdown_table(table))
    print(f"tables and plots: {folder}")
    figs = ", ".join(
        f"{m} {_row(table, m)['ACC']}" for m in ("sfa", "seq", "replay", "l2", "ewc", "ties", "multitask")
    )
    print(f"RESULT sfa_table: ACC {figs} (target: paper claims SFA ~ replay and > L2/EWC/TA/TIES/WiSE-FT)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
