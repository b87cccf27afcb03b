"""A small training run for the preemption test: `python preempt_worker.py ROOT [--resume RUN] [--slow]`.

Fresh: trains in a new run folder under ROOT; --resume RUN continues RUN from its checkpoint. At the end the
final weights go to RUN/final.safetensors. --slow sleeps a little per step so a signal lands mid-run.
Exceptions go through the `lab` CLI boundary (lab_shared.cli.run_cli), so exit codes are the real ones.
"""

import sys
import time
from pathlib import Path

import torch
from torch import nn

from lab_shared.callbacks import Callback
from lab_shared.checkpoint import save_model_weights
from lab_shared.cli import run_cli
from lab_shared.data import TensorData
from lab_shared.rundir import RunDir
from lab_shared.trainer import Trainer, TrainerConfig

STEPS = 60


def config() -> TrainerConfig:
    return TrainerConfig(
        max_steps=STEPS, batch_size=8, grad_accum=2, lr=1e-2, warmup_steps=5, log_every=1, grad_clip=1.0,
        progress=False, device="cpu", ckpt_every=0,
    )  # fmt: skip


class Slow(Callback):
    def on_after_optimizer_step(self, trainer) -> None:
        time.sleep(0.05)


def main() -> None:
    root = Path(sys.argv[1])
    resume = Path(sys.argv[sys.argv.index("--resume") + 1]) if "--resume" in sys.argv else None
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    data = TensorData(x, (x[:, :4].sum(1) > 0).long())
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
    cfg = config()
    if resume is None:
        run = RunDir.create("preempt", "run", cfg, root=root)
    else:
        run = RunDir.resume(resume, cfg)

    def loss(m, batch):
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    cbs = [Slow()] if "--slow" in sys.argv else []
    trainer = Trainer(model, loss, data, cfg, callbacks=cbs, run_dir=run)
    out = trainer.fit(resume="auto" if resume is not None else None)
    save_model_weights(model, run.path / "final.safetensors")
    run.write_results({"step": out["step"]})


if __name__ == "__main__":
    run_cli(main)
