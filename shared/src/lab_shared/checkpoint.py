"""Training checkpoints: model and optimizer tensors in safetensors, everything else in JSON.

Layout: checkpoints/step-00000100/{model.safetensors, optimizer.safetensors, rng.safetensors, state.json}.
Tensors inside `state` (e.g. a callback's anchor weights) go to state.safetensors; state.json keeps a
{"__tensor__": key} marker in their place, restored by `read_checkpoint`.
A checkpoint is written into a hidden temp folder and swapped into place (`lab_shared.io.atomic_dir`), then
`checkpoints/latest` is updated atomically, so a crash mid-save leaves the previous good checkpoint untouched.
Nothing is unpickled.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from lab_shared.errors import LabError
from lab_shared.io import (
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    load_tensors,
    read_json,
    save_tensors,
)

MODEL_FILE = "model.safetensors"
STATE_TENSORS_FILE = "state.safetensors"


def split_tensors(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """(obj with every tensor replaced by {"__tensor__": key}, {key: tensor}): JSON for the rest."""
    if torch.is_tensor(obj):
        return {"__tensor__": prefix}, {prefix: obj}
    tensors: dict[str, torch.Tensor] = {}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out[k], t = split_tensors(v, f"{prefix}.{k}" if prefix else str(k))
            tensors.update(t)
        return out, tensors
    if isinstance(obj, (list, tuple)):
        items = []
        for i, v in enumerate(obj):
            item, t = split_tensors(v, f"{prefix}.{i}" if prefix else str(i))
            items.append(item)
            tensors.update(t)
        return items, tensors
    return obj, tensors


def join_tensors(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `split_tensors`: put the tensors back where the markers are."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            if obj["__tensor__"] not in tensors:
                raise LabError(f"checkpoint state refers to a missing tensor '{obj['__tensor__']}'")
            return tensors[obj["__tensor__"]]
        return {k: join_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [join_tensors(v, tensors) for v in obj]
    return obj


def save_model_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Model weights as safetensors (shared/tied tensors stored once), atomically."""
    from safetensors.torch import save_model

    from lab_shared.io import atomic_path

    with atomic_path(path) as tmp:
        save_model(model, str(tmp))


def load_model_weights(model: torch.nn.Module, path: str | Path, strict: bool = True) -> None:
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise LabError(f"model weights not found: {path}")
    try:
        missing, unexpected = load_model(model, str(path), strict=strict)
    except RuntimeError as e:
        raise LabError(f"weights in {path} do not fit the model: {str(e).splitlines()[0]}") from None
    except Exception as e:
        raise LabError(f"corrupt model weights {path}: {e}") from None


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = t
    for pid, st in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    ckpt_root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: dict,
    rng: tuple[dict, dict] | None = None,
    keep: int = 2,
) -> Path:
    """Write one checkpoint folder atomically and prune all but the newest `keep`."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:08d}"
    with atomic_dir(final) as tmp:
        save_model_weights(model, tmp / MODEL_FILE)
        if optimizer is not None:
            tensors, meta = optimizer_state(optimizer)
            save_tensors(tensors, tmp / "optimizer.safetensors")
            state = {**state, "optimizer": meta}
        if rng is not None:
            save_tensors(rng[0], tmp / "rng.safetensors")
            state = {**state, "rng": rng[1]}
        state, state_tensors = split_tensors(state)
        if state_tensors:
            save_tensors(state_tensors, tmp / STATE_TENSORS_FILE)
        atomic_write_json(tmp / "state.json", {**state, "step": step, "complete": True})
    atomic_write_text(ckpt_root / "latest", final.name + "\n")
    old = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir())
    for p in old[: max(0, len(old) - keep)]:
        if p != final:
            shutil.rmtree(p, ignore_errors=True)
    return final


def find_checkpoint(where: str | Path) -> Path:
    """Resolve a checkpoint folder: itself, or a run dir / checkpoints dir holding `latest` or step-* folders."""
    p = Path(where)
    if (p / "state.json").is_file():
        return p
    for root in (p / "checkpoints", p):
        latest = root / "latest"
        if latest.is_file():
            cand = root / latest.read_text().strip()
            if cand.is_dir():
                return cand
        steps = sorted(q for q in root.glob("step-*") if q.is_dir())
        if steps:
            return steps[-1]
    raise LabError(f"no checkpoint found in {p}")


def read_checkpoint(path: Path) -> tuple[dict, dict | None, dict | None]:
    """(state, optimizer tensors, rng tensors) of a checkpoint folder; LabError if it is corrupt."""
    state = read_json(path / "state.json")
    if not isinstance(state, dict) or not state.get("complete") or "step" not in state:
        raise LabError(f"checkpoint {path} is incomplete or corrupt (bad state.json)")
    opt = load_tensors(path / "optimizer.safetensors") if (path / "optimizer.safetensors").exists() else None
    rng = load_tensors(path / "rng.safetensors") if (path / "rng.safetensors").exists() else None
    if (path / STATE_TENSORS_FILE).exists():
        state = join_tensors(state, load_tensors(path / STATE_TENSORS_FILE))
    if not (path / MODEL_FILE).is_file():
        raise LabError(f"checkpoint {path} has no {MODEL_FILE}")
    return state, opt, rng
