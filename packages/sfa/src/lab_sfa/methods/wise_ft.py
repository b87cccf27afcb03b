"""`wise_ft`: sequential fine-tuning, then theta = (1 - alpha) theta_o + alpha theta_k at each task's end.

theta_o is the model at the start of the task (the previous task's merged result; the pretrained model for
task 1), so this is SFA with p = 1 and beta = 1 - alpha, applied as a merge after training.
"""

from __future__ import annotations

from torch import Tensor, nn

from lab_sfa.averaging import average_into
from lab_sfa.methods.base import Method, Param, model_state


class WiseFT(Method):
    """Weight-space ensemble of the task's start and end points."""

    name = "wise_ft"
    summary = "after each task, theta = (1 - alpha) theta_o + alpha theta_k (weight-space ensemble)"
    params = (
        Param("alpha", float, 0.5, "weight of the fine-tuned model", "Wortsman et al. 2022 (WiSE-FT)", lo=0.0, hi=1.0),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.theta0: dict[str, Tensor] = {}

    def before_task(self, model: nn.Module, k: int) -> None:
        self.theta0 = model_state(model)

    def after_task(self, model: nn.Module, k: int) -> None:
        # In place, no extra copy: theta <- (1 - alpha) theta_o + alpha theta = lerp toward theta_o by 1 - alpha.
        # Equals lab_sfa.merge.state_dicts.wise_ft(theta_o, theta, alpha) (integer buffers are left as trained).
        state = model.state_dict()
        keys = [k for k, v in state.items() if v.is_floating_point()]
        average_into([state[k] for k in keys], [self.theta0[k] for k in keys], 1.0 - self.cfg.alpha)

    def held_tensors(self) -> list[Tensor]:
        return [t for t in self.theta0.values() if t.is_floating_point()]
