"""Token-block datasets for causal LM training and evaluation.

Texts are tokenized (bytes), joined with EOS separators in a seeded order and cut into fixed-length blocks
(standard LM packing). Every item is ``{"input_ids": LongTensor[block_size]}``, so blocks of different
domains batch together (replay, joint training) with torch's default collate.
"""

from __future__ import annotations

import random

import torch
from torch.utils.data import Dataset

from lab_sfa.lm.tokenizer import ByteTokenizer
from lab_shared.errors import LabError


class TokenBlocks(Dataset):
    """A fixed set of token blocks (a [n, block_size] LongTensor) as a map-style dataset."""

    def __init__(self, blocks: torch.Tensor, name: str = ""):
        self.blocks = blocks
        self.name = name

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[i]}

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        return [{"input_ids": self.blocks[i]} for i in indices]

    @property
    def n_tokens(self) -> int:
        return self.blocks.numel()


def pack_texts(
    texts: list[str], block_size: int, max_blocks: int = 0, seed: int = 0, name: str = ""
) -> TokenBlocks:
    """Shuffle `texts` (seeded), tokenize with EOS after each, and cut into `block_size` blocks.

    Only as much text as `max_blocks` needs is tokenized (0 = all); the ragged tail is dropped.
    """
    tok = ByteTokenizer()
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    need = max_blocks * block_size if max_blocks > 0 else None
    ids: list[int] = []
    for i in order:
        ids.extend(tok.encode(texts[i], add_eos=True))
        if need is not None and len(ids) >= need:
            break
    n = len(ids) // block_size
    if max_blocks > 0:
        n = min(n, max_blocks)
    if n == 0:
        raise LabError(f"domain {name!r}: not enough text for one block of {block_size} tokens")
    blocks = torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)
    return TokenBlocks(blocks, name)


def lm_loss(model, batch) -> torch.Tensor:
    """Next-token cross-entropy of a causal LM on a batch of blocks (HF models shift labels inside)."""
    ids = batch["input_ids"]
    return model(input_ids=ids, labels=ids).loss
