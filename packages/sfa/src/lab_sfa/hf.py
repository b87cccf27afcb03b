"""SFA, L2 and EWC for users of `transformers.Trainer`, as plain `TrainerCallback`s.

Sequential fine-tuning with SFA takes two lines: one Trainer per task, each with the callback::

    from lab_sfa.hf import SFACallback

    for task_data in tasks:                       # Math, then Law, then Code ...
        trainer = Trainer(model=model, args=args, train_dataset=task_data,
                          callbacks=[SFACallback(beta=0.5, p=0.25)])
        trainer.train()

When a Trainer starts, the callback snapshots the weights as theta_o (the checkpoint at the end of the
previous task, or the pretrained model for the first). Every ``round(p * T)`` optimizer steps (T =
``state.max_steps``) and at the end of training it sets theta <- (1 - beta) theta + beta theta_o, the paper's
averaging (arXiv 2501.05559). It keeps one extra parameter copy and adds no work to ordinary steps.

`L2Callback` and `EWCCallback` add the gradient of (lam/2)||theta - theta_o||^2, resp. of
lam * sum_i F_i (theta_i - theta_o,i)^2, in ``on_pre_optimizer_step`` (after gradient clipping, before the
optimizer step), so they work with gradient accumulation and any optimizer without subclassing Trainer.
With fp16 + loss scaling and no clipping the gradients are still scaled at that point: use bf16/fp32 there.

Exact state: every checkpoint folder gets the callback's tensors as safetensors (SFA: theta_o in
``sfa_anchor.safetensors``; L2: ``l2_anchor.safetensors``; EWC: anchor and Fisher in ``ewc_state.safetensors``).
A resumed run (``trainer.train(resume_from_checkpoint=...)``) reloads them from the checkpoint that
``resume_from_checkpoint`` names (any folder, not only this run's ``output_dir``), so it ends bit-identical to
an uninterrupted run; resuming from a checkpoint without the file is an error, never a silent re-snapshot.
SFA averages at the last step *before* the Trainer's final save, so ``checkpoint-<max_steps>`` is the final
(averaged) model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from transformers import TrainerCallback

from lab_sfa.averaging import average_into, snapshot, trainable_params

ANCHOR_FILE = "sfa_anchor.safetensors"
L2_FILE = "l2_anchor.safetensors"
EWC_FILE = "ewc_state.safetensors"


def _named_trainable(model: nn.Module) -> list[tuple[str, Tensor]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def resumed_checkpoint(args, state, explicit: str | None = None) -> str | None:
    """The checkpoint folder a Trainer is resuming from (None for a fresh run).

    In order: ``explicit``; the ``resume_from_checkpoint`` the running ``Trainer.train`` call resolved (read
    from its training-loop frame, since transformers does not pass it to callbacks); the script-level
    ``args.resume_from_checkpoint``; ``<output_dir>/checkpoint-<global_step>``.
    """
    if state.global_step == 0:
        return None
    if explicit:
        return str(explicit)
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_inner_training_loop" and "resume_from_checkpoint" in frame.f_locals:
            found = frame.f_locals["resume_from_checkpoint"]
            if isinstance(found, (str, os.PathLike)):
                return str(found)
            break
        frame = frame.f_back
    if getattr(args, "resume_from_checkpoint", None):
        return str(args.resume_from_checkpoint)
    return os.path.join(args.output_dir, f"checkpoint-{state.global_step}")


def _load_named(folder: str | None, filename: str, model: nn.Module, prefix: str = "") -> list[Tensor]:
    """Tensors named like the model's trainable parameters from ``folder/filename`` (ValueError if missing)."""
    from safetensors.torch import load_file

    path = os.path.join(folder or "", filename)
    if not os.path.isfile(path):
        raise ValueError(
            f"resuming from {folder}, which has no {filename}: the callback's state (anchor) cannot be "
            "restored; resume from a checkpoint written with this callback"
        )
    saved = load_file(path)
    return [saved[prefix + n].to(p.device, p.dtype) for n, p in _named_trainable(model)]


def _save_named(args, state, model: nn.Module, filename: str, groups: dict[str, list[Tensor]]) -> None:
    """Write ``groups`` (prefix -> tensors in trainable-parameter order) into this step's checkpoint folder."""
    if not state.is_world_process_zero:
        return
    from safetensors.torch import save_file

    folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
    if not os.path.isdir(folder):
        return
    names = [n for n, _ in _named_trainable(model)]
    tensors = {
        prefix + n: t.detach().contiguous().cpu() for prefix, ts in groups.items() for n, t in zip(names, ts)
    }
    tmp = os.path.join(folder, f".{filename}.tmp")
    save_file(tensors, tmp)
    os.replace(tmp, os.path.join(folder, filename))


