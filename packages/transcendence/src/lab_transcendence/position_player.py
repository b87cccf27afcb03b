"""The position policy as an arena player: every live game's board in one forward pass.

Each board is encoded (board.py), the network gives logits over the move space, the illegal moves are
masked out before the softmax, and a move is sampled from softmax(logits / T) over the legal ones with
one random stream per game and ply (the same draw whatever else shares the batch, as the GPT player).
T -> 0 plays the most likely legal move: the plurality vote of the experts the model imitates.

Speed (position_inference.py): the network is an inference copy (batch norms folded into the
convolutions, channels-last, inference mode), the boards of a batch are encoded and turned into input planes in numpy at once, identical positions in a batch (games
still in the same opening) go through the network once, the legal moves of the whole batch are gathered
and normalised in one tensor operation, and the moves are drawn for the whole batch in one numpy pass
(each game's own uniform draw, as `sample_index`). One game at a time runs the same code with a batch
of one. The copy is taken when the player is made: a player made before further training plays the
weights it was made with.
"""

from __future__ import annotations

from collections.abc import Sequence

import chess
import numpy as np
import torch

from lab_shared.errors import LabError
from lab_transcendence.arena import MoveDecision, MoveRequest
from lab_transcendence.board import encode
from lab_transcendence.moves import UNDER_PROMOTIONS, move_index
from lab_transcendence.player import PlayerStats, _rng
from lab_transcendence.position_inference import FastPolicy, encode_batch


def legal_batch(boards: Sequence[chess.Board]) -> tuple[list[list[chess.Move]], np.ndarray, np.ndarray]:
    """Each board's legal moves (python-chess's order), their move-space indices as a (boards, most legal
    moves) int64 array (moves.move_index, inlined) and the mask of the real entries."""
    moves = [list(b.legal_moves) for b in boards]
    counts = np.array([len(m) for m in moves])
    flat: list[int] = []
    for b, ms in zip(boards, moves, strict=True):
        f = 56 if b.turn == chess.BLACK else 0
        flat += [
            ((m.from_square ^ f) << 6 | (m.to_square ^ f))
            if m.promotion not in UNDER_PROMOTIONS
            else move_index(m, f != 0)
            for m in ms
        ]
    width = max(1, int(counts.max(initial=0)))
    valid = np.arange(width)[None, :] < counts[:, None]
    idx = np.zeros((len(boards), width), dtype=np.int64)
    idx[valid] = flat
    return moves, idx, valid


def sample_padded(logp: np.ndarray, u: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`player.sample_index` of every row at once: row i (its first counts[i] entries real, -inf after)
    sampled by inverse CDF with the uniform draw u[i]; the same index as sample_index(logp[i, :n], .)."""
    if not counts.all():  # a board without legal moves (its row all -inf): a dummy row, never used
        logp = np.where((counts > 0)[:, None], logp, 0.0)
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    c = np.cumsum(p, axis=1)  # the padding adds 0: each row's total is its last real entry
    idx = (c <= (u * c[:, -1])[:, None]).sum(axis=1)  # searchsorted(side="right") on a sorted row
    return np.minimum(idx, np.maximum(counts - 1, 0))


class PositionPlayer:
    """A PositionPolicy answering a batch of positions at temperature T (illegal moves masked)."""

    def __init__(self, model, temperature: float, name: str = "model", max_batch: int = 256, headers=None):
        if not temperature > 0:
            raise LabError(f"temperature must be > 0, got {temperature}")
        self.model = model.eval()
        self.fast = FastPolicy(self.model)
        self.net = self.fast.net
        self.device = next(model.parameters()).device
        self.temperature = float(temperature)
        self.name = name
        self.max_batch = max_batch
        self.policy = "position"
        self.stats = PlayerStats()
        self._headers = dict(headers or {})

    def headers(self) -> dict[str, str]:
        return {**self._headers, "Temperature": f"{self.temperature:g}", "Policy": "position"}

    def legal_logprobs(self, boards: Sequence[chess.Board]) -> list[tuple[list[chess.Move], np.ndarray]]:
        """For each board: its legal moves and log p_T of each (softmax over the legal moves only)."""
        out: list[tuple[list[chess.Move], np.ndarray]] = []
        for i in range(0, len(boards), self.max_batch):
            moves, lp = self._chunk(boards[i : i + self.max_batch])
            out += [(m, lp[r, : len(m)]) for r, m in enumerate(moves)]
        return out

    def _chunk(self, boards: Sequence[chess.Board]) -> tuple[list[list[chess.Move]], np.ndarray]:
        """The legal moves of each board and a (boards, most legal moves) array of log p_T, -inf padded."""
        enc = encode(boards[0])[None] if len(boards) == 1 else encode_batch(boards)
        first: dict[bytes, int] = {}  # each distinct position once
        inverse = np.array([first.setdefault(row.tobytes(), len(first)) for row in enc], dtype=np.int64)
        uniq = enc if len(first) == len(enc) else enc[np.unique(inverse, return_index=True)[1]]
        logits = self.fast(uniq)
        moves, idx, valid = legal_batch(boards)
        rows = torch.from_numpy(inverse).to(self.device)
        picked = logits[rows[:, None], torch.from_numpy(idx).to(self.device)].double() / self.temperature
        picked = picked.masked_fill(~torch.from_numpy(valid).to(self.device), float("-inf"))
        return moves, torch.log_softmax(picked, dim=1).cpu().numpy()

    def select(self, requests: Sequence[MoveRequest]) -> list[MoveDecision]:
        res: list[MoveDecision] = []
        for i in range(0, len(requests), self.max_batch):
            reqs = requests[i : i + self.max_batch]
            moves, lp = self._chunk([r.board for r in reqs])
            counts = np.array([len(m) for m in moves])
            u = np.array([_rng(r.seed, len(r.sans), 0).random() for r in reqs])
            picks = sample_padded(lp, u, counts)
            for m, k in zip(moves, picks, strict=True):
                if not m:
                    res.append(MoveDecision(None, forfeit=True))
                    continue
                res.append(MoveDecision(m[k]))
                self.stats.moves += 1
        return res

    def greedy(self, boards: Sequence[chess.Board]) -> list[chess.Move | None]:
        """The T -> 0 move of each board (argmax over the legal moves)."""
        return [moves[int(np.argmax(lp))] if moves else None for moves, lp in self.legal_logprobs(boards)]
