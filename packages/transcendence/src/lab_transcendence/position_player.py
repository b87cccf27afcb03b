"""The position policy as an arena player: every live game's board in one forward pass.

Each board is encoded (board.py), the network gives logits over the move space, the illegal moves are
masked out before the softmax, and a move is sampled from softmax(logits / T) over the legal ones with
one random stream per game and ply (the same draw whatever else shares the batch, as the GPT player).
T -> 0 plays the most likely legal move: the plurality vote of the experts the model imitates.
"""

from __future__ import annotations

from collections.abc import Sequence

import chess
import numpy as np
import torch

from lab_shared.errors import LabError
from lab_transcendence.arena import MoveDecision, MoveRequest
from lab_transcendence.board import encode
from lab_transcendence.moves import legal_indices
from lab_transcendence.player import PlayerStats, _rng, sample_index


class PositionPlayer:
    """A PositionPolicy answering a batch of positions at temperature T (illegal moves masked)."""

    def __init__(self, model, temperature: float, name: str = "model", max_batch: int = 256, headers=None):
        if not temperature > 0:
            raise LabError(f"temperature must be > 0, got {temperature}")
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.temperature = float(temperature)
        self.name = name
        self.max_batch = max_batch
        self.policy = "position"
        self.stats = PlayerStats()
        self._headers = dict(headers or {})

    def headers(self) -> dict[str, str]:
        return {**self._headers, "Temperature": f"{self.temperature:g}", "Policy": "position"}

    @torch.no_grad()
    def legal_logprobs(self, boards: Sequence[chess.Board]) -> list[tuple[list[chess.Move], np.ndarray]]:
        """For each board: its legal moves and log p_T of each (softmax over the legal moves only)."""
        out: list[tuple[list[chess.Move], np.ndarray]] = []
        for i in range(0, len(boards), self.max_batch):
            chunk = boards[i : i + self.max_batch]
            x = torch.from_numpy(np.stack([encode(b) for b in chunk])).to(self.device)
            logits = self.model(x).float().cpu().numpy().astype(np.float64) / self.temperature
            for b, row in zip(chunk, logits, strict=True):
                moves, idx = legal_indices(b)
                lp = row[idx]
                lp = lp - np.logaddexp.reduce(lp) if len(lp) else lp
                out.append((moves, lp))
        return out

    def select(self, requests: Sequence[MoveRequest]) -> list[MoveDecision]:
        res = []
        for r, (moves, lp) in zip(requests, self.legal_logprobs([r.board for r in requests]), strict=True):
            if not moves:
                res.append(MoveDecision(None, forfeit=True))
                continue
            res.append(MoveDecision(moves[sample_index(lp, _rng(r.seed, len(r.sans), 0))]))
            self.stats.moves += 1
        return res

    def greedy(self, boards: Sequence[chess.Board]) -> list[chess.Move | None]:
        """The T -> 0 move of each board (argmax over the legal moves)."""
        return [moves[int(np.argmax(lp))] if moves else None for moves, lp in self.legal_logprobs(boards)]
