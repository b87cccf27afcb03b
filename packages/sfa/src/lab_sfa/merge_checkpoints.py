"""Merging saved checkpoints (files or model folders) with the state-dict merges of `lab_sfa.merging`."""

from __future__ import annotations

from pathlib import Path

from lab_sfa.checkpoints import align, load_checkpoint, save_like
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
) -> Path:
    """Load `base` and `models`, merge with `method`, and write the result like `base` at `out`."""
    from lab_sfa import merging

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
    base_ck = load_checkpoint(base)
    model_cks = [load_checkpoint(m) for m in models]
    keys = align(base_ck, model_cks)
    base_state = {k: base_ck.state[k] for k in keys}
    states = [{k: m.state[k] for k in keys} for m in model_cks]
    if method == "task_arithmetic":
        merged = merging.task_arithmetic(base_state, states, lam)
    elif method == "ties":
        merged = merging.ties(base_state, states, k=k, lam=lam)
    else:
        merged = merging.wise_ft(base_state, states[0], alpha)
    info = {
        "method": method,
        "base": str(base),
        "models": [str(m) for m in models],
        **({"lambda": lam} if method != "wise_ft" else {}),
        **({"k": k} if method == "ties" else {}),
        **({"alpha": alpha} if method == "wise_ft" else {}),
    }
    return save_like(merged, base_ck, out, info, overwrite=overwrite)
