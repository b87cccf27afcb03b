"""A quadratic pull toward an anchor, added to the gradients: the shared core of `l2` and `ewc`.

penalty = sum_a sum_i (w_a,i / 2) (theta_i - theta_a,i)^2 over anchors a, with w = lambda (L2) or
lambda * F (EWC). Its gradient is added in ``on_before_optimizer_step`` (after clipping, so the penalty is
never clipped away). Against the known divergence of explicit penalties, each weight is capped so that
w * lr <= 1 (a step never overshoots the anchor); the fraction of capped entries is reported.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lab_sfa.averaging import trainable_params
from lab_shared.callbacks import Callback


class AnchorPenalty(Callback):
    """Adds d/dtheta of sum (w/2)(theta - anchor)^2 to every trainable parameter's gradient."""

    def __init__(self, anchors: list[tuple[list[Tensor], list[Tensor] | float]], cap: bool = True):
        self.anchors = anchors  # [(anchor tensors, weights tensors or a scalar weight)]
        self.cap = cap
        self.capped_fraction = 0.0
        self.last_penalty = 0.0

    @torch.no_grad()
    def on_before_optimizer_step(self, trainer) -> None:
        params = trainable_params(trainer.model)
        lr = trainer.lr()
        limit = 1.0 / lr if (self.cap and lr > 0) else float("inf")
        penalty, capped, total = 0.0, 0, 0
        log_now = (trainer.step + 1) % trainer.config.log_every == 0
        for anchor, weights in self.anchors:
            for i, (p, a) in enumerate(zip(params, anchor)):
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                # grad += w * (p - a), in place: no temporary parameter-sized tensor on the hot path.
                if isinstance(weights, float | int):
                    w = min(float(weights), limit)
                    capped += p.numel() if float(weights) > limit else 0
                    p.grad.add_(p, alpha=w).add_(a, alpha=-w)
                    if log_now:
                        penalty += 0.5 * w * float((p - a).pow(2).sum())
                else:
                    w = weights[i]
                    if limit != float("inf") and float(w.max()) > limit:
                        capped += int((w > limit).sum())
                        w = w.clamp(max=limit)
                    p.grad.addcmul_(w, p).addcmul_(w, a, value=-1.0)
                    if log_now:
                        penalty += 0.5 * float((w * (p - a).pow(2)).sum())
                total += p.numel()
        self.capped_fraction = capped / max(total, 1)
        if log_now:
            self.last_penalty = penalty

    def on_log(self, trainer, metrics: dict) -> None:
        metrics[f"{trainer.log_prefix}penalty"] = self.last_penalty
        metrics[f"{trainer.log_prefix}penalty_capped_frac"] = self.capped_fraction

    def state_dict(self) -> dict:
        return {"capped_fraction": self.capped_fraction}
