"""Run directories: runs/<command>/<name>-<timestamp>/ with config.json, metrics.jsonl, results.json,
plots/ and checkpoints/. Every file written here is written atomically."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from lab_shared.config import config_to_dict
from lab_shared.errors import LabError
from lab_shared.io import atomic_write_json, read_json
from lab_shared.metrics import MetricsLogger


def runs_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("LAB_RUNS", "runs"))


def _ddp_shared_path(make) -> Path | None:
    """Under torchrun: rank 0 makes the folder and broadcasts its path; None when not distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch.distributed as dist

    from lab_shared.distributed import init_distributed

    init_distributed()
    box = [str(make()) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


class RunDir:
    """One run's folder. Create a new one with `RunDir.create`, reopen one with `RunDir.open`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.plots.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self._metrics: MetricsLogger | None = None

    @classmethod
    def create(
        cls, command: str, name: str = "run", config: Any = None, root: str | Path | None = None
    ) -> RunDir:
        shared = _ddp_shared_path(lambda: cls._new_path(runs_root(root) / command, name))
        if shared is not None:  # under torchrun every rank uses rank 0's folder
            return cls(shared) if int(os.environ.get("RANK", "0")) else cls._finish(shared, config)
        return cls._finish(cls._new_path(runs_root(root) / command, name), config)

    @staticmethod
    def _new_path(base: Path, name: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = base / f"{name}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = base / f"{name}-{stamp}-{n}"
        path.mkdir(parents=True)
        return path

    @classmethod
    def _finish(cls, path: Path, config: Any) -> RunDir:
        run = cls(path)
        if config is not None:
            run.write_config(config)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        path = Path(path)
        if not path.is_dir():
            raise LabError(f"run directory not found: {path}")
        return cls(path)

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def metrics(self) -> MetricsLogger:
        if self._metrics is None:
            self._metrics = MetricsLogger(self.path / "metrics.jsonl")
        return self._metrics

    def write_config(self, config: Any) -> Path:
        data = config_to_dict(config) if dataclasses.is_dataclass(config) else config
        return atomic_write_json(self.path / "config.json", data)

    def write_results(self, results: dict) -> Path:
        return atomic_write_json(self.path / "results.json", results)

    def read_results(self) -> dict:
        return read_json(self.path / "results.json")

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"
