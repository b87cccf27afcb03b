"""A 2-process gloo DDP run under torchrun matches single-process training with the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from lab_shared.io import load_tensors
from lab_shared.trainer import Trainer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from ddp_problem import config, loss_fn, make_model, make_problem  # noqa: E402


def test_two_process_gloo_matches_single(tmp_path):
    out = tmp_path / "ddp.safetensors"
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
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = load_tensors(out)
    single = make_model()
    Trainer(single, loss_fn, make_problem(), config(batch_size=16)).fit()
    for k, v in single.state_dict().items():
        assert torch.allclose(v, ddp[k], atol=1e-5), k
    runs = list((tmp_path / "runs" / "ddp").iterdir())
    assert (
        len(runs) == 1 and (runs[0] / "checkpoints" / "latest").is_file()
    )  # one shared run dir, rank 0 saved
