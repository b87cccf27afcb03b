"""`task_arithmetic`: fine-tune each task from theta_pre, merge theta_pre + lambda * sum_k tau_k after each task.

In the sequential setting every task is fine-tuned independently from the pretrained model (its task vector
tau_k = theta_k - theta_pre is then uncontaminated by the other tasks, which is what Task Arithmetic
assumes), and after task k the evaluated model is the merge of tau_1..tau_k. The cost: one stored
fine-tuned model per task.
"""

from __future__ import annotations

from torch import Tensor, nn

from lab_sfa.merge import state_dicts
from lab_sfa.methods.base import Method, Param, load_state, model_state


class TaskArithmetic(Method):
    """Independent fine-tunes from theta_pre, merged by Task Arithmetic after each task."""

    name = "task_arithmetic"
    summary = "independent fine-tunes from theta_pre, merged theta_pre + lam sum_k tau_k after each task"
    params = (
        Param("lam", float, 1.0, "scaling of the summed task vectors", "Ilharco et al. 2023 (task arithmetic)", lo=0.0),
    )  # fmt: skip
    independent_finetunes = True  # task k's fine-tune does not depend on lambda: the runner may cache it

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.finetuned: list[dict[str, Tensor]] = []

    def before_task(self, model: nn.Module, k: int) -> None:
        load_state(model, self.theta_pre)

    def merge(self) -> dict[str, Tensor]:
        return state_dicts.task_arithmetic(self.theta_pre, self.finetuned, self.cfg.lam)

    def after_task(self, model: nn.Module, k: int) -> None:
        self.finetuned.append(model_state(model))
        load_state(model, self.merge())

    def state_dict(self) -> dict:
        """The stored fine-tuned models, one per finished task (their task vectors against theta_pre)."""
        return {"finetuned": self.finetuned}

    def load_state_dict(self, state: dict) -> None:
        self.finetuned = [dict(sd) for sd in state["finetuned"]]

    def held_tensors(self) -> list[Tensor]:
        return [t for sd in self.finetuned for t in sd.values() if t.is_floating_point()]
