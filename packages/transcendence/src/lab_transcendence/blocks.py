"""Training blocks as in the paper: games joined back to back (each starts with `;`) until a block is full.

A game that does not fit is cut at the end of the block and restarts whole at the start of the next one, so
every block starts at a game boundary and the model sees every game from its first move. A game longer
than a block fills one block alone (the rest is dropped). An unfinished last block is dropped.
Blocks are block_size + 1 tokens: inputs are the first block_size, targets the last block_size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lab_shared.errors import LabError
from lab_shared.io import atomic_path


def block_layout(lengths: Sequence[int], block_len: int) -> list[list[tuple[int, int]]]:
    """Per block, the (game index, tokens taken) segments that fill it."""
    blocks: list[list[tuple[int, int]]] = []
    cur: list[tuple[int, int]] = []
    used = 0
    i = 0
    n = len(lengths)
    while i < n:
        L = int(lengths[i])
        if L == 0:
            i += 1
            continue
        room = block_len - used
        if L <= room:
            cur.append((i, L))
            used += L
            i += 1
        elif used == 0:  # a game longer than a block: one block alone
            cur.append((i, block_len))
            used = block_len
            i += 1
        else:  # cut here; the game restarts whole in the next block
            cur.append((i, room))
            used = block_len
        if used == block_len:
            blocks.append(cur)
            cur, used = [], 0
    return blocks


def build_blocks(games: Sequence[np.ndarray], block_len: int, dtype=None) -> np.ndarray:
    """(n_blocks, block_len) array of token ids following block_layout."""
    dtype = dtype or (games[0].dtype if len(games) else np.uint8)
    layout = block_layout([len(g) for g in games], block_len)
    out = np.empty((len(layout), block_len), dtype=dtype)
    for b, segs in enumerate(layout):
        pos = 0
        for gi, take in segs:
            out[b, pos : pos + take] = games[gi][:take]
            pos += take
    return out


def split_games(games: Sequence[np.ndarray], val_fraction: float, seed: int = 0) -> tuple[list, list]:
    """A seeded split of games into train and validation (whole games, so no block straddles both)."""
    n = len(games)
    n_val = int(round(n * val_fraction)) if val_fraction > 0 else 0
    if val_fraction > 0 and n >= 2:
        n_val = max(1, n_val)
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = set(perm[:n_val].tolist())
    train = [g for i, g in enumerate(games) if i not in val_idx]
    val = [g for i, g in enumerate(games) if i in val_idx]
    return train, val


def cached_blocks(data_dir: Path, name: str, games: Sequence[np.ndarray], block_len: int) -> np.ndarray:
    """build_blocks, cached in data_dir as `blocks-<name>-<len>.npy` (memory-mapped on reuse)."""
    path = Path(data_dir) / f"blocks-{name}-{block_len}.npy"
    if path.is_file():
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    arr = build_blocks(games, block_len)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
    except OSError:
        pass  # a read-only data folder: just keep the blocks in memory
    return arr


class BlockDataset(Dataset):
    """Map-style dataset of blocks; a batch is one (B, block_len) int64 tensor."""

    def __init__(self, blocks: np.ndarray):
        if len(blocks) == 0:
            raise LabError("no training block could be built: the data set is smaller than one block")
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.blocks[i], dtype=np.int64))

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.blocks[np.asarray(indices)], dtype=np.int64))

    @staticmethod
    def collate_fn(batch):
        return batch if isinstance(batch, torch.Tensor) else torch.stack(batch)
