"""Data helpers for the trainer: a seeded, resumable, DDP-sharded sampler and a fast tensor dataset."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler


class ResumableSampler(Sampler[int]):
    """Indices of one epoch in a seeded order (seed + epoch), sharded over ranks, starting at `start` batches.

    Every rank sees the same number of indices (the tail that does not divide by the world size is dropped),
    so DDP ranks never wait on each other. Rank r takes positions r, r + world, ... of the epoch's permutation,
    so a world of W with per-rank batch B covers exactly the same examples per step as one process with batch W*B.
    `batch_multiple` rounds the batches of an epoch down to a multiple of it (the trainer sets grad_accum under
    a global batch), so every epoch holds whole optimizer steps, the same for any process count.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world: int = 1
    ):
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.rank, self.world = rank, world
        self.epoch = 0
        self.start_batch = 0
        self.batch_multiple = 1

    def batches_per_epoch(self) -> int:
        batches = (self.n // self.world) // self.batch_size
        return batches - batches % self.batch_multiple

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 1_000_003 + self.epoch)
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        per_rank = perm[: (self.n // self.world) * self.world][self.rank :: self.world]
        usable = self.batches_per_epoch() * self.batch_size
        yield from per_rank[self.start_batch * self.batch_size : usable].tolist()

    def __len__(self) -> int:
        return max(0, (self.batches_per_epoch() - self.start_batch) * self.batch_size)


def _identity(batch):
    return batch


class TensorData(Dataset):
    """Like TensorDataset, but fetches a whole batch with one indexing op per tensor (`__getitems__`)."""

    collate_fn = staticmethod(_identity)

    def __init__(self, *tensors: torch.Tensor):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorData needs tensors of equal length")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, i):
        return tuple(t[i] for t in self.tensors)

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices)
        return tuple(t[idx] for t in self.tensors)


def to_device(batch, device: torch.device):
    """Move a batch (tensor, or nested tuple/list/dict of tensors) to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
