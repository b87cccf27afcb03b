"""The position policy's inference path for the arena: batch-wide input work and a folded network.

- `inference_copy`: an eval-mode copy with every conv + batch norm pair folded into one conv (in eval
  mode a batch norm is an affine map per channel), channels-last. Its logits equal the model's to float
  rounding (tested). Transformer bodies have no batch norm and are used as they are.
- `encode_batch`: the encodings of many boards at once (numpy over the 12 piece bitboards of each board
  instead of a Python loop over its pieces); equal to `board.encode` row for row (tested).
- `planes`: the 18 input planes of `PositionPolicy._planes`, made in numpy from the encodings.
- `FastPolicy`: encodings -> logits through the folded copy (planes made in numpy, inference mode).

Tried and dropped (measured, docs/results/chess-position-arena/round3.md): the convolutions as Winograd
F(4x4, 3x3) on the 8x8 board (float32, 1e-6 from the direct convolution) ran 1.6x slower than oneDNN's
direct convolution at batch 32 on this CPU; bf16 autocast ran 1.6x faster but changed the T -> 0 move
in 17 of 960 positions.
"""

from __future__ import annotations

import copy

import chess
import numpy as np
import torch
from torch import nn

from lab_transcendence.board import CASTLE, ENCODED_LEN, EP, STM


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    out = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True
    )
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        out.weight.copy_(conv.weight * scale[:, None, None, None])
        out.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return out.to(conv.weight.device, conv.weight.dtype)


@torch.no_grad()
def inference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of a PositionPolicy with every conv + batch norm pair folded into one conv."""
    m = copy.deepcopy(model).eval()
    if getattr(m.config, "arch", None) != "cnn":
        return m
    m.stem[0] = _fold(m.stem[0], m.stem[1])
    m.stem[1] = nn.Identity()
    for block in m.body:
        block.c1, block.b1 = _fold(block.c1, block.b1), nn.Identity()
        block.c2, block.b2 = _fold(block.c2, block.b2), nn.Identity()
    m.stem.to(memory_format=torch.channels_last)
    m.body.to(memory_format=torch.channels_last)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


# ---- batch-wide encoding (board.py's layout) ----

_WHITE_RIGHTS = (chess.BB_H1, chess.BB_A1, chess.BB_H8, chess.BB_A8)  # mover K, Q, opponent K, Q
_BLACK_RIGHTS = (chess.BB_H8, chess.BB_A8, chess.BB_H1, chess.BB_A1)
_MIRROR = np.arange(64) ^ 56  # square s seen from Black's side


def encode_batch(boards) -> np.ndarray:
    """(N, 70) uint8 encodings of many boards, equal to `board.encode` of each."""
    n = len(boards)
    bbs = np.empty((n, 12), dtype="<u8")  # the mover's pawn..king, then the opponent's
    tail = np.zeros((n, ENCODED_LEN - 64), dtype=np.uint8)
    for i, b in enumerate(boards):
        black = b.turn == chess.BLACK
        own, opp = b.occupied_co[b.turn], b.occupied_co[not b.turn]
        kinds = (b.pawns, b.knights, b.bishops, b.rooks, b.queens, b.kings)
        bbs[i, :6] = [k & own for k in kinds]
        bbs[i, 6:] = [k & opp for k in kinds]
        rights = b.castling_rights
        tail[i, :5] = (black, *(1 if rights & r else 0 for r in (_BLACK_RIGHTS if black else _WHITE_RIGHTS)))
        tail[i, 5] = 0 if b.ep_square is None else chess.square_file(b.ep_square) + 1
    bits = np.unpackbits(bbs.view(np.uint8).reshape(n, 12, 8), axis=2, bitorder="little")  # (N, 12, 64)
    squares = (bits * np.arange(1, 13, dtype=np.uint8)[None, :, None]).sum(1, dtype=np.uint8)
    black = tail[:, 0].astype(bool)
    squares[black] = squares[black][:, _MIRROR]
    return np.concatenate([squares, tail], axis=1)


_ONEHOT = np.eye(13, dtype=np.float32)[:, 1:]  # square value -> its 12 piece planes (0: empty)


def planes(enc: np.ndarray) -> np.ndarray:
    """(N, 64, 18) float32 input planes by square, as `PositionPolicy._planes` (before its transpose)."""
    n = len(enc)
    out = np.zeros((n, 64, 18), dtype=np.float32)
    out[:, :, :12] = _ONEHOT[enc[:, :64]]
    out[:, :, 12:16] = enc[:, None, CASTLE : CASTLE + 4]
    ep = enc[:, EP].astype(np.int64)
    rows = np.nonzero(ep)[0]
    out[rows, 40 + ep[rows] - 1, 16] = 1.0  # the en passant target on the 6th rank (mover's view)
    out[:, :, 17] = enc[:, None, STM]
    return out


class FastPolicy:
    """Encodings (N, 70) uint8 -> logits (N, 4162) of an inference copy of a PositionPolicy."""

    def __init__(self, model: nn.Module):
        self.net = inference_copy(model)
        self.device = next(self.net.parameters()).device
        self.cnn = getattr(self.net.config, "arch", None) == "cnn"

    @torch.inference_mode()
    def __call__(self, enc: np.ndarray) -> torch.Tensor:
        if not self.cnn:
            return self.net(torch.from_numpy(enc).to(self.device)).float()
        n = len(enc)
        pl = torch.from_numpy(planes(enc)).to(self.device)
        x = pl.transpose(1, 2).reshape(n, 18, 8, 8).contiguous(memory_format=torch.channels_last)
        h = self.net.body(self.net.stem(x)).flatten(2).transpose(1, 2)
        return self.net.head(h).float()
