"""The method interface and registry: how a continual-learning method plugs into the task loop.

The runner (``lab_sfa.continual``) calls, for each task k of a sequence:

    method.before_task(model, k)           # e.g. merges restart from theta_pre
    data, collate = method.task_data(k)     # e.g. multitask: every task seen so far
    Trainer(..., callbacks=method.callbacks(model, k))  .fit()   # penalties / averaging / replay
    method.after_task(model, k)            # e.g. Fisher, merging; the model is then evaluated for R[k]

Methods only use the ``TaskSequence`` interface (datasets, ``loss_fn``, ``collate_fn``, state dicts), never
the modality. ``held_tensors()`` / ``stored_examples()`` expose what a method keeps, so the cost table is
measured from the objects themselves rather than asserted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lab_sfa.sequences import TaskSequence
from lab_shared.errors import LabError


@dataclass
class MethodConfig:
    """Options of every method (each method reads the ones it needs)."""

    name: str = "sfa"  # seq | multitask | sfa | replay | l2 | ewc | task_arithmetic | ties | wise_ft
    beta: float = 0.5  # sfa: weight of theta_o in the average
    p: float = 0.25  # sfa: averaging interval as a fraction of the task's steps, in (0, 1]
    reset_optimizer: bool = False  # sfa: clear the optimizer's moments after each averaging
    buffers: str = "average"  # sfa: float buffers (BatchNorm stats): average | keep
    lam: float = 1.0  # l2 / ewc penalty strength; task_arithmetic / ties scaling
    alpha: float = 0.5  # wise_ft: weight of the fine-tuned model
    k: float = 0.2  # ties: fraction of each task vector kept
    ewc_mode: str = "online"  # ewc: online (one running Fisher) | separate (one penalty per task)
    ewc_gamma: float = 1.0  # ewc online: decay of the old Fisher
    fisher_samples: int = 200  # ewc: examples used to estimate the Fisher diagonal
    fisher_batch: int = 1  # ewc: examples per gradient (1 = per-example empirical Fisher)
    buffer_size: float = 0.05  # replay: < 1 = fraction of a task's training set, >= 1 = count (in total)
    buffer_mode: str = "total"  # replay: total (one reservoir) | per_task (buffer_size of each task)
    replay_batch: int = 0  # replay: examples replayed per step (0 = the training batch size)


class Method:
    """Base class: plain sequential fine-tuning (no protection)."""

    name = "seq"

    def __init__(self, cfg: MethodConfig, seq: TaskSequence, theta_pre: dict[str, Tensor]):
        self.cfg = cfg
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


_REGISTRY: dict[str, str] = {
    "seq": "lab_sfa.methods.seq:Sequential",
    "multitask": "lab_sfa.methods.multitask:Multitask",
    "sfa": "lab_sfa.methods.sfa:SFA",
    "replay": "lab_sfa.methods.replay:Replay",
    "l2": "lab_sfa.methods.l2:L2",
    "ewc": "lab_sfa.methods.ewc:EWC",
    "task_arithmetic": "lab_sfa.methods.task_arithmetic:TaskArithmetic",
    "ties": "lab_sfa.methods.ties:Ties",
    "wise_ft": "lab_sfa.methods.wise_ft:WiseFT",
}


def method_names() -> list[str]:
    return list(_REGISTRY)


def register_method(name: str, target: str | type[Method]) -> None:
    """Add a method: a Method subclass or a lazy "module:Class" string."""
    _REGISTRY[name] = target  # type: ignore[assignment]


def validate_method(cfg: MethodConfig) -> None:
    """Check a method's options; LabError with one clear line otherwise."""
    if cfg.name not in _REGISTRY:
        raise LabError(f"unknown method '{cfg.name}' (known: {', '.join(_REGISTRY)})")
    if not 0.0 <= cfg.beta <= 1.0:
        raise LabError(f"beta must be in [0, 1], got {cfg.beta}")
    if not 0.0 < cfg.p <= 1.0:
        raise LabError(f"p must be in (0, 1], got {cfg.p}")
    if cfg.buffers not in ("average", "keep"):
        raise LabError(f"buffers must be 'average' or 'keep', got '{cfg.buffers}'")
    if cfg.ewc_mode not in ("online", "separate"):
        raise LabError(f"ewc_mode must be 'online' or 'separate', got '{cfg.ewc_mode}'")
    if not 0.0 <= cfg.alpha <= 1.0:
        raise LabError(f"alpha must be in [0, 1], got {cfg.alpha}")
    if not 0.0 < cfg.k <= 1.0:
        raise LabError(f"k (TIES fraction kept) must be in (0, 1], got {cfg.k}")
    if cfg.lam < 0:
        raise LabError(f"lam must be >= 0, got {cfg.lam}")
    if cfg.buffer_size <= 0:
        raise LabError(f"buffer_size must be > 0, got {cfg.buffer_size}")
    if cfg.buffer_mode not in ("total", "per_task"):
        raise LabError(f"buffer_mode must be 'total' or 'per_task', got '{cfg.buffer_mode}'")
    if cfg.fisher_samples < 1 or cfg.fisher_batch < 1:
        raise LabError("fisher_samples and fisher_batch must be >= 1")


def make_method(cfg: MethodConfig, seq: TaskSequence, theta_pre: dict[str, Tensor]) -> Method:
    """Instantiate the registered method ``cfg.name``."""
    import importlib

    validate_method(cfg)
    target = _REGISTRY[cfg.name]
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        target = getattr(importlib.import_module(module), cls)
    return target(cfg, seq, theta_pre)


def model_state(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of the model's state dict (parameters and buffers)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def load_state(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy ``state`` into the model in place (keeps parameter identity, so optimizers stay valid)."""
    model.load_state_dict(state, strict=True)
