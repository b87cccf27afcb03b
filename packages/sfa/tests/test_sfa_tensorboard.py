"""`lab sfa run --set trainer.tensorboard=true` writes TensorBoard events of every task into the run folder."""

from pathlib import Path

import pytest

pytest.importorskip("tensorboard")  # `make setup` installs it (lab-shared[tensorboard])
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

SMALL = ["--steps", "5", "--no-curves", "--set", "pretrain_steps=5", "--set", "sequence.n_train=200",
         "--set", "sequence.n_test=100", "--set", "sequence.n_val=50", "--set", "sequence.n_pretrain=200",
         "--set", "trainer.log_every=1", "--set", "cache_pretrained=false"]  # fmt: skip


def test_sfa_run_logs_to_tensorboard(tmp_path, monkeypatch, lab_inproc):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path))
    r = lab_inproc(
        "sfa", "run", *SMALL, "--set", "trainer.tensorboard=true"
    )  # the real `lab` main, in-process
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = Path(tmp_path, "sfa").iterdir()
    ea = EventAccumulator(str(run / "tensorboard"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"t0/loss", "t3/loss"} <= tags, tags
    assert [e.step for e in ea.Scalars("t1/loss")] == [6, 7, 8, 9, 10]  # global steps: task 1 follows task 0
