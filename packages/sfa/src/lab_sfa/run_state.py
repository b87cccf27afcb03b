"""The saved state of a `lab sfa run` between tasks: what `--resume` needs to continue exactly.

    checkpoints/after-pretrain/     theta_pre, the run's start (r0, pretraining record), RNG states (once)
    checkpoints/after-task-003/     model weights, the method's state (replay buffer and its RNG, anchors,
                                    Fisher, stored task vectors), the loop's state (R, Rval, curves, costs,
                                    barrier scans, train time) and every RNG state; only the newest is kept
    checkpoints/task-004-partial/   the trainer's own checkpoint inside the task being trained (written on
                                    SIGINT/SIGTERM/SIGUSR1, or every trainer.ckpt_every steps)

Each folder is filled in a hidden temp folder and swapped into place (`lab_shared.io.atomic_dir`), so a kill
mid-write leaves the previous state whole. Tensors go to safetensors, the rest to JSON (tensors inside the
method's state are split out by the core's checkpoint helpers); nothing is unpickled.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from lab_shared.checkpoint import join_tensors, split_tensors
from lab_shared.errors import LabError
from lab_shared.io import atomic_dir, atomic_write_json, load_tensors, read_json, save_tensors
from lab_shared.seed import get_rng_state

PRETRAIN = "after-pretrain"


def task_name(k: int) -> str:
    return f"after-task-{k:03d}"


def partial_dir(root: Path, k: int) -> Path:
    """Where the trainer checkpoints inside task k."""
    return root / f"task-{k:03d}-partial"


def save_state(root: Path, name: str, model: dict[str, torch.Tensor], method: dict, loop: dict) -> Path:
    """Write root/name atomically: weights, method state, loop state and the RNG states of this moment."""
    with atomic_dir(root / name) as tmp:
        save_tensors(model, tmp / "model.safetensors")
        rng_tensors, rng_json = get_rng_state()
        save_tensors(rng_tensors, tmp / "rng.safetensors")
        method_json, method_tensors = split_tensors(method)
        if method_tensors:
            save_tensors(method_tensors, tmp / "method.safetensors")
        atomic_write_json(
            tmp / "state.json", {"method": method_json, "loop": loop, "rng": rng_json, "complete": True}
        )
    return root / name


def load_state(
    path: Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict, dict, tuple[dict, dict]]:
    """(model weights, method state, loop state, RNG states) of a saved state; the caller restores the RNG
    states (`lab_shared.seed.set_rng_state(*rng)`) once everything that draws from them is built. The method's
    tensors (anchors, Fisher, stored fine-tunes) are put on `device`, beside the model."""
    state = read_json(path / "state.json")
    if not isinstance(state, dict) or not state.get("complete") or not isinstance(state.get("loop"), dict):
        raise LabError(f"run state {path} is incomplete or corrupt (bad state.json)")
    weights = load_tensors(path / "model.safetensors")
    method = state.get("method", {})
    if (path / "method.safetensors").exists():
        method = join_tensors(method, load_tensors(path / "method.safetensors", device=str(device)))
    return weights, method, state["loop"], (load_tensors(path / "rng.safetensors"), state["rng"])


def has_state(path: Path) -> bool:
    return (path / "state.json").is_file()


def last_task(root: Path) -> int:
    """Index of the newest finished task with a saved state; -1 when none."""
    done = [int(p.name.rsplit("-", 1)[1]) for p in root.glob("after-task-*") if has_state(p)]
    return max(done, default=-1)


def prune(root: Path, keep_task: int) -> None:
    """Remove task states older than `keep_task` and the partial checkpoints of tasks up to it."""
    for p in root.glob("after-task-*"):
        if int(p.name.rsplit("-", 1)[1]) < keep_task:
            shutil.rmtree(p, ignore_errors=True)
    for p in root.glob("task-*-partial"):
        if int(p.name.split("-")[1]) <= keep_task:
            shutil.rmtree(p, ignore_errors=True)


def clear_pretrain_partial(root: Path) -> None:
    shutil.rmtree(root / "pretrain-partial", ignore_errors=True)


def clear(root: Path) -> None:
    """Remove every saved state (the run finished: its results and final weights are written)."""
    for p in [*root.glob("after-*"), *root.glob("task-*-partial"), root / "pretrain-partial"]:
        shutil.rmtree(p, ignore_errors=True)
