"""The method interface: how a continual-learning method plugs into the task loop (names and parameters:
``registry.py``; the `[method]` config: ``config.py``).

The task loop (``lab_sfa.task_loop``) calls, for each task k of a sequence:

    method.before_task(model, k)           # e.g. merges restart from theta_pre
    data, collate = method.task_data(k)     # e.g. multitask: every task seen so far
    Trainer(..., callbacks=method.callbacks(model, k))  .fit()   # penalties / averaging / replay
    method.after_task(model, k)            # e.g. Fisher, merging; the model is then evaluated for R[k]

After each task the loop saves ``method.state_dict()`` (what the method carries to the next task: replay
buffer, EWC anchors and Fisher, stored fine-tunes) so ``lab sfa run --resume`` continues exactly.
Methods only use the ``TaskSequence`` interface (datasets, ``loss_fn``, ``collate_fn``, state dicts), never
the modality. ``held_tensors()`` / ``stored_examples()`` expose what a method keeps, so the cost table is
measured from the objects themselves rather than asserted.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lab_sfa.methods.registry import Param, method_class, method_names, register_method
from lab_sfa.tasktypes import TaskSequence

__all__ = ["Method", "Param", "load_state", "make_method", "method_names", "model_state", "register_method"]


class Method:
    """Base class: plain sequential fine-tuning (no protection)."""

    name = "seq"
    summary: ClassVar[str] = "plain sequential fine-tuning"
    params: ClassVar[tuple[Param, ...]] = ()  # what `method.<name>` may set (see registry.Param)

    def __init__(self, cfg: Any, seq: TaskSequence, theta_pre: dict[str, Tensor]):
        from lab_sfa.methods.config import resolve_method

        self.cfg = resolve_method(cfg)  # the method's defaults filled in; a foreign parameter is refused
        self.seq = seq
        self.theta_pre = theta_pre  # the pretrained (or initial) weights, held by the runner for everyone

    def before_task(self, model: nn.Module, k: int) -> None: ...

    def task_data(self, k: int) -> tuple[Any, Any]:
        """The dataset to train task k on and its collate function (None: the dataset's own)."""
        return self.seq.tasks[k].train, None

    def callbacks(self, model: nn.Module, k: int) -> list:
        return []

    def after_task(self, model: nn.Module, k: int) -> None: ...

    def held_tensors(self) -> list[Tensor]:
        """Tensors the method keeps beyond the model and optimizer (counted in the cost table)."""
        return []

    def stored_examples(self) -> int:
        return 0

    def state_dict(self) -> dict:
        """What the method carries from one task to the next (tensors allowed), saved after every task so a
        resumed run continues exactly; the base method carries nothing."""
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def make_method(cfg: Any, seq: TaskSequence, theta_pre: dict[str, Tensor]) -> Method:
    """Instantiate the registered method ``cfg.name`` with its parameters resolved (defaults filled)."""
    return method_class(cfg.name)(cfg, seq, theta_pre)


def __getattr__(name: str) -> Any:  # `from lab_sfa.methods.base import MethodConfig` keeps working
    if name == "MethodConfig":
        from lab_sfa.methods.config import MethodConfig

        return MethodConfig
    raise AttributeError(name)


def model_state(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of the model's state dict (parameters and buffers)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def load_state(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy ``state`` into the model in place (keeps parameter identity, so optimizers stay valid)."""
    model.load_state_dict(state, strict=True)
