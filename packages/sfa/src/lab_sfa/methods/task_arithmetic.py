"""`task_arithmetic`: fine-tune each task from theta_pre, merge theta_pre + lambda * sum_k tau_k after each task.

In the sequential setting every task is fine-tuned independently from the pretrained model (its task vector
tau_k = theta_k - theta_pre is then uncontaminated by the other tasks, which is what Task Arithmetic
assumes), and after task k the evaluated model is the merge of tau_1..tau_k. The cost: one stored
fine-tuned model per task.
"""

from __future__ import annotations

from torch import Tensor, nn

from lab_sfa.merge import state_dicts
from lab_sfa.methods.base import Method, load_state, model_state


class TaskArithmetic(Method):
    """Independent fine-tunes from theta_pre, merged by Task Arithmetic after each task."""

    name = "task_arithmetic"
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

    def held_tensors(self) -> list[Tensor]:
        return [t for sd in self.finetuned for t in sd.values() if t.is_floating_point()]
