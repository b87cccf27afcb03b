"""Run by torchrun from test_core_ddp.py: train with the core trainer, save rank 0's weights."""

import sys

import torch

from lab_shared.io import save_tensors
from lab_shared.rundir import RunDir
from lab_shared.trainer import Trainer

sys.path.insert(0, sys.argv[3])
from ddp_problem import config, loss_fn, make_model, make_problem  # noqa: E402

out, runs = sys.argv[1], sys.argv[2]
model = make_model()
run = RunDir.create("ddp", root=runs)
trainer = Trainer(model, loss_fn, make_problem(), config(batch_size=8), run_dir=run)
trainer.fit()
if trainer.is_main:
    save_tensors(model.state_dict(), out)
torch.distributed.destroy_process_group()
