"""torchrun with 2 gloo processes matches one process: per-process batches, and trainer.global_batch
(gradient accumulation derived from the process count, resume across process counts)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lab_shared.errors import LabError
from lab_shared.io import load_tensors
from lab_shared.trainer import Trainer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from ddp_problem import config, loss_fn, make_model, make_problem  # noqa: E402


def _torchrun(tmp_path, out, jobs=None):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(HERE / "ddp_worker.py"),
        str(out),
        str(tmp_path / "runs"),
        str(HERE),
    ]
    if jobs is not None:
        cmd.append(json.dumps(jobs))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _same(model, tensors):
    for k, v in model.state_dict().items():
        assert torch.allclose(v, tensors[k], atol=1e-5), k


def test_two_process_gloo_matches_single(tmp_path):
    out = tmp_path / "ddp.safetensors"
    _torchrun(tmp_path, out)
    ddp = load_tensors(out)
    single = make_model()
    Trainer(single, loss_fn, make_problem(), config(batch_size=16)).fit()
    _same(single, ddp)
    runs = list((tmp_path / "runs" / "ddp").iterdir())
    assert (
        len(runs) == 1 and (runs[0] / "checkpoints" / "latest").is_file()
    )  # one shared run dir, rank 0 saved


# 120 examples: one process with micro-batch 4 (grad_accum 4) and two with micro-batch 8 (grad_accum 1) both
# take 7 steps of 16 an epoch (the 8-example tail is dropped), so 12 steps cross an epoch boundary. The cosine
# runs over 12 steps in every run, so a 6-step run is the first half of a 12-step one.
N, GLOBAL = 120, 16


def _single(tmp_path, name, max_steps=12, resume=None, ckpt_every=0):
    from lab_shared.rundir import RunDir

    model = make_model()
    cfg = config(
        batch_size=4, global_batch=GLOBAL, max_steps=max_steps, ckpt_every=ckpt_every, lr_decay_steps=12
    )
    trainer = Trainer(
        model, loss_fn, make_problem(N), cfg, run_dir=RunDir.create(name, root=tmp_path / "runs")
    )
    assert trainer.config.grad_accum == 4
    trainer.fit(resume=resume)
    return model, trainer


def test_global_batch_same_weights_and_resume_across_process_counts(tmp_path):
    # one process, 6 steps: the checkpoint the 2-process run resumes from
    _, half = _single(tmp_path, "one-half", max_steps=6)
    jobs = [
        {"name": "two-full", "out": str(tmp_path / "two.safetensors"), "n": N, "batch_size": 8,
         "global_batch": GLOBAL, "ckpt_every": 6, "lr_decay_steps": 12},
        {"name": "two-resumed", "out": str(tmp_path / "two-resumed.safetensors"), "n": N, "batch_size": 8,
         "global_batch": GLOBAL, "lr_decay_steps": 12, "resume": str(half.run_dir.path)},
    ]  # fmt: skip
    _torchrun(tmp_path, tmp_path / "unused", jobs)
    full, _ = _single(tmp_path, "one-full")
    _same(full, load_tensors(tmp_path / "two.safetensors"))  # 1 process x 4 x 4 == 2 processes x 8 x 1
    _same(full, load_tensors(tmp_path / "two-resumed.safetensors"))  # 1 -> 2 processes at step 6
    two_run = next((tmp_path / "runs" / "two-full").iterdir())
    step6 = two_run / "checkpoints" / "step-00000006"
    assert step6.is_dir()
    resumed, _ = _single(tmp_path, "one-resumed", resume=step6)  # 2 -> 1 process at step 6
    _same(full, {k: v for k, v in resumed.state_dict().items()})
    # a different process count without the same global batch is refused with one line
    model = make_model()
    with pytest.raises(LabError, match="same trainer.global_batch"):
        Trainer(model, loss_fn, make_problem(N), config(batch_size=16)).load_checkpoint(step6)


def test_global_batch_not_divisible_is_one_line():
    with pytest.raises(LabError, match="not a multiple of trainer.batch_size x processes = 3 x 1"):
        Trainer(make_model(), loss_fn, make_problem(), config(batch_size=3, global_batch=16))
