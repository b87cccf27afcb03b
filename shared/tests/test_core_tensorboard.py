"""`--set trainer.tensorboard=true`: the core trainer also writes its logged scalars as TensorBoard events
under RUN/tensorboard, with the same values as metrics.jsonl (read back with TensorBoard's own reader)."""

from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from lab_shared.config import load_config
from lab_shared.data import TensorData
from lab_shared.metrics import read_metrics
from lab_shared.rundir import RunDir
from lab_shared.trainer import Trainer, TrainerConfig

pytest.importorskip("tensorboard")  # `make setup` installs it (lab-shared[tensorboard])
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


@dataclass
class Cfg:
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=20, batch_size=16))


def _train(tmp_path, sets):
    cfg = load_config(Cfg, None, ["trainer.log_every=5", "trainer.progress=false", *sets])
    torch.manual_seed(0)
    x = torch.randn(128, 4)
    data = TensorData(x, (x.sum(1) > 0).long())
    model = nn.Linear(4, 2)
    run = RunDir.create("tb", root=tmp_path, config=cfg)
    Trainer(
        model, lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]), data, cfg.trainer, run_dir=run
    ).fit()
    return run


def test_tensorboard_scalars_match_metrics(tmp_path):
    run = _train(tmp_path, ["trainer.tensorboard=true"])
    ea = EventAccumulator(str(run.path / "tensorboard"))
    ea.Reload()
    assert {"loss", "lr"} <= set(ea.Tags()["scalars"])
    logged = {r["step"]: r["loss"] for r in read_metrics(run.path / "metrics.jsonl") if "loss" in r}
    events = {e.step: e.value for e in ea.Scalars("loss")}
    assert sorted(events) == sorted(logged) == [5, 10, 15, 20]
    for step, value in logged.items():
        assert events[step] == pytest.approx(value, rel=1e-6)


def test_off_by_default(tmp_path):
    run = _train(tmp_path, [])
    assert not (run.path / "tensorboard").exists()
