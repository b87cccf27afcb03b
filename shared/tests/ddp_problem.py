"""A small deterministic problem shared by the DDP test and its torchrun worker."""

import torch
from torch import nn

from lab_shared.data import TensorData
from lab_shared.trainer import TrainerConfig


def make_problem(n: int = 128):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return TensorData(x, (x[:, :3].sum(1) > 0).long())


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def config(batch_size, **kw):
    base = dict(max_steps=12, batch_size=batch_size, lr=0.05, progress=False, log_every=4, device="cpu")
    return TrainerConfig(**{**base, **kw})
