"""`l2`: penalty (lambda/2) ||theta - theta_o||^2 toward the previous task's final model.

One plain step plus this penalty's gradient equals a step followed by averaging with beta = lr * lambda,
so SFA every p*T steps matches L2 with lambda_eff ~= -ln(1 - beta) / (lr * p * T) (see docs/sfa.md).
"""

from __future__ import annotations

from torch import Tensor, nn

from lab_sfa.averaging import snapshot, trainable_params
from lab_sfa.methods.base import Method, Param
from lab_sfa.methods.penalty import AnchorPenalty


def lambda_eff(beta: float, p: float, lr: float, steps: int) -> float:
    """The L2 strength matching SFA(beta, p) over T=steps at learning rate lr."""
    import math

    if beta >= 1.0:
        return float("inf")
    return -math.log(1.0 - beta) / (lr * max(1, round(p * steps)))


class L2(Method):
    """Quadratic pull toward theta_o (the model at the start of each task)."""

    name = "l2"
    summary = "quadratic penalty (lam/2) ||theta - theta_o||^2 toward the previous task's final model"
    params = (
        Param("lam", float, 1.0, "penalty strength (SFA(beta, p) matches lam_eff = -ln(1-beta)/(lr p T))",
              "docs/sfa.md (L2 link, our derivation)", lo=0.0),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.anchor: list[Tensor] = []

    def callbacks(self, model: nn.Module, k: int) -> list:
        self.anchor = snapshot(trainable_params(model))
        return [AnchorPenalty([(self.anchor, None, float(self.cfg.lam))])]

    def held_tensors(self) -> list[Tensor]:
        return list(self.anchor)
