"""`--set trainer.tensorboard=true`: the core trainer also writes its logged scalars as TensorBoard events
under RUN/tensorboard, with the same values as metrics.jsonl (read back with TensorBoard's own reader)."""

from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from lab_shared.callbacks import Callback
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


class _Crash(Callback):
    """Kills the first session at step 16's start: steps 11-15 were logged after the checkpoint at 10."""

    def on_step_start(self, trainer) -> None:
        if trainer.step == 15:
            raise RuntimeError("killed")


def test_resume_leaves_one_point_per_step(tmp_path):
    cfg = load_config(Cfg, None, ["trainer.log_every=5", "trainer.progress=false", "trainer.ckpt_every=10",
                                  "trainer.tensorboard=true"])  # fmt: skip
    x = torch.randn(128, 4, generator=torch.Generator().manual_seed(0))
    data = TensorData(x, (x.sum(1) > 0).long())

    def trainer(run, callbacks=()):
        torch.manual_seed(0)
        loss = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
        return Trainer(nn.Linear(4, 2), loss, data, cfg.trainer, run_dir=run, callbacks=list(callbacks))

    run = RunDir.create("tb", root=tmp_path, config=cfg)
    with pytest.raises(RuntimeError, match="killed"):
        trainer(run, [_Crash()]).fit()
    run.metrics.close()
    first = EventAccumulator(str(run.path / "tensorboard"))
    first.Reload()
    assert [e.step for e in first.Scalars("loss")] == [5, 10, 15]
    again = RunDir.open(run.path)
    trainer(again).fit(resume="auto")  # from the checkpoint at 10: 15 is logged a second time
    again.metrics.close()
    ea = EventAccumulator(str(run.path / "tensorboard"))
    ea.Reload()
    logged = {r["step"]: r["loss"] for r in read_metrics(run.path / "metrics.jsonl") if "loss" in r}
    events = [(e.step, e.value) for e in ea.Scalars("loss")]
    assert [s for s, _ in events] == sorted(logged) == [5, 10, 15, 20]
    for step, value in events:
        assert value == pytest.approx(logged[step], rel=1e-6)
    assert len(list((run.path / "tensorboard").glob("events.out.tfevents.*"))) >= 2  # both sessions' files


def test_truncate_before_the_writer_opens_purges_the_later_steps(tmp_path):
    from lab_shared.metrics import MetricsLogger

    with MetricsLogger(tmp_path / "metrics.jsonl", tmp_path / "tb") as log:
        for step in range(1, 7):
            log.log(step=step, loss=float(step))
    with MetricsLogger(tmp_path / "metrics.jsonl") as log:  # the way `lab sfa run --resume` goes
        assert log.truncate_after(3) == 3
        log.enable_tensorboard(tmp_path / "tb")
        for step in range(4, 7):
            log.log(step=step, loss=10.0 * step)
    ea = EventAccumulator(str(tmp_path / "tb"))
    ea.Reload()
    assert [(e.step, e.value) for e in ea.Scalars("loss")] == [
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 40),
        (5, 50),
        (6, 60),
    ]
    assert [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 40, 50, 60]
