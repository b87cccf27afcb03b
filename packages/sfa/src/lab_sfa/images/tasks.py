"""Image tasks as tensors in memory, and the loss / evaluation the sequence interface asks for."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from lab_sfa.tasktypes import SequenceConfig, Task


def _identity(batch):
    return batch


class ImageDataset(Dataset):
    """Images [N, C, H, W] float32, labels [N] int64, and the task index (the head to use).

    ``__getitems__`` fetches a whole batch with one indexing op (the core trainer then uses ``collate_fn``,
    the identity); single items ``ds[i]`` are (x, y, task) tuples that torch's default_collate batches.
    """

    collate_fn = staticmethod(_identity)

    def __init__(self, x: np.ndarray | Tensor, y: np.ndarray | Tensor, task: int):
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.long)
        self.task = task

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        return self.x[i], self.y[i], self.task

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        idx = torch.as_tensor(indices)
        return self.x[idx], self.y[idx], torch.full((len(idx),), self.task, dtype=torch.long)


def _subset(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(n)[: k if 0 < k < n else n]


def make_task(
    name: str,
    index: int,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    cfg: SequenceConfig,
    seed: int,
    n_train: int | None = None,
    classes: list[int] | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Task:
    """Subsample (seeded) train / val / test splits, optionally keep and relabel a subset of classes.

    ``transform`` (a domain shift such as a rotation) is applied to the images after subsampling.
    """
    tf = transform or (lambda a: a)
    xtr, ytr, xte, yte = arrays
    if classes is not None:
        lut = {c: i for i, c in enumerate(classes)}
        mtr, mte = np.isin(ytr, classes), np.isin(yte, classes)
        xtr, xte = xtr[mtr], xte[mte]
        ytr = np.array([lut[v] for v in ytr[mtr]], dtype=np.int64)
        yte = np.array([lut[v] for v in yte[mte]], dtype=np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ytr))
    n_val = min(cfg.n_val, len(perm) // 5)
    val_idx, pool = perm[:n_val], perm[n_val:]
    k = cfg.n_train if n_train is None else n_train
    tr_idx = pool[: k if 0 < k < len(pool) else len(pool)]
    te_idx = _subset(rng, len(yte), cfg.n_test)
    n_classes = len(classes) if classes is not None else int(max(ytr.max(), yte.max()) + 1)
    return Task(
        name=name,
        train=ImageDataset(tf(xtr[tr_idx]), ytr[tr_idx], index),
        test=ImageDataset(tf(xte[te_idx]), yte[te_idx], index),
        val=ImageDataset(tf(xtr[val_idx]), ytr[val_idx], index) if n_val else None,
        index=index,
        n_classes=n_classes,
    )


def image_loss(model: nn.Module, batch) -> Tensor:
    """Cross-entropy of a collated (x, y, task) batch."""
    x, y, t = batch
    return F.cross_entropy(model(x, t), y)


@torch.no_grad()
def image_evaluate(
    model: nn.Module, task: Task, split: str = "test", batch_size: int = 500
) -> dict[str, float]:
    """Accuracy and loss of ``model`` on a task's split, in eval mode (mode restored afterwards)."""
    ds: ImageDataset = getattr(task, split)
    if ds is None:
        raise ValueError(f"task '{task.name}' has no '{split}' split")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct, loss, n = 0, 0.0, len(ds)
    for i in range(0, n, batch_size):
        x, y = ds.x[i : i + batch_size].to(device), ds.y[i : i + batch_size].to(device)
        t = torch.full_like(y, ds.task)
        logits = model(x, t).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    return {"accuracy": correct / max(n, 1), "loss": loss / max(n, 1)}
