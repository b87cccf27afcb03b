"""Run by torchrun from test_core_ddp.py: train with the core trainer, save rank 0's weights.

argv: OUT RUNS TESTS_DIR [JOBS_JSON]. Without JOBS_JSON: the plain per-process-batch run. With it: a list of
{"name", "out", "n", "batch_size", "global_batch", "max_steps", "ckpt_every", "lr_decay_steps", "resume"} jobs run in order.
"""

import json
import sys

import torch

from lab_shared.io import save_tensors
from lab_shared.rundir import RunDir
from lab_shared.trainer import Trainer

sys.path.insert(0, sys.argv[3])
from ddp_problem import config, loss_fn, make_model, make_problem  # noqa: E402

out, runs = sys.argv[1], sys.argv[2]
jobs = json.loads(sys.argv[4]) if len(sys.argv) > 4 else [{"name": "ddp", "out": out, "batch_size": 8}]
for job in jobs:
    model = make_model()
    run = RunDir.create(job["name"], root=runs)
    kw = {k: job[k] for k in ("global_batch", "max_steps", "ckpt_every", "lr_decay_steps") if k in job}
    cfg = config(batch_size=job["batch_size"], **kw)
    trainer = Trainer(model, loss_fn, make_problem(job.get("n", 128)), cfg, run_dir=run)
    trainer.fit(resume=job.get("resume"))
    if trainer.is_main:
        save_tensors(model.state_dict(), job["out"])
torch.distributed.destroy_process_group()
