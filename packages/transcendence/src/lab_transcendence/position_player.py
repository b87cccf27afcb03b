"""The position policy as an arena player: every live game's board in one forward pass.

Each board is encoded (board.py), the network gives logits over the move space, the illegal moves are
masked out before the softmax, and a move is sampled from softmax(logits / T) over the legal ones with
one random stream per game and ply (the same draw whatever else shares the batch, as the GPT player).
T -> 0 plays the most likely legal move: the plurality vote of the experts the model imitates.

Speed: the network is an inference copy (position_inference.py: batch norms folded into the
convolutions, channels-last), identical positions in a batch (games still in the same opening) go
through it once, and the legal moves of the whole batch are gathered and normalised in one tensor
operation instead of one small numpy pass per game. The copy is taken when the player is made: a
player made before further training plays the weights it was made with.
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
from lab_transcendence.position_inference import inference_copy


class PositionPlayer:
    """A PositionPolicy answering a batch of positions at temperature T (illegal moves masked)."""

    def __init__(self, model, temperature: float, name: str = "model", max_batch: int = 256, headers=None):
        if not temperature > 0:
            raise LabError(f"temperature must be > 0, got {temperature}")
        self.model = model.eval()
        self.net = inference_copy(self.model)
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
            out += self._chunk(boards[i : i + self.max_batch])
        return out

    def _chunk(self, boards: Sequence[chess.Board]) -> list[tuple[list[chess.Move], np.ndarray]]:
        enc = np.stack([encode(b) for b in boards])
        uniq, inverse = np.unique(enc, axis=0, return_inverse=True)  # each distinct position once
        logits = self.net(torch.from_numpy(uniq).to(self.device)).float()
        legal = [legal_indices(b) for b in boards]
        width = max(1, max(len(ix) for _, ix in legal))
        idx = np.zeros((len(boards), width), dtype=np.int64)
        valid = np.zeros((len(boards), width), dtype=bool)
        for r, (_, ix) in enumerate(legal):
            idx[r, : len(ix)] = ix
            valid[r, : len(ix)] = True
        rows = torch.from_numpy(inverse.reshape(-1)).to(self.device)
        picked = logits[rows[:, None], torch.from_numpy(idx).to(self.device)].double() / self.temperature
        picked = picked.masked_fill(~torch.from_numpy(valid).to(self.device), float("-inf"))
        lp = torch.log_softmax(picked, dim=1).cpu().numpy()
        return [(moves, lp[r, : len(ix)]) for r, (moves, ix) in enumerate(legal)]

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
