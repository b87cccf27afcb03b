"""Tiny models for the chess-eval tests (real GPTs with chosen weights, no mocks)."""

from __future__ import annotations

from pathlib import Path

import torch

from lab_transcendence.export import export_model
from lab_transcendence.model import GPT, GPTConfig, preset_config
from lab_transcendence.tokenizer import get_tokenizer


def tiny_model(seed: int = 0, kind: str = "char") -> GPT:
    torch.manual_seed(seed)
    return GPT(preset_config("tiny", get_tokenizer(kind).vocab_size)).eval()


def stuck_model(char: str = "#") -> GPT:
    """A GPT whose every prediction is `char` (never a space): its paper-policy moves are always illegal."""
    tok = get_tokenizer("char")
    m = GPT(GPTConfig(vocab_size=32, block_size=64, n_layer=1, n_head=1, n_embd=8, bias=True)).eval()
    with torch.no_grad():
        m.transformer.ln_f.weight.zero_()
        m.transformer.ln_f.bias.zero_()
        m.transformer.ln_f.bias[0] = 10.0
        m.lm_head.weight[:, 0] = 0.0  # tied with wte: only `char` reads dimension 0
        m.lm_head.weight[tok.stoi[char], 0] = 10.0
    return m


def export_tiny(path: Path, seed: int = 0, max_rating: float | None = 1000.0) -> Path:
    return export_model(tiny_model(seed), path, "char", {"max_rating": max_rating})


GAME = ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Ba4 Nf6 5.O-O Be7 6.Re1 b5 7.Bb3 d6 8.c3 O-O 9.h3 Nb8 10.d4 Nbd7"
_MEMO: dict[int, GPT] = {}


def memorized_model(steps: int = 120, seed: int = 0) -> GPT:
    """A tiny GPT trained to recite one Ruy Lopez game: its greedy moves along that game are legal."""
    if seed in _MEMO:
        return _MEMO[seed]
    torch.manual_seed(seed)
    tok = get_tokenizer("char")
    m = GPT(GPTConfig(vocab_size=32, block_size=127, n_layer=1, n_head=2, n_embd=48))
    ids = torch.tensor(tok.encode(GAME + GAME[:40]))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    n = len(tok.encode(GAME))
    for _ in range(steps):
        starts = torch.zeros(1, dtype=torch.long)  # games start at `;` as in the training blocks
        x = torch.stack([ids[s : s + n] for s in starts])
        y = torch.stack([ids[s + 1 : s + n + 1] for s in starts])
        _, loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    _MEMO[seed] = m
    return m


def game_positions() -> list[tuple]:
    """(board, sans) before every move of GAME."""
    import chess

    sans = [w.split(".")[-1] for w in GAME[1:].split()]
    board, out = chess.Board(), []
    for i, san in enumerate(sans):
        out.append((board.copy(), sans[:i]))
        board.push_san(san)
    return out
