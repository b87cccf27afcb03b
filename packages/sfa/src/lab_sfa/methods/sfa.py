"""`sfa`: Sequential Fine-tuning with Averaging (Kleiman et al. 2025).

Every p*T optimizer steps of a task, and at its end: theta <- (1 - beta) theta + beta theta_o, where theta_o
is the model at the END of the previous task (the pretrained model for task 1) — one extra parameter copy,
no per-step work. beta = 0 is plain sequential fine-tuning; p = 1 is WiSE-FT at the task end with
alpha = 1 - beta.

Design choices (options):
- ``reset_optimizer``: clear Adam's moments after each averaging (the paper leaves it open; default off).
- ``buffers``: float buffers such as BatchNorm running statistics are averaged like the weights
  (``average``, default: the statistics then match the averaged weights' scale) or left as the current
  task's running estimates (``keep``). Integer buffers are never touched.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from lab_sfa.averaging import average_into, float_buffers, snapshot, trainable_params
from lab_sfa.methods.base import Method, Param
from lab_shared.callbacks import Callback
from lab_shared.errors import LabError


class SFACallback(Callback):
    """Trainer callback that averages the model toward an anchor every ``every`` steps and at the end.

    Works with any model on the core trainer: the anchor is the model at ``on_train_start`` unless given.
    ``listeners`` are called as ``fn(trainer)`` right after each averaging (e.g. to record accuracy curves).
    The anchor is part of the checkpoint state (saved as safetensors by the trainer), so a run resumed from
    any checkpoint averages toward the same theta_o and ends bit-identical to an uninterrupted one.
    """

    def __init__(
        self,
        beta: float,
        every: int,
        reset_optimizer: bool = False,
        buffers: str = "average",
        anchor: list[Tensor] | None = None,
        listeners: list[Callable] | None = None,
    ):
        self.beta, self.every = beta, max(1, int(every))
        self.reset_optimizer, self.buffers = reset_optimizer, buffers
        self.anchor = anchor
        self.listeners = list(listeners or [])
        self.n_averages = 0

    def _tensors(self, model: nn.Module) -> list[Tensor]:
        return trainable_params(model) + (float_buffers(model) if self.buffers == "average" else [])

    def on_train_start(self, trainer) -> None:
        tensors = self._tensors(trainer.model)
        if self.anchor is None:
            self.anchor = snapshot(tensors)
        elif len(self.anchor) != len(tensors):
            raise LabError(f"SFA anchor has {len(self.anchor)} tensors, the model {len(tensors)}")
        else:  # e.g. restored from a checkpoint on the CPU: keep it beside the weights
            self.anchor = [a.to(t.device, t.dtype) for a, t in zip(self.anchor, tensors)]

    def on_after_optimizer_step(self, trainer) -> None:
        if trainer.step % self.every and trainer.step != trainer.config.max_steps:
            return
        average_into(self._tensors(trainer.model), self.anchor, self.beta)
        if self.reset_optimizer:
            trainer.reset_optimizer_state()
        self.n_averages += 1
        for fn in self.listeners:
            fn(trainer)

    def state_dict(self) -> dict:
        state: dict = {"n_averages": self.n_averages}
        if self.anchor is not None:
            state["anchor"] = list(self.anchor)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.n_averages = int(state.get("n_averages", 0))
        if state.get("anchor") is not None:
            self.anchor = [a.detach().clone() for a in state["anchor"]]


def averaging_interval(p: float, steps: int) -> int:
    """Steps between averagings: round(p * T), at least 1."""
    return max(1, int(round(p * steps)))


class SFA(Method):
    """Sequential fine-tuning, averaging toward the previous task's final model every p*T steps."""

    name = "sfa"
    summary = (
        "Sequential Fine-tuning with Averaging (Kleiman et al. 2025): theta <- (1-beta) theta + beta theta_o"
    )
    params = (
        Param("beta", float, 0.5, "weight of theta_o (the previous task's final model) in each average",
              "Kleiman et al. 2025", lo=0.0, hi=1.0),
        Param("p", float, 0.25, "averaging interval as a fraction of a task's steps (1 = only at the end)",
              "Kleiman et al. 2025", lo=0.0, hi=1.0, lo_open=True),
        Param("reset_optimizer", bool, False, "clear the optimizer's moments after each averaging (not in the paper)"),
        Param("buffers", str, "average", "float buffers (BatchNorm statistics): averaged like the weights, or kept",
              choices=("average", "keep")),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.callback: SFACallback | None = None
        self.steps = 0  # set by the runner: T, the task's optimizer steps
        self.listeners: list[Callable] = []

    def callbacks(self, model: nn.Module, k: int) -> list:
        c = self.cfg
        self.callback = SFACallback(
            c.beta,
            averaging_interval(c.p, self.steps),
            c.reset_optimizer,
            c.buffers,
            listeners=self.listeners,
        )
        return [self.callback]

    def held_tensors(self) -> list[Tensor]:
        return list(self.callback.anchor or []) if self.callback else []
