"""An MLflow sink for `MetricsLogger`: one MLflow run per lab run folder, offline on a local file store.

`--set trainer.mlflow=true` turns it on for commands on the core trainer; the store is
`trainer.mlflow_uri` (default `file:<$LAB_RUNS or runs>/mlruns`; `mlflow ui --backend-store-uri URI` shows it).
The experiment is the run's command folder (e.g. `sfa`), the MLflow run is named after the run folder, its
params are the flattened config and a tag points back at the folder. Needs `pip install mlflow-skinny`.
MLflow 3 keeps its file store only on request, so MLFLOW_ALLOW_FILE_STORE=true is set for `file:` URIs, and
its usage telemetry is turned off (MLFLOW_DISABLE_TELEMETRY=true) unless the user set it.
"""

from __future__ import annotations

import atexit
import os
import time
from pathlib import Path
from typing import Any

from lab_shared.errors import LabError

_PARAM_BATCH = 100  # MLflow's limit of params per log_batch call
_PARAM_VALUE_MAX = 500


def default_uri(runs_root: str | Path) -> str:
    return (Path(runs_root).resolve() / "mlruns").as_uri()


def _flat(d: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(d, dict):
        out: dict[str, str] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: str(d)[:_PARAM_VALUE_MAX]} if prefix else {}


class MLflowSink:
    """Logs scalars to one MLflow run, marked FINISHED at close or at exit (a killed process leaves it
    RUNNING in MLflow; the run folder's status is what `lab runs ls` says)."""

    def __init__(
        self, uri: str, experiment: str, run_name: str, params: dict | None = None, tags: dict | None = None
    ):
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # offline: MLflow 3 would send usage events
        try:
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise LabError("MLflow tracking needs the mlflow package: pip install mlflow-skinny") from None
        from mlflow.entities import Metric

        self._metric = Metric
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=tags or {}).info.run_id
        flat = list(_flat(params or {}).items())
        for i in range(0, len(flat), _PARAM_BATCH):
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in flat[i : i + _PARAM_BATCH]])
        self._open = True
        atexit.register(self.close)

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        if not values or not self._open:
            return
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[self._metric(k, v, now, int(step)) for k, v in values.items()]
        )

    def close(self) -> None:
        if self._open:
            self._open = False
            self.client.set_terminated(self.run_id, "FINISHED")


def attach(metrics, run_path: Path, uri: str = "") -> MLflowSink:
    """Add an MLflow sink for the run folder at `run_path` to its MetricsLogger (once per logger)."""
    for sink in metrics.sinks:
        if isinstance(sink, MLflowSink):
            return sink
    from lab_shared.io import read_json
    from lab_shared.rundir import runs_root

    config = read_json(run_path / "config.json") if (run_path / "config.json").is_file() else {}
    sink = MLflowSink(
        uri or default_uri(runs_root()),
        experiment=run_path.parent.name,
        run_name=run_path.name,
        params=config if isinstance(config, dict) else {},
        tags={"lab.run_dir": str(run_path.resolve())},
    )
    metrics.add_sink(sink)
    return sink
