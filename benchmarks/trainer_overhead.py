"""Throughput of the core Trainer against a minimal hand-written PyTorch loop: same model, data, steps.

Runs are interleaved (hand, trainer, hand, trainer, ...) and the median of each is compared, so load from
other processes hits both alike. Target: trainer >= 0.97 of the hand loop on CPU.
"""

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from lab_shared.data import TensorData
from lab_shared.trainer import Trainer, TrainerConfig


def make(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(), nn.Linear(512, 10))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8192, 256, generator=g)
    data = TensorData(x, torch.randint(0, 10, (8192,), generator=g))
    return model, data


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def hand_loop(steps: int, bs: int) -> float:
    model, data = make()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    loader = DataLoader(data, batch_size=bs, shuffle=True, drop_last=True, collate_fn=data.collate_fn)
    t0 = time.perf_counter()
    step = 0
    while step < steps:
        for batch in loader:
            loss = loss_fn(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    return steps * bs / (time.perf_counter() - t0)


def trainer_loop(steps: int, bs: int) -> float:
    model, data = make()
    cfg = TrainerConfig(
        max_steps=steps,
        batch_size=bs,
        lr=1e-3,
        lr_schedule="constant",
        log_every=50,
        progress=False,
        device="cpu",
    )
    trainer = Trainer(model, loss_fn, data, cfg)
    t0 = time.perf_counter()
    trainer.fit()
    return steps * bs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one core: less noise from the machine's other load
    hand_loop(20, args.batch), trainer_loop(20, args.batch)  # warm-up
    hand, tr = [], []
    for _ in range(args.repeats):
        hand.append(hand_loop(args.steps, args.batch))
        tr.append(trainer_loop(args.steps, args.batch))
    h, t = statistics.median(hand), statistics.median(tr)
    print(f"hand loop: {h:,.0f} samples/s   trainer: {t:,.0f} samples/s   (median of {args.repeats})")
    print(f"RESULT trainer_overhead: {t / h:.3f} of the hand loop's throughput (target: >= 0.97)")


if __name__ == "__main__":
    main()
