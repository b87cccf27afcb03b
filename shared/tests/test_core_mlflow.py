"""`--set trainer.mlflow=true`: one MLflow run per run folder on a local file store (offline), with the
config as params and the same loss values as metrics.jsonl, read back through MLflow's own client."""

import os
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

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow is imported: offline, no usage id
pytest.importorskip("mlflow")  # `make setup` installs mlflow-skinny (lab-shared[mlflow])
from mlflow.tracking import MlflowClient  # noqa: E402


@dataclass
class Cfg:
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=20, batch_size=16))


def test_mlflow_run_matches_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    cfg = load_config(Cfg, None, ["trainer.log_every=5", "trainer.progress=false", "trainer.mlflow=true"])
    torch.manual_seed(0)
    x = torch.randn(128, 4)
    data = TensorData(x, (x.sum(1) > 0).long())
    run = RunDir.create("mlf", config=cfg)
    trainer = Trainer(
        nn.Linear(4, 2),
        lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]),
        data,
        cfg.trainer,
        run_dir=run,
    )
    trainer.fit()
    run.metrics.close()  # what the end of the process does (atexit) for commands

    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").as_uri())  # the default store
    exp = client.get_experiment_by_name("mlf")
    (mrun,) = client.search_runs([exp.experiment_id])
    assert mrun.info.run_name == run.path.name and mrun.info.status == "FINISHED"
    assert mrun.data.tags["lab.run_dir"] == str(run.path.resolve())
    assert mrun.data.params["trainer.lr"] == str(cfg.trainer.lr)
    logged = {r["step"]: r["loss"] for r in read_metrics(run.path / "metrics.jsonl") if "loss" in r}
    history = {m.step: m.value for m in client.get_metric_history(mrun.info.run_id, "loss")}
    assert sorted(history) == sorted(logged) == [5, 10, 15, 20]
    for step, value in logged.items():
        assert history[step] == pytest.approx(value, rel=1e-6)


class _Crash(Callback):
    """Kills the first session at step 16's start: steps 11-15 were logged after the checkpoint at 10."""

    def on_step_start(self, trainer) -> None:
        if trainer.step == 15:
            raise RuntimeError("killed")


def test_resume_continues_the_mlflow_run_with_one_point_per_step(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    sets = ["trainer.log_every=5", "trainer.progress=false", "trainer.mlflow=true", "trainer.ckpt_every=10"]
    cfg = load_config(Cfg, None, sets)
    x = torch.randn(128, 4, generator=torch.Generator().manual_seed(0))
    data = TensorData(x, (x.sum(1) > 0).long())

    def trainer(run, callbacks=()):
        torch.manual_seed(0)
        loss = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
        return Trainer(nn.Linear(4, 2), loss, data, cfg.trainer, run_dir=run, callbacks=list(callbacks))

    run = RunDir.create("mlf", config=cfg)
    with pytest.raises(RuntimeError, match="killed"):
        trainer(run, [_Crash()]).fit()
    run.metrics.close()
    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").as_uri())
    exp = client.get_experiment_by_name("mlf")
    (first,) = client.search_runs([exp.experiment_id])
    assert [m.step for m in client.get_metric_history(first.info.run_id, "loss")] == [5, 10, 15]
    again = RunDir.open(run.path)
    trainer(again).fit(resume="auto")  # from the checkpoint at 10: 15 is logged a second time
    again.metrics.close()
    (mrun,) = client.search_runs([exp.experiment_id])  # the same MLflow run, continued
    assert mrun.info.run_id == first.info.run_id and mrun.info.status == "FINISHED"
    assert mrun.data.params["trainer.lr"] == str(cfg.trainer.lr)
    logged = {r["step"]: r["loss"] for r in read_metrics(run.path / "metrics.jsonl") if "loss" in r}
    history = [(m.step, m.value) for m in client.get_metric_history(mrun.info.run_id, "loss")]
    assert sorted(s for s, _ in history) == sorted(logged) == [5, 10, 15, 20]
    for step, value in history:  # step 15 from the first session: the resume redid it bit-identically
        assert value == pytest.approx(logged[step], rel=1e-6)
