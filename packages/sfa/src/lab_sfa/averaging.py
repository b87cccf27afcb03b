"""In-place parameter averaging, the core operation of SFA.

``average_into(params, anchor, beta)`` does theta <- (1 - beta) theta + beta theta_o with fused
``torch._foreach`` ops under ``no_grad``: one pass over the parameters, no extra copies beyond the anchor.
``snapshot`` takes the anchor copy (the one extra parameter copy SFA holds). Both work on any iterable of
tensors, so the core-trainer callback and the Hugging Face Trainer callback share them.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


@torch.no_grad()
def average_into(params: Iterable[Tensor], anchor: Iterable[Tensor], beta: float) -> None:
    """theta <- (1 - beta) * theta + beta * theta_o, in place, for matching lists of tensors."""
    params = [p.data if isinstance(p, nn.Parameter) else p for p in params]
    anchor = list(anchor)
    if len(params) != len(anchor):
        raise ValueError(f"average_into: {len(params)} tensors but {len(anchor)} anchor tensors")
    if not params or beta == 0.0:
        return
    if beta == 1.0:
        torch._foreach_copy_(params, anchor)
        return
    # lerp_(end, weight): p + weight * (end - p) = (1 - beta) p + beta end.
    torch._foreach_lerp_(params, [a.to(p.device, p.dtype) for p, a in zip(params, anchor)], beta)


@torch.no_grad()
def snapshot(tensors: Iterable[Tensor]) -> list[Tensor]:
    """Detached clones of ``tensors`` (same device and dtype): the anchor theta_o."""
    return [t.detach().clone() for t in tensors]


def float_buffers(module: nn.Module) -> list[Tensor]:
    """A module's float buffers (e.g. BatchNorm running mean/var), which averaging may include."""
    return [b for b in module.buffers() if b.is_floating_point()]


def trainable_params(module: nn.Module) -> list[Tensor]:
    """Parameters that require grad, in a fixed order (the tensors SFA averages)."""
    return [p for p in module.parameters() if p.requires_grad]
