"""sfa_overhead: training time per step and memory of every method relative to `seq`, same steps.

Each method trains the same two-task synthetic sequence (an MLP whose parameters dominate memory). Time:
in one process, rounds interleave the methods (alternating order) and the median per-step CPU time of the
training loop is compared with seq's (CPU time of a one-thread process is far less disturbed by other load
than wall time). Memory: each method once more in a fresh subprocess; peak RSS minus seq's, also expressed in
parameter copies. Extra parameter copies are also counted from the tensors each method actually holds. Target: SFA <= 1.02x seq time and exactly one extra parameter copy.

    .venv/bin/python benchmarks/sfa_overhead.py [--rounds 3] [--steps 60] [--full]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

METHODS = ["seq", "sfa", "l2", "ewc", "replay", "wise_ft", "task_arithmetic", "ties", "multitask"]


def _status_kb(field: str) -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> int | None:
    """Reset the kernel's peak-RSS mark (Linux clear_refs), so the peak covers training only; current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_kb("VmRSS")


def _peak_rss_kb() -> int:
    return _status_kb("VmHWM") or 0


def worker(method: str, steps: int, hidden: int) -> dict:
    """Train 2 tasks of ``steps`` steps with ``method``; report CPU s/step of the loop, held copies, peak RSS."""
    import resource
    import time

    import torch
    from torch import nn

    from lab_sfa.images.tasks import ImageDataset, image_evaluate
    from lab_sfa.methods.base import make_method, model_state
    from lab_sfa.methods.config import MethodConfig, pick_params
    from lab_sfa.sequences import Task, TaskSequence
    from lab_shared.trainer import Trainer, TrainerConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden)
            )
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 10))

        def forward(self, x, task=None):
            return self.head(self.net(x))

    def task(i: int) -> Task:
        g = torch.Generator().manual_seed(i)
        x, y = torch.rand(1000, 1, 28, 28, generator=g), torch.randint(0, 10, (1000,), generator=g)
        return Task(f"t{i}", ImageDataset(x, y, 0), ImageDataset(x[:200], y[:200], 0), index=i, n_classes=10)

    def loss_fn(model, batch):
        x, y, t = batch
        return nn.functional.cross_entropy(model(x, t), y)

    seq = TaskSequence(
        "synthetic", [task(0), task(1)], task(9), MLP, loss_fn, lambda m, t, s="test": image_evaluate(m, t, s)
    )
    model = seq.make_model()
    n_params = sum(p.numel() for p in model.parameters())
    shared = {"beta": 0.3, "p": 0.1, "lam": 1.0, "buffer_size": 0.05, "fisher_samples": 50}
    cfg = MethodConfig(name=method, **pick_params(method, **shared))
    m = make_method(cfg, seq, model_state(model))
    tcfg = TrainerConfig(max_steps=steps, batch_size=32, lr=1e-3, lr_schedule="constant", progress=False)
    cpu = wall = 0.0
    other = time.process_time()
    rss0 = _reset_peak_rss()
    for k in range(2):
        m.before_task(model, k)
        if hasattr(m, "steps"):
            m.steps = steps
        data, collate = m.task_data(k)
        tr = Trainer(model, loss_fn, data, tcfg, callbacks=m.callbacks(model, k), collate_fn=collate)
        c0, w0 = time.process_time(), time.perf_counter()
        tr.fit()
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        del tr  # the finished trainer (its optimizer, callbacks) must not overlap with the next task's
        m.after_task(model, k)
    total_cpu = time.process_time() - other
    held = m.held_tensors()
    return {
        "method": method,
        "cpu_per_step": cpu / (2 * steps),
        "wall_per_step": wall / (2 * steps),
        "total_cpu": total_cpu,
        "param_copies": sum(t.numel() for t in held) / n_params,
        "stored_examples": m.stored_examples(),
        "peak_rss_mb": (_peak_rss_kb() - rss0) / 1024
        if rss0 is not None
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "n_params": n_params,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=1024, help="MLP width (parameters ~ hidden^2)")
    ap.add_argument("--mem-hidden", type=int, default=2048, help="MLP width of the memory runs")
    ap.add_argument("--full", action="store_true", help="5 rounds of 150 steps")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.full:
        args.rounds, args.steps = 5, 150
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.hidden)))
        return 0
    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
    worker("seq", 5, args.hidden)  # warm-up: first-call costs must not land on one method
    for r in range(args.rounds):
        order = METHODS if r % 2 == 0 else METHODS[::-1]  # alternate order against drifts in machine load
        for m in order:
            runs[m].append(worker(m, args.steps, args.hidden))
        print(f"timing round {r + 1}/{args.rounds} done", file=sys.stderr)
    mem: dict[str, dict] = {}
    for m in METHODS:  # peak memory: one fresh process per method
        cmd = [sys.executable, __file__, "--worker", m, "--steps", "20", "--hidden", str(args.mem_hidden)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        mem[m] = json.loads(out.stdout.strip().splitlines()[-1])
    from lab_shared.report import markdown_table

    base = statistics.median(x["cpu_per_step"] for x in runs["seq"])
    base_rss = mem["seq"]["peak_rss_mb"]
    mb_per_copy = mem["seq"]["n_params"] * 4 / 2**20
    rows = []
    for m, rs in runs.items():
        cpu = statistics.median(x["cpu_per_step"] for x in rs)
        rss = mem[m]["peak_rss_mb"]
        rows.append(
            {
                "method": m,
                "time/step vs seq": round(cpu / base, 3),
                "ms/step (cpu)": round(1000 * cpu, 2),
                "spread": f"{min(x['cpu_per_step'] for x in rs) / base:.3f}-{max(x['cpu_per_step'] for x in rs) / base:.3f}",
                "extra param copies": round(rs[0]["param_copies"], 3),
                "stored examples": rs[0]["stored_examples"],
                "peak RSS vs seq (MB)": round(rss - base_rss, 1),
                "= copies": round((rss - base_rss) / mb_per_copy, 2),
            }
        )
    print(markdown_table(rows))
    print(
        f"timing: MLP {runs['seq'][0]['n_params'] / 1e6:.2f}M params, {args.steps} steps x 2 tasks, {args.rounds} "
        f"rounds, medians; memory: MLP {mem['seq']['n_params'] / 1e6:.2f}M params ({mb_per_copy:.1f} MB per copy)"
    )
    get = {r["method"]: r for r in rows}
    print(
        f"RESULT sfa_overhead: sfa {get['sfa']['time/step vs seq']:.3f}x seq time, "
        f"{get['sfa']['extra param copies']:.0f} extra copy; l2 {get['l2']['time/step vs seq']:.3f}x, "
        f"ewc {get['ewc']['time/step vs seq']:.3f}x ({get['ewc']['extra param copies']:.0f} copies), "
        f"replay {get['replay']['time/step vs seq']:.3f}x (target: sfa <= 1.02x and exactly 1 copy)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