class SFACallback(TrainerCallback):
    """Sequential Fine-tuning with Averaging for `transformers.Trainer`.

    Args:
        beta: weight of the old checkpoint theta_o in each average, in [0, 1].
        p: averaging interval as a fraction of the run's optimizer steps, in (0, 1]; p = 1 averages once at
            the end (WiSE-FT with alpha = 1 - beta).
        every: averaging interval in steps (overrides p).
        anchor: theta_o as a list of tensors in `model.parameters()` order (trainable only); default: the
            weights when training starts.
        reset_optimizer: clear the optimizer's moment estimates after each averaging.
        resume_from: the checkpoint folder to reload theta_o from when resuming (default: the one the
            Trainer resumes from, see `resumed_checkpoint`).
    """

    def __init__(
        self,
        beta: float = 0.5,
        p: float = 0.25,
        every: int | None = None,
        anchor: Iterable[Tensor] | None = None,
        reset_optimizer: bool = False,
        resume_from: str | None = None,
    ):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if not 0.0 < p <= 1.0:
            raise ValueError(f"p must be in (0, 1], got {p}")
        if every is not None and every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.beta, self.p, self.every = beta, p, every
        self.reset_optimizer = reset_optimizer
        self.anchor: list[Tensor] | None = list(anchor) if anchor is not None else None
        self._given_anchor = anchor is not None
        self.resume_from = resume_from
        self.interval = 0
        self.events: list[int] = []  # global steps at which averaging happened
        self._last = -1

    def _average(self, model: nn.Module, step: int, optimizer=None) -> None:
        average_into(trainable_params(model), self.anchor, self.beta)
        if self.reset_optimizer and optimizer is not None:
            optimizer.state.clear()
        self.events.append(step)
        self._last = step

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.events, self._last = [], -1
        self.interval = self.every or max(1, round(self.p * state.max_steps))
        if state.global_step > 0:  # resumed: theta_o is the one saved in that checkpoint
            self.anchor = _load_named(resumed_checkpoint(args, state, self.resume_from), ANCHOR_FILE, model)
            done = state.global_step % self.interval == 0 or state.global_step >= state.max_steps
            self._last = state.global_step if done else -1
        elif not self._given_anchor:
            self.anchor = snapshot(trainable_params(model))
        elif len(self.anchor) != len(trainable_params(model)):
            raise ValueError(
                f"anchor has {len(self.anchor)} tensors, the model {len(trainable_params(model))}"
            )

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        # The last step averages here, before the Trainer saves that step's checkpoint.
        if state.global_step % self.interval == 0 or state.global_step >= state.max_steps:
            self._average(model, state.global_step, optimizer)

    def on_train_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self._last != state.global_step:  # the task always ends with an average
            self._average(model, state.global_step, optimizer)

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.anchor is not None:
            _save_named(args, state, model, ANCHOR_FILE, {"": self.anchor})


class L2Callback(TrainerCallback):
    """L2 toward theta_o (the weights at train start unless given): grad += lam * (theta - theta_o)."""

    state_file = L2_FILE

    def __init__(
        self, lam: float = 1.0, anchor: Iterable[Tensor] | None = None, resume_from: str | None = None
    ):
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.lam = lam
        self.anchor = list(anchor) if anchor is not None else None
        self.resume_from = resume_from

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step > 0:  # resumed: the anchor (and Fisher) saved in that checkpoint
            self._restore(resumed_checkpoint(args, state, self.resume_from), model)
        elif self.anchor is None:
            self.anchor = snapshot(trainable_params(model))

    def _restore(self, folder: str | None, model: nn.Module) -> None:
        self.anchor = _load_named(folder, self.state_file, model, "anchor.")

    def _state(self) -> dict[str, list[Tensor]]:
        return {"anchor.": self.anchor}

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.anchor is not None:
            _save_named(args, state, model, self.state_file, self._state())

    def _weights(self, i: int) -> float | Tensor:
        return self.lam

    @torch.no_grad()
    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        for i, (p, a) in enumerate(zip(trainable_params(model), self.anchor)):
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.add_(self._weights(i) * (p.detach() - a))


class EWCCallback(L2Callback):
    """EWC: grad += 2 * lam * F * (theta - theta_o) with F a diagonal Fisher (see `estimate_fisher`).

    Pitfall (paper note): with SGD, lam * F * lr > 1 makes the penalty overshoot and diverge; `max_weight`
    caps 2 * lam * F per parameter (0 = no cap).
    """

    state_file = EWC_FILE

    def __init__(
        self, fisher: list[Tensor], lam: float = 1.0, anchor=None, max_weight: float = 0.0, resume_from=None
    ):
        super().__init__(lam, anchor, resume_from)
        self.fisher = fisher
        self.max_weight = max_weight

    def _restore(self, folder: str | None, model: nn.Module) -> None:
        super()._restore(folder, model)
        self.fisher = _load_named(folder, self.state_file, model, "fisher.")

    def _state(self) -> dict[str, list[Tensor]]:
        return {"anchor.": self.anchor, "fisher.": self.fisher}

    def _weights(self, i: int) -> Tensor:
        w = 2.0 * self.lam * self.fisher[i]
        return w.clamp(max=self.max_weight) if self.max_weight > 0 else w


def estimate_fisher(model: nn.Module, batches: Iterable[dict], max_batches: int = 50) -> list[Tensor]:
    """Diagonal empirical Fisher: mean of squared gradients of the model's loss over `batches`.

    `batches` are dicts the model takes as keyword arguments and that yield `.loss` (e.g. with `labels`);
    use batch size 1 for the per-example Fisher. Returned in `trainable_params(model)` order.
    """
    params = trainable_params(model)
    fisher = [torch.zeros_like(p) for p in params]
    device = params[0].device
    was = model.training
    model.eval()
    n = 0
    for batch in batches:
        if n >= max_batches:
            break
        model.zero_grad(set_to_none=True)
        loss = model(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}).loss
        loss.backward()
        for f, p in zip(fisher, params):
            if p.grad is not None:
                f.add_(p.grad.detach() ** 2)
        n += 1
    model.zero_grad(set_to_none=True)
    model.train(was)
    if n == 0:
        raise ValueError("estimate_fisher: no batches")
    return [f / n for f in fisher]
