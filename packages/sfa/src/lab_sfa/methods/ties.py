"""`ties`: like task_arithmetic, but merged with TIES (trim top-k, elect sign by mass, disjoint mean, lambda)."""

from __future__ import annotations

from torch import Tensor

from lab_sfa.merge import state_dicts
from lab_sfa.methods.base import Param
from lab_sfa.methods.task_arithmetic import TaskArithmetic


class Ties(TaskArithmetic):
    """Independent fine-tunes from theta_pre, merged by TIES after each task."""

    name = "ties"
    summary = "independent fine-tunes from theta_pre, merged by TIES (trim, elect sign, disjoint mean)"
    params = (
        Param("lam", float, 1.0, "scaling of the merged task vector", "Yadav et al. 2023 (TIES-merging)", lo=0.0),
        Param("k", float, 0.2, "fraction of each task vector kept (largest magnitudes)", "Yadav et al. 2023 (TIES-merging)",
              lo=0.0, hi=1.0, lo_open=True),
    )  # fmt: skip

    def merge(self) -> dict[str, Tensor]:
        return state_dicts.ties(self.theta_pre, self.finetuned, k=self.cfg.k, lam=self.cfg.lam)
