"""The position policy: a small network from an encoded board (board.py) to logits over moves.py's space.

Two bodies share one head:

- `cnn`: a residual CNN over 8 x 8 planes (12 piece planes, 4 castling planes, one en passant plane, one
  side-to-move plane), `layers` blocks of two 3x3 convolutions with batch norm;
- `transformer`: 64 square tokens (piece embedding + square embedding) plus one state token (side to
  move, castling, en passant), pre-LN encoder blocks without a causal mask.

Head: every square gets a "from" and a "to" vector; the logit of from-square f to square t is their dot
product (the 4,096 from-to logits), and an under-promotion adds a per-piece term from the from-square
(4096 + 66 = 4162 logits). Illegal moves are masked by the caller before the softmax (`masked_logits`).
The exported folder is `model.safetensors` + `config.json` with `model_type: lab_chess_position`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lab_transcendence.board import CASTLE, EP, STM
from lab_transcendence.moves import FROM_TO, PROMO_PAIRS
from lab_transcendence.position_config import ARCHES, MODEL_TYPE, PositionConfig

__all__ = ["ARCHES", "MODEL_TYPE", "PositionConfig", "PositionPolicy", "masked_log_probs", "position_loss"]


def _promo_from_squares() -> torch.Tensor:
    """For each of the 22 promotion pairs, its from-square (7th rank, mover's view)."""
    return torch.tensor([48 + (pair + 1) // 3 for pair in range(PROMO_PAIRS)])


def _promo_to_squares() -> torch.Tensor:
    """... and its to-square (8th rank): same file, or one to the left / right for a capture."""
    out = []
    for pair in range(PROMO_PAIRS):
        file_f, d = divmod(pair + 1, 3)
        out.append(56 + file_f + d - 1)
    return torch.tensor(out)


class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


class _Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class PositionPolicy(nn.Module):
    """Encoded boards (B, 70) uint8/int -> move logits (B, 4162)."""

    def __init__(self, config: PositionConfig):
        super().__init__()
        if config.arch not in ARCHES:
            raise ValueError(f"unknown position model arch {config.arch!r}")
        self.config = c = config
        w = c.width
        if c.arch == "cnn":
            self.stem = nn.Sequential(
                nn.Conv2d(18, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()
            )
            self.body = nn.Sequential(*[_Res(w) for _ in range(c.layers)])
        else:
            self.piece = nn.Embedding(13, w)
            self.square = nn.Parameter(torch.randn(64, w) * 0.02)
            self.stm = nn.Embedding(2, w)
            self.castle = nn.Parameter(torch.randn(4, w) * 0.02)
            self.ep = nn.Embedding(9, w)
            self.blocks = nn.ModuleList(_Block(w, c.heads) for _ in range(c.layers))
            self.ln = nn.LayerNorm(w)
        self.frm = nn.Linear(w, c.head_dim)
        self.dest = nn.Linear(w, c.head_dim)
        self.promo = nn.Linear(w, 3)
        self.register_buffer("promo_from", _promo_from_squares(), persistent=False)
        self.register_buffer("promo_to", _promo_to_squares(), persistent=False)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _planes(self, x: torch.Tensor) -> torch.Tensor:
        sq = x[:, :64].long()
        onehot = F.one_hot(sq, 13)[..., 1:].float()  # (B, 64, 12)
        B = x.shape[0]
        extra = torch.zeros(B, 64, 6, device=x.device)
        extra[:, :, :4] = x[:, CASTLE : CASTLE + 4].float()[:, None, :]
        ep = x[:, EP].long()
        has = ep > 0
        if has.any():
            rows = torch.nonzero(has).squeeze(1)
            extra[rows, 40 + ep[rows] - 1, 4] = 1.0  # the en passant target on the 6th rank (mover's view)
        extra[:, :, 5] = x[:, STM].float()[:, None]
        planes = torch.cat([onehot, extra], dim=2)  # (B, 64, 18), square index = rank * 8 + file
        return planes.transpose(1, 2).reshape(B, 18, 8, 8)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-square features (B, 64, width)."""
        if self.config.arch == "cnn":
            h = self.body(self.stem(self._planes(x)))
            return h.flatten(2).transpose(1, 2)
        sq = x[:, :64].long()
        h = self.piece(sq) + self.square[None]
        state = (
            self.stm(x[:, STM].long())
            + x[:, CASTLE : CASTLE + 4].float() @ self.castle
            + self.ep(x[:, EP].long())
        )
        h = torch.cat([h, state[:, None]], dim=1)
        for blk in self.blocks:
            h = blk(h)
        return self.ln(h)[:, :64]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Per-square features (B, 64, width) -> move logits (B, 4162)."""
        f, t = self.frm(h), self.dest(h)
        fromto = torch.einsum("bfd,btd->bft", f, t) / math.sqrt(self.config.head_dim)  # (B, 64, 64)
        fromto = fromto.reshape(h.shape[0], FROM_TO)
        base = fromto[:, self.promo_from * 64 + self.promo_to]  # (B, 22)
        extra = self.promo(h[:, self.promo_from])  # (B, 22, 3)
        under = (base[:, :, None] + extra).transpose(1, 2).reshape(h.shape[0], 3 * PROMO_PAIRS)
        return torch.cat([fromto, under], dim=1)


def masked_log_probs(logits: torch.Tensor, legal: list, temperature: float) -> list:
    """log-softmax of logits / T over each row's legal indices only (illegal moves masked out)."""
    out = []
    lp = logits.float() / temperature
    for i, idx in enumerate(legal):
        row = lp[i, torch.as_tensor(idx, dtype=torch.long, device=lp.device)]
        out.append(torch.log_softmax(row, dim=0))
    return out


def position_loss(model: PositionPolicy, batch: dict) -> dict:
    """Cross entropy of the played move over the whole move space, and top-1 agreement."""
    logits = model(batch["x"])
    y = batch["y"].long()
    loss = F.cross_entropy(logits, y)
    acc = (logits.argmax(1) == y).float().mean()
    return {"loss": loss, "top1": acc.detach()}
