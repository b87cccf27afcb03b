"""Run directories: runs/<command>/<name>-<timestamp>/ with config.json, provenance.json, metrics.jsonl,
results.json, plots/ and checkpoints/. Every file written here is written atomically.

A folder opened to write (`create`, `open`, `resume`) is locked for the life of the process (flock on
`.lock`), so a second writer gets one error line instead of interleaving with the first; leftover temp files
of killed writers are removed once the lock is held. `resume` compares the new config and inputs with
provenance.json and refuses a mismatch unless forced (the forced resume is recorded).
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import time
from pathlib import Path
from typing import Any

from lab_shared import provenance
from lab_shared.errors import LabError
from lab_shared.io import atomic_write_json, clean_temp_files, file_mode, read_json
from lab_shared.metrics import MetricsLogger

LOCK_FILE = ".lock"
_held: dict[str, int] = {}  # resolved folder -> fd of its lock, kept open for the life of the process


def _is_rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def lock_run_folder(path: Path, shared: bool = False) -> bool:
    """Take the folder's lock (exclusive, or shared for cooperating processes); LabError if someone else
    holds it. True when newly taken, False when this process already holds it."""
    key = str(path.resolve())
    if key in _held:
        return False
    lock = path / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, file_mode())
    except OSError as e:
        raise LabError(f"cannot lock run folder {path}: {e.strerror}: {lock}") from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            pid = os.pread(fd, 32, 0).decode().strip() or "unknown"
        except (OSError, UnicodeDecodeError):
            pid = "unknown"
        os.close(fd)
        raise LabError(f"run folder {path} is in use by pid {pid}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd
    return True


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
        cls,
        command: str,
        name: str = "run",
        config: Any = None,
        root: str | Path | None = None,
        inputs: list[str | Path | None] | tuple = (),
    ) -> RunDir:
        """A new locked folder runs/<command>/<name>-<time>[-N]/ with config.json and provenance.json."""
        shared = _ddp_shared_path(lambda: cls._new_path(runs_root(root) / command, name))
        if shared is not None:  # under torchrun every rank uses rank 0's folder
            return cls(shared) if not _is_rank0() else cls._finish(shared, config, inputs)
        return cls._finish(cls._new_path(runs_root(root) / command, name), config, inputs)

    @staticmethod
    def _new_path(base: Path, name: str) -> Path:
        """Make a fresh folder; two runs started in the same second get -2, -3, ... (mkdir is the arbiter)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base.mkdir(parents=True, exist_ok=True)
        path, n = base / f"{name}-{stamp}", 1
        while True:
            try:
                path.mkdir()
                return path
            except FileExistsError:
                n += 1
                path = base / f"{name}-{stamp}-{n}"

    @classmethod
    def _finish(cls, path: Path, config: Any, inputs=()) -> RunDir:
        lock_run_folder(path)
        run = cls(path)
        if config is not None:
            run.write_config(config)
        run.write_provenance(provenance.new_record(config, inputs))
        return run

    @classmethod
    def open(cls, path: str | Path, lock: bool | str = True) -> RunDir:
        """Reopen a run folder to write to it: locked (lock="shared" lets cooperating processes share it,
        lock=False only reads); leftover temp files are removed when the lock is exclusive."""
        path = Path(path)
        if not path.is_dir():
            raise LabError(f"run directory not found: {path}")
        if lock and _is_rank0():
            lock_run_folder(path, shared=lock == "shared")
            if lock != "shared":
                clean_temp_files(path)
        return cls(path)

    @classmethod
    def resume(
        cls,
        path: str | Path,
        config: Any,
        inputs: list[str | Path | None] | tuple = (),
        force: bool = False,
        allow: tuple[str, ...] = (),
        lock: bool | str = True,
    ) -> RunDir:
        """Open `path` to continue it with `config`; refuses a config or input change unless `force`."""
        run = cls.open(path, lock=lock)
        run.check_resume(config, inputs, force, allow)
        return run

    def share(self) -> None:
        """Make this process's lock shared, so cooperating processes (`sfa sweep --only`) can join with
        `open(path, lock="shared")`; an exclusive writer is still refused."""
        fd = _held.get(str(self.path.resolve()))
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)

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
        """config.json: the resolved config (dataclass paths made absolute)."""
        data = provenance.resolved_config(config) if dataclasses.is_dataclass(config) else config
        return atomic_write_json(self.path / "config.json", data)

    def write_results(self, results: dict) -> Path:
        """results.json, and the end time in provenance.json."""
        out = atomic_write_json(self.path / "results.json", results)
        self.mark_ended()
        return out

    # ---- provenance -------------------------------------------------------------------------------------
    def read_provenance(self) -> dict | None:
        f = self.path / provenance.FILE
        return read_json(f) if f.is_file() else None

    def write_provenance(self, record: dict) -> Path:
        return atomic_write_json(self.path / provenance.FILE, record)

    def mark_ended(self) -> None:
        """Record the end time (the run finished; a later resume clears it again)."""
        if not _is_rank0():
            return
        rec = self.read_provenance()
        if isinstance(rec, dict):
            rec["ended"] = provenance.now()
            self.write_provenance(rec)

    def check_resume(
        self,
        config: Any,
        inputs: list[str | Path | None] | tuple = (),
        force: bool = False,
        allow: tuple[str, ...] = (),
    ) -> list[str]:
        """Compare `config` and `inputs` with the record; a difference (outside the `allow`ed keys) is a
        LabError naming the keys unless `force`. Records the resume; returns the keys that changed."""
        rec = self.read_provenance()
        if not isinstance(rec, dict):
            rec = None
        old = rec.get("config") if rec else None
        if old is None and (self.path / "config.json").is_file():  # a folder from before provenance.json
            old = read_json(self.path / "config.json")
        new = provenance.resolved_config(config)
        comparable = old is not None and new is not None
        changed = provenance.config_diff(old, new) if comparable else []
        refused = [
            k for k in (provenance.config_diff(old, new, allow) if comparable else []) if not _logging_only(k)
        ]
        new_inputs = provenance.hash_inputs(inputs)
        recorded_in = rec.get("inputs") if rec else None  # none recorded: nothing to compare with
        changed_in = provenance.inputs_diff(recorded_in, new_inputs) if recorded_in and inputs else []
        if (refused or changed_in) and not force:
            what = []
            if refused:
                what.append("config differs: " + provenance.describe_diff(old, new, refused))
            if changed_in:
                what.append("inputs differ: " + ", ".join(changed_in))
            raise LabError(
                f"refusing to resume {self.path}: {'; '.join(what)} "
                "(pass --force to resume anyway; it is recorded in provenance.json)"
            )
        if not _is_rank0():
            return changed
        if rec is None:
            rec = provenance.new_record(config if config is not None else old, inputs)
            rec["started"] = None  # unknown: the folder predates its record
        entry = {"time": provenance.now(), "argv": provenance.argv(), "forced": bool(force)}
        if changed or changed_in:
            entry.update(changed=changed, changed_inputs=changed_in)
        rec.setdefault("resumes", []).append(entry)
        if new is not None:
            rec["config"] = new
        if inputs:
            rec["inputs"] = new_inputs
        rec["ended"] = None
        self.write_provenance(rec)
        if changed and config is not None:
            self.write_config(config)  # config.json tells what the run continues with
        return changed

    def read_results(self) -> dict:
        return read_json(self.path / "results.json")

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


# Settings that change only what is logged or shown, never the weights: a resume may change them freely.
LOGGING_ONLY = ("tensorboard", "mlflow", "mlflow_uri", "progress")


def _logging_only(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in LOGGING_ONLY
