"""`ewc`: Elastic Weight Consolidation (Kirkpatrick et al. 2017) and its online variant (Schwarz et al. 2018).

penalty = sum_a (lambda/2) sum_i F_a,i (theta_i - theta_a,i)^2 with F the diagonal empirical Fisher (mean
squared per-example gradients of the training loss) at the end of each previous task.
- ``separate``: one (F_a, theta_a) pair per previous task (memory grows with the number of tasks);
- ``online``: one running F <- gamma F + F_k and the latest anchor theta_k (two extra copies).
The pretraining task, when the sequence has one, is the first "previous task" (theta_o for task 1 is the
pretrained model, as for SFA and L2). Weights lambda*F are capped at 1/lr (see ``penalty.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import default_collate

from lab_sfa.averaging import snapshot, trainable_params
from lab_sfa.methods.base import Method, Param
from lab_sfa.methods.penalty import AnchorPenalty
from lab_shared.data import to_device


def fisher_diagonal(
    model: nn.Module, loss_fn, dataset, n_samples: int, batch: int = 1, collate_fn=None, seed: int = 0
) -> list[Tensor]:
    """Diagonal empirical Fisher: mean over batches of squared gradients of ``loss_fn`` (never negative)."""
    params = trainable_params(model)
    fisher = [torch.zeros_like(p) for p in params]
    collate = collate_fn or default_collate
    device = params[0].device
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[: min(n_samples, len(dataset))].tolist()
    was_training = model.training
    model.eval()  # BatchNorm uses running stats: per-example batches must not disturb them
    n = 0
    for i in range(0, len(idx), batch):
        items = [dataset[j] for j in idx[i : i + batch]]
        out = loss_fn(model, to_device(collate(items), device))
        loss = out["loss"] if isinstance(out, dict) else out
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for f, gr in zip(fisher, grads):
            if gr is not None:
                f.add_(gr.detach().pow(2))
        n += 1
    model.train(was_training)
    for f in fisher:
        f.div_(max(n, 1))
    return fisher


class EWC(Method):
    """Diagonal-Fisher penalty toward previous tasks' solutions (separate or online)."""

    name = "ewc"
    summary = "Elastic Weight Consolidation: Fisher-weighted pull toward previous tasks' solutions"
    params = (
        Param("lam", float, 1.0, "penalty strength (weights lam F capped at 1/lr)", "Kirkpatrick et al. 2017, eq. 3",
              lo=0.0),
        Param("ewc_mode", str, "online", "online: one running Fisher and the latest anchor; separate: one per task",
              "Schwarz et al. 2018 (online EWC)", choices=("online", "separate")),
        Param("ewc_gamma", float, 1.0, "online mode: decay of the old Fisher, F <- gamma F + F_k",
              "Schwarz et al. 2018 (online EWC)", lo=0.0),
        Param("fisher_samples", int, 200, "examples used to estimate the Fisher diagonal", lo=1),
        Param("fisher_batch", int, 1, "examples per gradient (1 = per-example empirical Fisher)", lo=1),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.anchors: list[list[Tensor]] = []
        self.fishers: list[list[Tensor]] = []
        self.penalty: AnchorPenalty | None = None
        self._pretrain_done = False

    def _consolidate(self, model: nn.Module, dataset, seed: int) -> None:
        c = self.cfg
        f = fisher_diagonal(
            model, self.seq.loss_fn, dataset, c.fisher_samples, c.fisher_batch, self.seq.collate_fn, seed
        )
        theta = snapshot(trainable_params(model))
        if c.ewc_mode == "online" and self.fishers:
            for old, new in zip(self.fishers[0], f):
                old.mul_(c.ewc_gamma).add_(new)
            self.anchors = [theta]
        else:
            self.fishers.append(f)
            self.anchors.append(theta)

    def before_task(self, model: nn.Module, k: int) -> None:
        if k == 0 and not self._pretrain_done and self.seq.pretrain is not None:
            self._consolidate(model, self.seq.pretrain.train, seed=10_000)
        self._pretrain_done = True

    def callbacks(self, model: nn.Module, k: int) -> list:
        if not self.anchors:
            return []
        lam = float(self.cfg.lam)
        self.penalty = AnchorPenalty([(a, f, lam) for a, f in zip(self.anchors, self.fishers)])
        return [self.penalty]

    def after_task(self, model: nn.Module, k: int) -> None:
        if k < len(self.seq.tasks) - 1:  # the last task's Fisher would never be used
            self._consolidate(model, self.seq.tasks[k].train, seed=k)

    def held_tensors(self) -> list[Tensor]:
        return [t for group in self.anchors + self.fishers for t in group]

    def state_dict(self) -> dict:
        return {"anchors": self.anchors, "fishers": self.fishers, "pretrain_done": self._pretrain_done}

    def load_state_dict(self, state: dict) -> None:
        self.anchors = [list(a) for a in state["anchors"]]
        self.fishers = [list(f) for f in state["fishers"]]
        self._pretrain_done = bool(state["pretrain_done"])
