"""`multitask`: joint training on every task seen so far, the ceiling (it stores all past data)."""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.data import ConcatDataset, default_collate

from lab_sfa.methods.base import Method


class Multitask(Method):
    """At stage k, train on the union of tasks 1..k (same step budget per stage, continuing the model)."""

    name = "multitask"
    summary = "joint training on every task seen so far, the ceiling (stores all past data)"
    _k = 0

    def before_task(self, model: nn.Module, k: int) -> None:
        self._k = k

    def task_data(self, k: int) -> tuple[Any, Any]:
        if k == 0:
            return self.seq.tasks[0].train, None
        data = ConcatDataset([t.train for t in self.seq.tasks[: k + 1]])
        return data, self.seq.collate_fn or default_collate

    def stored_examples(self) -> int:
        """Every past task's training set is kept."""
        return sum(len(t.train) for t in self.seq.tasks[: self._k])
