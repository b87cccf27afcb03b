"""Tokens/s of SFA fine-tuning vs plain fine-tuning of the small causal LM, measured in one run.

Both arms train the same model from the same start on the same token blocks: the core trainer with and
without the SFA callback (averaging every p*T steps), and the Hugging Face Trainer with and without
`lab_sfa.hf.SFACallback`. Arms alternate over several repeats (a shared machine's load drifts) and the
ratio is the median over repeats of SFA tokens/s / plain tokens/s.

    .venv/bin/python benchmarks/sfa_lm_throughput.py            # ~2-3 minutes on 2 cores
    .venv/bin/python benchmarks/sfa_lm_throughput.py --full     # larger preset, more repeats
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per arm and repeat (T)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--p", type=float, default=0.1, help="SFA averaging interval as a fraction of T")
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0 = torch's default; 1 is steadiest on a busy box)",
    )
    ap.add_argument("--no-hf", action="store_true", help="skip the Hugging Face Trainer arms")
    ap.add_argument("--full", action="store_true", help="preset cpu-base, 100 steps")
    args = ap.parse_args()
    if args.full:
        args.preset, args.steps, args.repeats = "cpu-base", 100, 9

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from lab_sfa.hf import SFACallback as HFSFACallback
    from lab_sfa.lm.data import TokenBlocks, lm_loss
    from lab_sfa.lm.models import context_length, make_model
    from lab_sfa.methods.sfa import SFACallback, averaging_interval
    from lab_shared.trainer import Trainer, TrainerConfig

    torch.manual_seed(0)
    block = context_length(args.preset)
    n = args.steps * args.batch
    data = TokenBlocks(torch.randint(0, 256, (n, block)))  # throughput does not depend on the text
    start = make_model(args.preset).state_dict()
    every = averaging_interval(args.p, args.steps)
    tokens = args.steps * args.batch * block

    def core(sfa: bool) -> float:
        model = make_model(args.preset)
        model.load_state_dict(start)
        cfg = TrainerConfig(max_steps=args.steps, batch_size=args.batch, lr=1e-3, progress=False,
                            log_every=args.steps, lr_schedule="constant", device="cpu" if not torch.cuda.is_available() else "auto")  # fmt: skip
        cbs = [SFACallback(args.beta, every)] if sfa else []
        t = time.perf_counter()
        Trainer(model, lm_loss, data, cfg, callbacks=cbs).fit()
        if sfa:
            assert cbs[0].n_averages == args.steps // every + (args.steps % every != 0)
        return tokens / (time.perf_counter() - t)

    class HFData(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            x = data.blocks[i]
            return {"input_ids": x, "labels": x}

    def hf(sfa: bool) -> float:
        from transformers import Trainer as HFTrainer
        from transformers import TrainingArguments

        model = make_model(args.preset)
        model.load_state_dict(start)
        with tempfile.TemporaryDirectory() as out:
            targs = TrainingArguments(
                output_dir=out, max_steps=args.steps, per_device_train_batch_size=args.batch, learning_rate=1e-3,
                report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
                lr_scheduler_type="constant", use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
            )  # fmt: skip
            cb = HFSFACallback(beta=args.beta, every=every)
            trainer = HFTrainer(
                model=model, args=targs, train_dataset=HFData(), callbacks=[cb] if sfa else []
            )
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # HF prints a summary dict at the end
                trainer.train()
            dt = time.perf_counter() - t
        if sfa:
            assert len(cb.events) == args.steps // every + (args.steps % every != 0)
        return tokens / dt

    arms = [("core", core)] + ([] if args.no_hf else [("hf", hf)])
    core(False)  # warm-up (allocator, kernels)
    ratios: dict[str, list[float]] = {name: [] for name, _ in arms}
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in arms}
    for r in range(args.repeats):
        for name, fn in arms:
            if r % 2 == 0:  # alternate which arm goes first
                plain, sfa = fn(False), fn(True)
            else:
                sfa, plain = fn(True), fn(False)
            ratios[name].append(sfa / plain)
            rates[name].append((plain, sfa))
            print(
                f"repeat {r} {name:4s}: plain {plain:8.0f} tok/s  sfa {sfa:8.0f} tok/s  ratio {sfa / plain:.3f}",
                flush=True,
            )
    print(f"preset {args.preset}, T={args.steps}, batch {args.batch}x{block} tokens, SFA every {every} steps "
          f"(p={args.p}, beta={args.beta}), {args.repeats} repeats, threads {torch.get_num_threads()}")  # fmt: skip
    for name, _ in arms:
        med = statistics.median(ratios[name])
        plain = statistics.median(p for p, _ in rates[name])
        print(
            f"{name}: median ratio {med:.3f} (min {min(ratios[name]):.3f}, max {max(ratios[name]):.3f}); plain {plain:.0f} tok/s"
        )
    # The same question without wall-clock noise: the cost of one averaging against one training step.
    from lab_sfa.averaging import average_into, snapshot, trainable_params

    model = make_model(args.preset)
    params = trainable_params(model)
    anchor = snapshot(params)
    costs = []
    for _ in range(50):
        t = time.perf_counter()
        average_into(params, anchor, args.beta)
        costs.append(time.perf_counter() - t)
    step_s = args.batch * block / statistics.median(p for p, _ in rates["core"])
    avg_s = statistics.median(costs)
    print(f"one averaging {avg_s * 1e3:.3f} ms vs one step {step_s * 1e3:.1f} ms: expected ratio "
          f"{1 / (1 + avg_s / (every * step_s)):.4f} at one averaging every {every} steps")  # fmt: skip
    headline = statistics.median(ratios["core"])
    extra = f", HF Trainer {statistics.median(ratios['hf']):.3f}" if "hf" in ratios else ""
    print(
        f"RESULT sfa_lm_throughput: {headline:.3f} SFA/plain tokens/s on the core trainer{extra} (target: >= 0.98)"
    )


if __name__ == "__main__":
    main()
