"""`wise_ft`: sequential fine-tuning, then theta = (1 - alpha) theta_o + alpha theta_k at each task's end.

theta_o is the model at the start of the task (the previous task's merged result; the pretrained model for
task 1), so this is SFA with p = 1 and beta = 1 - alpha, applied as a merge after training.
"""

from __future__ import annotations

from torch import Tensor, nn

from lab_sfa import merging
from lab_sfa.methods.base import Method, load_state, model_state


class WiseFT(Method):
    """Weight-space ensemble of the task's start and end points."""

    name = "wise_ft"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.theta0: dict[str, Tensor] = {}

    def before_task(self, model: nn.Module, k: int) -> None:
        self.theta0 = model_state(model)

    def after_task(self, model: nn.Module, k: int) -> None:
        load_state(model, merging.wise_ft(self.theta0, model_state(model), self.cfg.alpha))

    def held_tensors(self) -> list[Tensor]:
        return [t for t in self.theta0.values() if t.is_floating_point()]
