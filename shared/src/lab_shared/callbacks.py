"""The trainer's callback interface: override the hooks you need (SFA, L2 and EWC are callbacks)."""

from __future__ import annotations

from typing import Any


class Callback:
    """Hooks the Trainer calls, in this order per step:
    on_step_start -> (forward/backward per micro-batch) -> clip -> on_before_optimizer_step -> optimizer.step
    -> on_after_optimizer_step (trainer.step already counts this step) -> on_log / on_evaluate when due.
    `state_dict` is JSON-able state (tensors allowed: they go to state.safetensors) saved in every
    checkpoint and restored on resume.
    """

    def on_train_start(self, trainer: Any) -> None: ...
    def on_step_start(self, trainer: Any) -> None: ...
    def on_before_optimizer_step(self, trainer: Any) -> None: ...
    def on_after_optimizer_step(self, trainer: Any) -> None: ...
    def on_log(self, trainer: Any, metrics: dict) -> None: ...
    def on_evaluate(self, trainer: Any, metrics: dict) -> None: ...
    def on_train_end(self, trainer: Any) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def __call__(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def state_dict(self) -> list[dict]:
        return [cb.state_dict() for cb in self.callbacks]

    def load_state_dict(self, states: list[dict]) -> None:
        for cb, st in zip(self.callbacks, states or []):
            cb.load_state_dict(st)
