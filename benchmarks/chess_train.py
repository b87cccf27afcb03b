"""Training throughput of `lab chess train`'s step vs a Hugging Face GPT2LMHeadModel of the same shape.

Ours: the lean GPT driven by the core Trainer (the exact step `lab chess train` runs: bf16 autocast and
torch.compile on CUDA, fused AdamW, grad clipping). Baseline: transformers' GPT2LMHeadModel (SDPA attention)
trained by a minimal hand-written loop with the same optimizer, precision, compile and batch. Same random
token blocks, same shape, timed in one run after warm-up steps. Prints tokens/s of both, the ratio, and the
model FLOPs utilisation by nanoGPT's formula (GPU only, vs the chip's dense bf16 peak).

  .venv/bin/python benchmarks/chess_train.py                      # CPU: small shape, ~1-2 minutes
  .venv/bin/python benchmarks/chess_train.py --device cuda --preset 50m --batch-size 32   # the paper's shape
Targets (GPU, 50m, batch 32 x 1023, bf16 + compile): >= 1.5x the HF GPT-2 and MFU >= 0.40.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_ours(args, device, blocks) -> tuple[list[float], float]:
    """(seconds of each timed step, flops per token) of the core Trainer running our GPT."""
    from lab_shared.callbacks import Callback
    from lab_shared.trainer import Trainer
    from lab_transcendence.blocks import BlockDataset
    from lab_transcendence.model import GPT, preset_config
    from lab_transcendence.train import chess_loss, paper_trainer_config

    torch.manual_seed(0)
    model = GPT(preset_config(args.preset, 32, block_size=args.block_size))
    cfg = paper_trainer_config()
    cfg.batch_size, cfg.grad_accum, cfg.warmup_steps = args.batch_size, 1, 0
    cfg.max_steps, cfg.log_every, cfg.eval_every, cfg.ckpt_every = args.warmup + args.steps, 10**9, 0, 0
    cfg.device, cfg.compile, cfg.progress = str(device), args.compile, False

    class Timer(Callback):
        """Wall time of every step after the warm-up (data fetch, forward, backward, clip, update)."""

        def __init__(self):
            self.times: list[float] = []
            self.t = 0.0

        def on_step_start(self, trainer):
            sync(device)
            self.t = time.perf_counter()

        def on_after_optimizer_step(self, trainer):
            sync(device)
            if trainer.step > args.warmup:
                self.times.append(time.perf_counter() - self.t)

    timer = Timer()
    trainer = Trainer(model, chess_loss, BlockDataset(blocks.numpy().astype("uint8")), cfg, callbacks=[timer])
    trainer.fit()
    return timer.times, model.flops_per_token()


def bench_hf(args, device, blocks) -> list[float]:
    """Seconds of each timed step of GPT2LMHeadModel with a minimal hand-written training loop."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from lab_transcendence.model import PRESETS

    shape = PRESETS[args.preset]
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=32, n_positions=args.block_size, n_embd=shape["n_embd"], n_layer=shape["n_layer"],
        n_head=shape["n_head"], activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config).to(device)
    model.train()
    opt = torch.optim.AdamW(
        model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=device.type == "cuda"
    )
    fwd = torch.compile(model) if args.compile else model
    use_bf16 = device.type == "cuda"
    n = len(blocks)

    def step(i: int) -> None:
        batch = blocks[(torch.arange(args.batch_size) + i * args.batch_size) % n].to(
            device, non_blocking=True
        )
        x, y = batch[:, :-1], batch[:, 1:]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = fwd(input_ids=x).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = []
    for i in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        step(i)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", default=None, help="model shape (default: small on CPU, 50m on CUDA)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--rounds", type=int, default=None, help="alternating rounds (default: 3 on CPU, 1 on GPU)"
    )
    p.add_argument("--full", action="store_true", help="CPU: more steps")
    p.add_argument("--out", type=Path, default=None, help="write results.json here")
    args = p.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    from lab_transcendence.model import PRESETS

    args.preset = args.preset or ("50m" if gpu else "small")
    args.block_size = args.block_size or PRESETS[args.preset]["block_size"]
    args.batch_size = args.batch_size or (32 if gpu else 4)
    args.steps = args.steps or (50 if gpu else (20 if args.full else 4))
    args.warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    args.rounds = args.rounds or (1 if gpu else 3)
    args.compile = gpu if args.compile is None else args.compile
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 32, (max(64, args.batch_size * 4), args.block_size + 1), generator=g)

    # rounds alternate which side goes first; per-step times are pooled and their median compared, so that
    # neither side profits from a quieter moment of a shared machine
    ours, hf = [], []
    fpt = 0.0
    for rnd in range(args.rounds):
        if rnd % 2 == 0:
            t, fpt = bench_ours(args, device, blocks)
            ours += t
            hf += bench_hf(args, device, blocks)
        else:
            hf += bench_hf(args, device, blocks)
            t, fpt = bench_ours(args, device, blocks)
            ours += t
    tokens_per_step = args.batch_size * args.block_size
    tps_ours, tps_hf = tokens_per_step / statistics.median(ours), tokens_per_step / statistics.median(hf)
    best_ratio = min(hf) / min(ours)
    ratio = tps_ours / tps_hf
    peak = peak_flops(device)
    mfu = fpt * tps_ours / peak if peak else None
    res = {
        "device": torch.cuda.get_device_name(device) if gpu else "cpu",
        "threads": torch.get_num_threads(),
        "preset": args.preset,
        "batch": args.batch_size,
        "block_size": args.block_size,
        "compile": args.compile,
        "bf16": gpu,
        "steps": args.steps,
        "tokens_per_s_ours": round(tps_ours),
        "tokens_per_s_hf_gpt2": round(tps_hf),
        "ratio": round(ratio, 3),
        "ratio_best_steps": round(best_ratio, 3),
        "timed_steps_each": len(ours),
        "mfu_ours": None if mfu is None else round(mfu, 3),
    }
    print(json.dumps(res, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "chess_train.json").write_text(json.dumps(res, indent=2) + "\n")
    target = (
        ">= 1.5x HF GPT-2 and MFU >= 0.40 on GPU"
        if gpu
        else "CPU: report the ratio; >= 1.5x is the GPU target"
    )
    mfu_txt = f", MFU {mfu:.2f}" if mfu is not None else ""
    print(
        f"RESULT chess_train: {ratio:.2f}x HF GPT2LMHeadModel tokens/s ({tps_ours:,.0f} vs {tps_hf:,.0f}, "
        f"median step; best steps {best_ratio:.2f}x; {args.preset} b{args.batch_size}x{args.block_size} on "
        f"{res['device']}{mfu_txt}) (target: {target})"
    )


if __name__ == "__main__":
    main()
