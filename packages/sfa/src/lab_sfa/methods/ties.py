"""`ties`: like task_arithmetic, but merged with TIES (trim top-k, elect sign by mass, disjoint mean, lambda)."""

from __future__ import annotations

from torch import Tensor

from lab_sfa.merge import state_dicts
from lab_sfa.methods.task_arithmetic import TaskArithmetic


class Ties(TaskArithmetic):
    """Independent fine-tunes from theta_pre, merged by TIES after each task."""

    name = "ties"

    def merge(self) -> dict[str, Tensor]:
        return state_dicts.ties(self.theta_pre, self.finetuned, k=self.cfg.k, lam=self.cfg.lam)
