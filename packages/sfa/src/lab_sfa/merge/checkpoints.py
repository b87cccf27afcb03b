"""Merging saved checkpoints (files or model folders) with the state-dict merges of `lab_sfa.merge.state_dicts`.

Safetensors checkpoints with the same tensors are merged streaming (`lab_sfa.merge.streaming`: one tensor per
input in memory); others (pickled .bin files read with weights_only, tied names stored differently) and TIES
with global trimming are loaded whole.
"""

from __future__ import annotations

from pathlib import Path

from lab_sfa.merge.checkpoint_io import align, load_checkpoint, save_like
from lab_shared.errors import LabError

METHODS = ("task_arithmetic", "ties", "wise_ft")


def merge_checkpoints(
    method: str,
    base: str | Path,
    models: list[str | Path],
    out: str | Path,
    lam: float = 1.0,
    k: float = 0.2,
    alpha: float = 0.5,
    overwrite: bool = False,
    per_tensor: bool = False,
    stream: bool = True,
) -> Path:
    """Merge `models` into `base` with `method` and write the result like `base` at `out`.

    ``per_tensor``: TIES trims each tensor to its own top floor(k * n) (mergekit's rule) instead of the whole
    task vector's top k (the paper's). ``stream``: merge tensor by tensor when the inputs allow it.
    """
    from lab_sfa.merge import state_dicts

    if method not in METHODS:
        raise LabError(f"unknown merge method {method!r} (choose from {', '.join(METHODS)})")
    if not models:
        raise LabError("--models: give at least one fine-tuned checkpoint")
    if method == "wise_ft" and len(models) != 1:
        raise LabError(
            f"wise_ft interpolates two models: give --base THETA0 and one --models THETA1, got {len(models)}"
        )
    if method == "wise_ft" and not 0.0 <= alpha <= 1.0:
        raise LabError(f"--alpha must be in [0, 1], got {alpha}")
    if method == "ties" and not 0.0 < k <= 1.0:
        raise LabError(f"--k must be in (0, 1], got {k}")
    out = Path(out)
    if out.exists() and not overwrite:  # fail before the (possibly long) load
        raise LabError(f"output {out} already exists (pass --overwrite to replace it)")
    info = {
        "method": method,
        "base": str(base),
        "models": [str(m) for m in models],
        **({"lambda": lam} if method != "wise_ft" else {}),
        **({"k": k, "trim": "per_tensor" if per_tensor else "global"} if method == "ties" else {}),
        **({"alpha": alpha} if method == "wise_ft" else {}),
    }
    if stream and (method != "ties" or per_tensor) and _same_tensors(base, models):
        return _stream(method, Path(base), models, out, info, lam, k, alpha, overwrite)
    base_ck = load_checkpoint(base)
    model_cks = [load_checkpoint(m) for m in models]
    keys = align(base_ck, model_cks)
    base_state = {k: base_ck.state[k] for k in keys}
    states = [{k: m.state[k] for k in keys} for m in model_cks]
    if method == "task_arithmetic":
        merged = state_dicts.task_arithmetic(base_state, states, lam)
    elif method == "ties":
        merged = state_dicts.ties(base_state, states, k=k, lam=lam, per_tensor=per_tensor)
    else:
        merged = state_dicts.wise_ft(base_state, states[0], alpha)
    return save_like(merged, base_ck, out, info, overwrite=overwrite)


def _same_tensors(base, models) -> bool:
    """All inputs are safetensors with the same tensor names (so no tied name needs filling)."""
    from lab_sfa.merge.streaming import LazySafetensors, is_streamable

    if not is_streamable([base, *models]):
        return False
    keys = set(LazySafetensors(base).keys())
    return all(set(LazySafetensors(m).keys()) == keys for m in models)


def _stream(method, base: Path, models, out, info, lam, k, alpha, overwrite) -> Path:
    """Streaming merge into a .safetensors file, or a folder like the base's (side files copied)."""

    from lab_sfa.merge.checkpoint_io import write_merge_folder
    from lab_sfa.merge.streaming import stream_merge

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".safetensors":
        if out.is_dir():
            raise LabError(f"output {out} is a folder, not a .safetensors file")
        stream_merge(method, base, models, out, info, lam=lam, k=k, alpha=alpha)
        return out
    return write_merge_folder(
        out,
        base if base.is_dir() else None,
        lambda path: stream_merge(method, base, models, path, info, lam=lam, k=k, alpha=alpha),
        info,
    )
