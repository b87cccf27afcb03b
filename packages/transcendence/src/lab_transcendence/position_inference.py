"""The position policy's inference path for the arena: batch-wide input work and a Winograd CNN body.

- `inference_copy`: an eval-mode copy with every conv + batch norm pair folded into one conv (in eval
  mode a batch norm is an affine map per channel), channels-last. Its logits equal the model's to float
  rounding (tested). Transformer bodies have no batch norm and are used as they are.
- `encode_batch`: the encodings of many boards at once (numpy over the 12 piece bitboards of each board
  instead of a Python loop over its pieces); equal to `board.encode` row for row (tested).
- `planes`: the 18 input planes of `PositionPolicy._planes`, made in numpy from the encodings.
- `FastPolicy`: encodings -> logits. For a CNN on the CPU its 3x3 convolutions run as Winograd F(4x4, 3x3)
  on the 8x8 board (2 x 2 tiles of 6 x 6 inputs with the zero padding): each layer is one gather of the
  tiles, one (36 x 36) input-transform matmul, 36 (tiles x C) @ (C x K) products and one (16 x 36)
  output transform, 2.25x fewer multiply-adds than the direct convolution (4x fewer in the products).
  Float32 throughout; its features differ from the direct convolution's by ~1e-6 (as two direct
  implementations do; tested against float64). Batches smaller than `WINOGRAD_MIN_BATCH` use the folded
  direct convolution (faster there: measured, docs/results/chess-position-arena/).
"""

from __future__ import annotations

import copy

import chess
import numpy as np
import torch
from torch import nn

from lab_transcendence.board import CASTLE, ENCODED_LEN, EP, STM

WINOGRAD_MIN_BATCH = 2  # the direct convolution below this batch size (see the module docstring)


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


# ---- Winograd F(4x4, 3x3) on the 8 x 8 board ----

_BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]  # fmt: skip
_G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]  # fmt: skip
_AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def _layout() -> tuple[np.ndarray, np.ndarray]:
    """Activations live as (64 slots, B, C), a slot per output pixel (p, q) of tile (t, s) (row 4t+p, col
    4s+q), so a layer's output transform writes them in place; `gather` picks each 6 x 6 input tile's
    pixel (r, c) of tile (t, s) (row 4t+r-1, col 4s+c-1), 64 = the zero padding."""
    slot = np.empty(64, dtype=np.int64)
    for p in range(4):
        for q in range(4):
            for t in range(2):
                for s in range(2):
                    slot[(4 * t + p) * 8 + 4 * s + q] = ((p * 4 + q) * 2 + t) * 2 + s
    gather = np.empty(144, dtype=np.int64)
    for r in range(6):
        for c in range(6):
            for t in range(2):
                for s in range(2):
                    row, col = 4 * t + r - 1, 4 * s + c - 1
                    inside = 0 <= row < 8 and 0 <= col < 8
                    gather[((r * 6 + c) * 2 + t) * 2 + s] = slot[row * 8 + col] if inside else 64
    return slot, gather


_SLOT_OF_SQUARE, _GATHER = _layout()
_SQUARE_OF_SLOT = np.argsort(_SLOT_OF_SQUARE)


class _WinogradConv:
    """One folded 3x3 convolution (padding 1) as Winograd F(4x4, 3x3) over (64 slots, B, C) activations."""

    def __init__(self, conv: nn.Conv2d):
        g = torch.tensor(_G, dtype=torch.float64)
        w = conv.weight.detach().double().cpu()  # (K, C, 3, 3)
        u = torch.einsum("ir,kcrs,js->ijck", g, w, g)  # G w G^T per (k, c), as (6, 6, C, K)
        self.u = u.reshape(36, w.shape[1], w.shape[0]).float().contiguous()
        self.bias = conv.bias.detach().float().cpu()
        bt, at = torch.tensor(_BT, dtype=torch.float64), torch.tensor(_AT, dtype=torch.float64)
        self.kin = torch.kron(bt, bt).float()  # (36, 36): B^T d B of a flattened 6 x 6 tile
        self.kout = torch.kron(at, at).float()  # (16, 36): A^T m A
        self.gather = torch.from_numpy(_GATHER)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _, b, c = x.shape
        padded = torch.cat([x, x.new_zeros(1, b, c)], 0)
        d = padded.index_select(0, self.gather).view(36, -1)  # (36 tile pixels, 4 tiles * B * C)
        v = (self.kin @ d).view(36, 4 * b, c)
        m = torch.bmm(v, self.u)  # (36, 4B, K)
        y = (self.kout @ m.view(36, -1)).view(64, b, -1)  # back in slot order
        return y + self.bias


class FastPolicy:
    """Encodings (N, 70) uint8 -> logits (N, 4162) of an inference copy of a PositionPolicy."""

    def __init__(self, model: nn.Module, winograd_min_batch: int | None = None):
        self.net = inference_copy(model)
        self.device = next(self.net.parameters()).device
        self.cnn = getattr(self.net.config, "arch", None) == "cnn"
        self.winograd_min_batch = WINOGRAD_MIN_BATCH if winograd_min_batch is None else winograd_min_batch
        self.wino = None
        if self.cnn and self.device.type == "cpu":
            self.wino = [_WinogradConv(self.net.stem[0])]
            for blk in self.net.body:
                self.wino += [_WinogradConv(blk.c1), _WinogradConv(blk.c2)]

    def _winograd_features(self, pl: torch.Tensor) -> torch.Tensor:
        x = pl[:, _SQUARE_OF_SLOT].transpose(0, 1).contiguous()  # (64 slots, B, 18)
        h = torch.relu(self.wino[0](x))
        for c1, c2 in zip(self.wino[1::2], self.wino[2::2], strict=True):
            h = torch.relu(h + c2(torch.relu(c1(h))))
        return h[_SLOT_OF_SQUARE].transpose(0, 1)  # (B, 64 squares, C)

    @torch.inference_mode()
    def __call__(self, enc: np.ndarray) -> torch.Tensor:
        if not self.cnn:
            return self.net(torch.from_numpy(enc).to(self.device)).float()
        n = len(enc)
        pl = torch.from_numpy(planes(enc)).to(self.device)
        if self.wino is not None and n >= self.winograd_min_batch:
            h = self._winograd_features(pl)
        else:
            x = pl.transpose(1, 2).reshape(n, 18, 8, 8).contiguous(memory_format=torch.channels_last)
            h = self.net.body(self.net.stem(x)).flatten(2).transpose(1, 2)
        return self.net.head(h).float()
