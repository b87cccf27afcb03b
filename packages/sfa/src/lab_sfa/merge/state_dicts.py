"""Model merging over state dicts: task vectors, Task Arithmetic, TIES and WiSE-FT.

All functions are pure: they take ``dict[str, Tensor]`` state dicts and return a new one. Float math runs in
fp32 and results are cast back to each tensor's dtype. Non-float tensors (int buffers such as BatchNorm's
``num_batches_tracked``) are copied from the base / theta0 state dict. Keys and shapes must match exactly;
a mismatch raises ``LabError`` naming the tensor, since a silently partial merge is worse than none.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lab_shared.errors import LabError

StateDict = dict[str, Tensor]


def _check_compatible(base: StateDict, other: StateDict, what: str) -> None:
    """Raise LabError unless ``other`` has exactly the keys and shapes of ``base``."""
    missing = [k for k in base if k not in other]
    extra = [k for k in other if k not in base]
    if missing:
        raise LabError(f"{what}: tensor '{missing[0]}' is missing ({len(missing)} missing in all)")
    if extra:
        raise LabError(f"{what}: unexpected tensor '{extra[0]}' ({len(extra)} extra in all)")
    for k, v in base.items():
        if tuple(other[k].shape) != tuple(v.shape):
            raise LabError(
                f"{what}: tensor '{k}' has shape {tuple(other[k].shape)}, expected {tuple(v.shape)}"
            )


def _is_float(t: Tensor) -> bool:
    return t.is_floating_point()


def task_vector(finetuned: StateDict, base: StateDict) -> StateDict:
    """tau = finetuned - base (fp32) for every float tensor; non-float tensors are left out."""
    _check_compatible(base, finetuned, "task_vector")
    return {k: finetuned[k].float() - v.float() for k, v in base.items() if _is_float(v)}


def _apply_delta(base: StateDict, delta: StateDict) -> StateDict:
    """base + delta for float tensors (cast back to the base dtype); non-float tensors copied from base."""
    out = {}
    for k, v in base.items():
        if _is_float(v):
            out[k] = (v.float() + delta[k]).to(v.dtype)
        else:
            out[k] = v.clone()
    return out


def task_arithmetic(base: StateDict, finetuned: Sequence[StateDict], lam: float) -> StateDict:
    """Task Arithmetic (Ilharco et al. 2023): theta = base + lam * sum_k (theta_k - base)."""
    if not finetuned:
        raise LabError("task_arithmetic: need at least one fine-tuned model")
    taus = [task_vector(ft, base) for ft in finetuned]
    delta = {k: lam * torch.stack([t[k] for t in taus]).sum(0) for k in taus[0]}
    return _apply_delta(base, delta)


def ties_delta(taus: Sequence[StateDict], k: float = 0.2, per_tensor: bool = False) -> StateDict:
    """The TIES merged task vector (before scaling) from task vectors ``taus``.

    1. Trim: keep the top-``k`` fraction of each task vector's entries by magnitude (over the whole vector, as
       in the reference code), zero the rest; ``per_tensor``: the top floor(k * n) of each tensor instead
       (mergekit's rule; ties at the threshold broken by ``topk``).
    2. Elect: per entry, the sign of the summed trimmed values (the sign carrying the most mass).
    3. Disjoint mean: average only the trimmed values whose sign agrees with the elected one.
    """
    if not 0.0 < k <= 1.0:
        raise LabError(f"ties: k (fraction kept) must be in (0, 1], got {k}")
    keys = list(taus[0])
    trimmed = []
    for tau in taus if not per_tensor else []:
        flat = torch.cat([tau[key].reshape(-1) for key in keys])
        n_keep = max(1, int(round(k * flat.numel())))
        # Threshold = the n_keep-th largest magnitude; ties at the threshold are kept.
        thresh = flat.abs().kthvalue(flat.numel() - n_keep + 1).values if n_keep < flat.numel() else None
        trimmed.append(
            {key: (tau[key] if thresh is None else tau[key] * (tau[key].abs() >= thresh)) for key in keys}
        )
    for tau in taus if per_tensor else []:
        trimmed.append({key: _top_per_tensor(tau[key], k) for key in keys})
    out = {}
    for key in keys:
        stacked = torch.stack([t[key] for t in trimmed])  # [n_tasks, ...]
        sign = torch.sign(stacked.sum(0))
        agree = (torch.sign(stacked) == sign.unsqueeze(0)) & (stacked != 0)
        count = agree.sum(0).clamp(min=1)
        out[key] = (stacked * agree).sum(0) / count
    return out


def _top_per_tensor(t: Tensor, k: float) -> Tensor:
    """``t`` with all but its floor(k * n) largest magnitudes zeroed."""
    n, keep = t.numel(), int(k * t.numel())
    if keep >= n:
        return t
    flat = t.reshape(-1)
    out = torch.zeros_like(flat)
    if keep > 0:
        idx = flat.abs().topk(keep).indices
        out[idx] = flat[idx]
    return out.reshape(t.shape)


def ties(
    base: StateDict,
    finetuned: Sequence[StateDict],
    k: float = 0.2,
    lam: float = 1.0,
    per_tensor: bool = False,
) -> StateDict:
    """TIES merging (Yadav et al. 2023): base + lam * disjoint_mean(elect(trim_k(tau_1..n)))."""
    if not finetuned:
        raise LabError("ties: need at least one fine-tuned model")
    taus = [task_vector(ft, base) for ft in finetuned]
    delta = {key: lam * v for key, v in ties_delta(taus, k, per_tensor).items()}
    return _apply_delta(base, delta)


def wise_ft(theta0: StateDict, theta1: StateDict, alpha: float) -> StateDict:
    """WiSE-FT (Wortsman et al. 2022): theta = (1 - alpha) theta0 + alpha theta1."""
    _check_compatible(theta0, theta1, "wise_ft")
    out = {}
    for k, v in theta0.items():
        if _is_float(v):
            out[k] = ((1.0 - alpha) * v.float() + alpha * theta1[k].float()).to(v.dtype)
        else:
            out[k] = v.clone()
    return out
