"""The LM table on a Hugging Face causal LM: every method on Math -> Law -> Code, plus the transfer check.

Default model: the embedded one (`lab_sfa.lm.embedded`: a small Llama-style LM with its own BPE tokenizer,
pretrained here on a Math + Law + Code + general-docs mixture whose examples are disjoint from the tasks'),
built on first use and cached. `--model` takes any Hugging Face causal-LM folder instead; `--lora R` trains
LoRA adapters. Writes to --out (default docs/results/sfa-lm):

- transfer: each task fine-tuned T steps from the pretrained model vs from a random init (the precondition
  of the paper's regime: pretraining must help);
- table: ACC / BWT / forgetting / plasticity, final score per task (math: exact match of the greedy answer;
  law/code: next-token accuracy) and final per-token loss per task, mean ± std over seeds;
- results.json, table.md, config.json, provenance.json; points/*.json per (method, seed) so a rerun resumes.

    flock /tmp/lab-heavy.lock nice -n 5 .venv/bin/python benchmarks/sfa_lm_hf_table.py
    .venv/bin/python benchmarks/sfa_lm_hf_table.py --model embedded-tiny --steps 4 --seeds 0 --out /tmp/t  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# label -> method parameters, fixed before the run (see docs/sfa-lm.md); "{lam_eff}" is L2 matched to SFA
METHODS: dict[str, dict] = {
    "seq": {"name": "seq"},
    "multitask": {"name": "multitask"},
    "replay 5%": {"name": "replay", "buffer_size": 0.05},
    "l2 (lam_eff)": {"name": "l2", "lam": "lam_eff"},
    "ewc": {"name": "ewc", "lam": 1000.0, "fisher_samples": 64},
    "sfa b=0.5 p=0.25": {"name": "sfa", "beta": 0.5, "p": 0.25},
    "sfa b=0.25 p=0.25": {"name": "sfa", "beta": 0.25, "p": 0.25},
    "task_arithmetic": {"name": "task_arithmetic", "lam": 0.5},
    "ties": {"name": "ties", "k": 0.2, "lam": 1.0},
    "wise_ft a=0.5": {"name": "wise_ft", "alpha": 0.5},
}


def _configs():
    """RunConfig / MethodConfig wherever the package keeps them."""
    try:
        from lab_sfa.run_config import RunConfig
    except ImportError:
        from lab_sfa.task_loop import RunConfig
    try:
        from lab_sfa.methods.config import MethodConfig
    except ImportError:
        from lab_sfa.methods.base import MethodConfig

    return RunConfig, MethodConfig


def _seq_config(args):
    from lab_sfa.tasktypes import SequenceConfig

    return SequenceConfig(
        name="lm", model=args.model, n_train=args.steps * args.batch, n_test=args.n_test, n_val=0,
        eval_batch_size=32, lora_rank=args.lora,
    )  # fmt: skip


def _trainer(args, steps: int | None = None):
    from lab_shared.trainer import TrainerConfig

    return TrainerConfig(
        max_steps=steps or args.steps, batch_size=args.batch, lr=args.lr, lr_schedule="constant",
        progress=False, log_every=args.steps, device=args.device,
    )  # fmt: skip


def lam_eff(args) -> float:
    from lab_sfa.methods.l2 import lambda_eff

    return lambda_eff(0.5, 0.25, args.lr, args.steps)


def run_point(label: str, seed: int, args) -> dict:
    RunConfig, MethodConfig = _configs()
    from lab_sfa.lm.hf_sequence import last_sequence
    from lab_sfa.lm.table import timed_run

    params = {k: (lam_eff(args) if v == "lam_eff" else v) for k, v in METHODS[label].items()}
    cfg = RunConfig(
        sequence=_seq_config(args), method=MethodConfig(**params), trainer=_trainer(args), seed=seed,
        curves=False,
    )  # fmt: skip
    return {**timed_run(cfg, lambda: last_sequence().info["eval_log"]), "method_params": params}


def transfer(args) -> list[dict]:
    """Each task alone, T steps from the pretrained model and from a random init (same architecture)."""
    import torch

    from lab_sfa.lm.embedded import random_model
    from lab_sfa.sequences import get_sequence
    from lab_shared.seed import seed_everything
    from lab_shared.trainer import Trainer

    cfg = _seq_config(args)
    seq = get_sequence("lm", cfg)
    rows = []
    for task in seq.tasks:
        row = {"task": task.name}
        for start in ("pretrained", "scratch"):
            seed_everything(0)
            model = seq.make_model() if start == "pretrained" else random_model(seq.info["model_path"], 0)
            if start == "scratch" and args.lora:
                from lab_sfa.lm.hf_model import add_lora

                model = add_lora(model, args.lora)
            before = seq.evaluate(model, task)
            t = time.perf_counter()
            Trainer(model, seq.loss_fn, task.train, _trainer(args)).fit()
            after = seq.evaluate(model, task)
            row[f"{start} before"] = round(before["score"], 4)
            row[start] = round(after["score"], 4)
            row[f"{start} loss"] = round(after["loss"], 4)
            row[f"{start} s"] = round(time.perf_counter() - t, 1)
            del model
            torch.cuda.empty_cache() if torch.cuda.is_available() else None
        row["transfer"] = round(row["pretrained"] - row["scratch"], 4)
        row["loss gain"] = round(row["scratch loss"] - row["pretrained loss"], 4)
        rows.append(row)
        print(f"transfer {task.name}: {row}", flush=True)
    return rows


def summarize_rows(labels: list[str], by_label: dict[str, list[dict]]) -> list[dict]:
    from lab_sfa.lm.table import summary_cells, task_means

    rows = []
    for label in labels:
        runs = by_label[label]
        row: dict = {"method": label, **summary_cells(runs)}
        row.update(task_means(runs, lambda r: r["R"][-1], "{} score"))
        if all("loss_final" in r for r in runs):
            row.update(task_means(runs, lambda r: r["loss_final"], "{} loss"))
        row["extra copies"] = round(runs[0]["max_extra_param_copies"], 2)
        row["stored blocks"] = runs[0]["max_stored_examples"]
        row["s/run"] = round(sum(r.get("wall_s", 0) for r in runs) / len(runs))
        rows.append(row)
    return rows


def pretrained_row(runs: list[dict]) -> dict:
    """theta_pre itself (R's r0 row): what fine-tuning must improve on."""
    from lab_sfa.lm.table import task_means
    from lab_sfa.metrics import mean_std

    m, s = mean_std([sum(r["r0"]) / len(r["r0"]) for r in runs])
    row: dict = {"method": "theta_pre (no fine-tuning)", "ACC": f"{m:.3f} ± {s:.3f}", "_acc": m}
    row.update({k: "" for k in ("BWT", "forgetting", "plasticity")})
    row.update(task_means(runs, lambda r: r["r0"], "{} score"))
    if all("loss_r0" in r for r in runs):
        row.update(task_means(runs, lambda r: r["loss_r0"], "{} loss"))
    row.update({"extra copies": "", "stored blocks": "", "s/run": ""})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded", help="embedded preset, HF model folder or hub id")
    ap.add_argument("--lora", type=int, default=0, help="LoRA rank (0 = full fine-tuning)")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per task (T)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n-test", type=int, default=16, help="held-out blocks per task (per-token loss)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--methods", default="", help="comma-separated labels (default: all)")
    ap.add_argument("--no-transfer", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="docs/results/sfa-lm")
    args = ap.parse_args()

    import torch

    from lab_sfa.lm.table import best_sfa, cached_point
    from lab_shared import provenance
    from lab_shared.io import atomic_write_json
    from lab_shared.report import markdown_table

    if args.threads:
        torch.set_num_threads(args.threads)
    labels = [s.strip() for s in args.methods.split(",") if s.strip()] or list(METHODS)
    unknown = [m for m in labels if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method label(s) {unknown}; known: {list(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setting = {k: getattr(args, k) for k in ("model", "lora", "steps", "batch", "lr", "n_test")}
    config = {**setting, "seeds": seeds, "methods": {m: METHODS[m] for m in labels}, "lam_eff": lam_eff(args)}
    atomic_write_json(out / "config.json", config)
    record = provenance.new_record(config)
    t0 = time.perf_counter()

    from lab_sfa.lm.hf_sequence import resolve_model

    t = time.perf_counter()
    folder = Path(resolve_model(args.model, args.device))
    pre = json.loads((folder / "pretrain.json").read_text()) if (folder / "pretrain.json").is_file() else {}
    pre_info = {"folder": str(folder), "load_or_build_s": round(time.perf_counter() - t, 1),
                **{k: v for k, v in pre.items() if k != "result"},
                "final_loss": (pre.get("result") or {}).get("pretrain/loss")}  # fmt: skip
    print(f"model: {pre_info}", flush=True)

    trans_path = out / "points" / "transfer.json"
    trans = None
    if not args.no_transfer:
        if trans_path.is_file() and json.loads(trans_path.read_text()).get("setting") == setting:
            trans = json.loads(trans_path.read_text())["rows"]
        else:
            trans = transfer(args)
            atomic_write_json(trans_path, {"setting": setting, "rows": trans})

    by_label: dict[str, list[dict]] = {}

    def write(final: bool) -> list[dict]:
        """table.md, results.json and provenance.json from the points so far (rewritten after every point,
        so a run stopped early still leaves a consistent table of what finished)."""
        done = [m for m in labels if len(by_label.get(m, [])) == len(seeds)]
        rows = summarize_rows(done, by_label)
        if done:  # the reference every method starts from: the pretrained model, not fine-tuned at all
            rows.insert(0, pretrained_row(by_label[done[0]]))
        public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        md = []
        if trans:
            md += [
                "Transfer (each task alone, T steps; score after fine-tuning):",
                "",
                markdown_table(trans),
                "",
            ]
        if public:
            md += [markdown_table(public)]
        if not final:
            md += ["", f"(partial: {len(done)} of {len(labels)} methods finished)"]
        (out / "table.md").write_text("\n".join(md) + "\n")
        keys = (
            "seed",
            "R",
            "r0",
            "acc",
            "bwt",
            "forgetting",
            "plasticity",
            "loss_final",
            "R_loss",
            "wall_s",
            "method_params",
            "max_extra_param_copies",
            "max_stored_examples",
            "n_params",
        )
        results = {"setting": setting, "seeds": seeds, "complete": final, "pretrained": pre_info,
                   "transfer": trans, "table": public,
                   "runs": {m: [{k: r[k] for k in keys if k in r} for r in by_label[m]] for m in done}}  # fmt: skip
        atomic_write_json(out / "results.json", results)
        atomic_write_json(out / "provenance.json",
                          {**record, "ended": provenance.now(), "wall_s": round(time.perf_counter() - t0, 1)})  # fmt: skip
        return rows

    if trans:
        write(final=False)
    for label in labels:
        for seed in seeds:
            res = cached_point(out, label, seed, setting, lambda lb, sd: run_point(lb, sd, args))
            by_label.setdefault(label, []).append(res)
            write(final=False)
    rows = write(final=True)
    print((out / "table.md").read_text())
    by = {r["method"]: r["_acc"] for r in rows if not r["method"].startswith("theta_pre")}
    sfa = best_sfa(by)
    if sfa:
        others = ", ".join(f"{k} {v:.3f}" for k, v in by.items() if not k.startswith("sfa"))
        print(f"RESULT sfa_lm_hf_table: best SFA ({sfa[1]}) ACC {sfa[0]:.3f}; {others}")


if __name__ == "__main__":
    main()
