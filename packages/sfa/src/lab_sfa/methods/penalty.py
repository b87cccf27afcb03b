"""A quadratic pull toward an anchor, added to the gradients: the shared core of `l2` and `ewc`.

penalty = sum_a sum_i (lam_a F_a,i / 2) (theta_i - theta_a,i)^2 over anchors a, with F = 1 (L2) or the
Fisher diagonal (EWC). Its gradient is added in ``on_before_optimizer_step`` (after clipping, so the penalty
is never clipped away), in place, without any parameter-sized temporary. Against the known divergence of
explicit penalties (lam * F * lr > 1 overshoots the anchor), each weight lam * F is capped at 1 / lr; the
fraction of capped entries is logged as ``penalty_capped_frac``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lab_sfa.averaging import trainable_params
from lab_shared.callbacks import Callback

Anchor = tuple[list[Tensor], list[Tensor] | None, float]  # (anchor tensors, F or None for L2, lam)


class AnchorPenalty(Callback):
    """Adds d/dtheta of sum (lam F / 2)(theta - anchor)^2 to every trainable parameter's gradient."""

    def __init__(self, anchors: list[Anchor], cap: bool = True):
        self.anchors = anchors
        self.cap = cap
        self.capped_fraction = 0.0
        self.last_penalty = 0.0
        self._capped: tuple[float, list, int] | None = None

    def _fishers(self, lr: float) -> tuple[list, int]:
        """Per-anchor F, clamped at 1 / (lam lr) where needed; recomputed only when the learning rate changes."""
        if self._capped is not None and self._capped[0] == lr:
            return self._capped[1], self._capped[2]
        out, capped = [], 0
        for _, fisher, lam in self.anchors:
            limit = 1.0 / (lam * lr) if (self.cap and lam > 0 and lr > 0) else float("inf")
            if fisher is None:
                capped += sum(p.numel() for p in self.anchors[0][0]) if lam * lr > 1.0 and self.cap else 0
                out.append(None)
                continue
            fs = []
            for f in fisher:
                n = int((f > limit).sum()) if limit != float("inf") else 0
                capped += n
                fs.append(f.clamp(max=limit) if n else f)  # a clamped copy only where the cap bites
            out.append(fs)
        self._capped = (lr, out, capped)
        return out, capped

    def on_train_start(self, trainer) -> None:
        params = trainable_params(trainer.model)
        if params and any(t.device != params[0].device for a, f, _ in self.anchors for t in a + (f or [])):
            self.anchors = [
                (
                    [t.to(params[0].device) for t in a],
                    None if f is None else [t.to(params[0].device) for t in f],
                    lam,
                )
                for a, f, lam in self.anchors
            ]
            self._capped = None

    @torch.no_grad()
    def on_before_optimizer_step(self, trainer) -> None:
        params = trainable_params(trainer.model)
        lr = trainer.lr()
        fishers, capped = self._fishers(lr)
        log_now = (trainer.step + 1) % trainer.config.log_every == 0
        penalty = 0.0
        for (anchor, _, lam), fisher in zip(self.anchors, fishers):
            if fisher is None and self.cap and lr > 0:
                lam = min(lam, 1.0 / lr)
            for i, (p, a) in enumerate(zip(params, anchor)):
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                if fisher is None:  # grad += lam (p - a)
                    p.grad.add_(p, alpha=lam).add_(a, alpha=-lam)
                else:  # grad += lam F (p - a)
                    p.grad.addcmul_(fisher[i], p, value=lam).addcmul_(fisher[i], a, value=-lam)
                if log_now:
                    d2 = (p - a).pow(2)
                    penalty += 0.5 * lam * float((d2 if fisher is None else fisher[i] * d2).sum())
        total = sum(p.numel() for p in params) * max(1, len(self.anchors))
        self.capped_fraction = capped / total
        if log_now:
            self.last_penalty = penalty

    def on_log(self, trainer, metrics: dict) -> None:
        metrics[f"{trainer.log_prefix}penalty"] = self.last_penalty
        metrics[f"{trainer.log_prefix}penalty_capped_frac"] = self.capped_fraction

    def state_dict(self) -> dict:
        """Anchors, Fisher diagonals and strengths: a resumed run pulls toward exactly the same points."""
        return {
            "capped_fraction": self.capped_fraction,
            "anchors": [list(a) for a, _, _ in self.anchors],
            "fishers": [list(f) if f is not None else None for _, f, _ in self.anchors],
            "lams": [float(lam) for _, _, lam in self.anchors],
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self.capped_fraction = float(state.get("capped_fraction", 0.0))
        if "anchors" not in state:
            return
        loaded = []
        for i, (anchor, fisher, lam) in enumerate(zip(state["anchors"], state["fishers"], state["lams"])):
            # copy in place: the method holding these lists sees the restored values
            if i < len(self.anchors):
                old_a, old_f, _ = self.anchors[i]
                anchor = _copy_into(old_a, anchor)
                fisher = _copy_into(old_f, fisher) if fisher is not None and old_f is not None else fisher
            loaded.append((list(anchor), None if fisher is None else list(fisher), float(lam)))
        self.anchors = loaded
        self._capped = None


def _copy_into(dst: list[Tensor], src: list[Tensor]) -> list[Tensor]:
    """Copy ``src`` into ``dst`` in place when the shapes match (else return ``src``)."""
    if len(dst) != len(src) or any(d.shape != s.shape for d, s in zip(dst, src)):
        return list(src)
    for d, s in zip(dst, src):
        d.copy_(s)
    return dst
