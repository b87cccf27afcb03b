"""An MLflow sink for `MetricsLogger`: one MLflow run per lab run folder, offline on a local file store.

`--set trainer.mlflow=true` turns it on for commands on the core trainer; the store is
`trainer.mlflow_uri` (default `file:<$LAB_RUNS or runs>/mlruns`; `mlflow ui --backend-store-uri URI` shows it).
The experiment is the run's command folder (e.g. `sfa`), the MLflow run is named after the run folder, its
params are the flattened config and a tag points back at the folder. Needs `pip install mlflow-skinny`.
MLflow 3 keeps its file store only on request, so MLFLOW_ALLOW_FILE_STORE=true is set for `file:` URIs, and
its usage telemetry is turned off (MLFLOW_DISABLE_TELEMETRY=true) unless the user set it.
A run folder opened again (a resume) logs into the MLflow run it started (found by its lab.run_dir tag). MLflow cannot delete
points, so after a resume from step s the points the first session logged after s are kept and the same
steps, logged again, are skipped (the resumed run redoes them bit-identically): one point per step.
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
    RUNNING in MLflow; the run folder's status is what `lab runs ls` says). `run_id` continues that run
    (a resume): only parameters it lacks are logged, and `truncate_after` skips the steps it holds."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        params: dict | None = None,
        tags: dict | None = None,
        run_id: str | None = None,
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
        flat = list(_flat(params or {}).items())
        if run_id is None:
            self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=tags or {}).info.run_id
        else:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            have = self.client.get_run(run_id).data.params  # MLflow params are write-once
            flat = [(k, v) for k, v in flat if k not in have]
        self._after: int | None = None  # the resumed step: later steps may be in MLflow already
        self._held: dict[str, float] = {}  # key -> the last step MLflow holds for it (read once a key)
        for i in range(0, len(flat), _PARAM_BATCH):
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in flat[i : i + _PARAM_BATCH]])
        self._open = True
        atexit.register(self.close)

    def truncate_after(self, step: int) -> None:
        """The run resumes from its checkpoint at `step`: the steps after it come again."""
        self._after = step
        self._held.clear()

    def _already_held(self, key: str, step: int) -> bool:
        if self._after is None or step <= self._after:
            return False
        if key not in self._held:
            history = self.client.get_metric_history(self.run_id, key)
            self._held[key] = max((m.step for m in history), default=-1)
        return step <= self._held[key]

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        values = {k: v for k, v in values.items() if not self._already_held(k, step)}
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


def _started_run(uri: str, experiment: str, folder: str) -> str | None:
    """The id of the MLflow run this run folder started, if the store has one."""
    if "'" in folder:  # not expressible in a filter string: a new MLflow run instead
        return None
    from mlflow.tracking import MlflowClient

    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id], f"tags.`lab.run_dir` = '{folder}'", order_by=["attributes.start_time DESC"]
    )
    return runs[0].info.run_id if runs else None


def attach(metrics, run_path: Path, uri: str = "") -> MLflowSink:
    """Add an MLflow sink for the run folder at `run_path` to its MetricsLogger (once per logger)."""
    for sink in metrics.sinks:
        if isinstance(sink, MLflowSink):
            return sink
    from lab_shared.io import read_json
    from lab_shared.rundir import runs_root

    config = read_json(run_path / "config.json") if (run_path / "config.json").is_file() else {}
    uri = uri or default_uri(runs_root())
    folder = str(run_path.resolve())
    sink = MLflowSink(
        uri,
        experiment=run_path.parent.name,
        run_name=run_path.name,
        params=config if isinstance(config, dict) else {},
        tags={"lab.run_dir": folder},
        run_id=_started_run(uri, run_path.parent.name, folder),
    )
    metrics.add_sink(sink)
    return sink
