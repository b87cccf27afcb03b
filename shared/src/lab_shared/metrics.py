"""Metrics as JSON lines (always), TensorBoard scalars and other sinks such as MLflow (optional extras).

A sink is any object with `log_scalars(step, values)` and `close()`; `MetricsLogger.add_sink` adds one, and
every numeric value logged with a step goes to each sink.

A resume (`truncate_after(step)`: the rows after the checkpoint at `step` come again) reaches every logger:
metrics.jsonl drops those rows, TensorBoard gets a purge marker at step + 1 (a new writer with `purge_step`,
so TensorBoard hides the earlier session's events from there on), and a sink with its own
`truncate_after(step)` (MLflow: it cannot delete points, so it skips those it already holds) is told.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

from lab_shared.errors import LabError
from lab_shared.io import atomic_write_text, to_json


class MetricsSink(Protocol):
    def log_scalars(self, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class MetricsLogger:
    """Append one JSON object per `log` call to a .jsonl file (line-buffered, flushed every call)."""

    def __init__(self, path: str | Path, tensorboard_dir: str | Path | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._tb = None
        self._tb_dir: str | None = None
        self._resumed_at: int | None = None  # the step of the last truncate_after: later steps come again
        self._sinks: list[MetricsSink] = []
        if tensorboard_dir is not None:
            try:
                self.enable_tensorboard(tensorboard_dir)
            except LabError:  # tensorboard is an optional extra
                pass

    def enable_tensorboard(self, log_dir: str | Path) -> None:
        """Also write every numeric value logged with a step as a TensorBoard scalar under `log_dir`
        (`tensorboard --logdir RUN/tensorboard`); LabError when the tensorboard extra is not installed."""
        if self._tb is not None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise LabError(
                "TensorBoard logging needs the tensorboard package: pip install 'lab-shared[tensorboard]'"
            ) from None
        self._tb_dir = str(log_dir)
        purge = None if self._resumed_at is None else self._resumed_at + 1
        self._tb = SummaryWriter(self._tb_dir, purge_step=purge)

    def add_sink(self, sink: MetricsSink) -> None:
        """Send every numeric value logged with a step to `sink` too (e.g. lab_shared.mlflow_sink)."""
        self._sinks.append(sink)
        if self._resumed_at is not None and hasattr(sink, "truncate_after"):
            sink.truncate_after(self._resumed_at)

    @property
    def sinks(self) -> list[MetricsSink]:
        return list(self._sinks)

    def log(self, step: int | None = None, **values: Any) -> None:
        row = {"time": round(time.time(), 3)}
        if step is not None:
            row["step"] = step
        row.update(values)
        self._f.write(to_json(row, indent=None) + "\n")
        self._f.flush()
        if self._tb is not None and step is not None:
            for k, v in values.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()  # readable while the run goes on, and nothing lost if it is killed
        if self._sinks and step is not None:
            scalars = {
                k: float(v)
                for k, v in values.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            for sink in self._sinks:
                sink.log_scalars(step, scalars)

    def truncate_after(self, step: int) -> int:
        """Drop rows logged after `step` (a resume from the checkpoint at `step` logs them again) and a torn
        last line; rows without a step are kept. Rewritten atomically; returns the number of rows dropped.
        TensorBoard and the sinks drop or skip them too (see the module's docstring)."""
        self._f.close()
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            s = row.get("step") if isinstance(row, dict) else None
            if not isinstance(s, int | float) or s <= step:
                kept.append(line)
        if len(kept) != len(lines):
            atomic_write_text(self.path, "".join(k + "\n" for k in kept))
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._resumed_at = step
        if self._tb is not None:  # a writer opened before the resume: reopen it with the purge marker
            self._tb.close()
            self._tb = None
            self.enable_tensorboard(self._tb_dir)
        for sink in self._sinks:
            if hasattr(sink, "truncate_after"):
                sink.truncate_after(step)
        return len(lines) - len(kept)

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
        if self._tb is not None:
            self._tb.close()
        for sink in self._sinks:
            sink.close()
        self._sinks = []

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict]:
    """All rows of a metrics file; a truncated last line (killed writer) is skipped."""
    rows = []
    path = Path(path)
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
