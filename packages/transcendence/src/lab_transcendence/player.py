"""The trained model as a chess player, batched over many live games.

Prompted with `;` + the movetext so far (`;1.e4 e5 2.` when White is to move, `;1.e4 e5 2.Nf3 ` for
Black), the model picks a move at temperature T under one of two legal-move policies:

- `paper`: sample the move token by token until a space; if it does not parse as a legal move, sample
  again at the same temperature, up to `attempts` (5) samples, then forfeit (the paper's rule).
- `masked`: score every legal move's full token sequence, log p_T(move) = sum of the tokens' log-softmax
  of logits / T, and sample among legal moves only. This is the paper policy's distribution conditioned on
  legality (so T -> 0 plays the most likely legal move).

All games of a call share one forward pass (left-padded, own positions per row, see batching.py) over only
their NEW prompt tokens: each game's prompt keys/values are kept between its moves (PromptCache), so a move
costs the few characters played since, not the whole transcript. `paper` then decodes a few tokens per
move against that cache; `masked` packs all candidate moves of a game into one chunk with a block-diagonal
mask. Sampling uses one random stream per game, ply and attempt, so a move
does not depend on which other games share the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import chess
import numpy as np
import torch

from lab_shared.errors import LabError
from lab_transcendence.arena import MoveDecision, MoveRequest
from lab_transcendence.batching import PromptCache, RaggedCache, extend

Policy = Literal["paper", "masked"]
POLICIES = ("paper", "masked")
PROTOCOLS = ("lab", "paper")
MAX_MOVE_CHARS = 10  # the longest SAN with its space is 8 ("exd8=Q+ "); more is a runaway sample


def movetext(sans: Sequence[str], start_ply: int = 0) -> str:
    """`1.e4 e5 2.Nf3` from SAN moves (the paper's transcript format, no space after the number).

    start_ply: the ply of the first move (a game from a FEN); Black's first move is then written PGN's
    way, `23...Nf6`.
    """
    parts = []
    for i, san in enumerate(sans):
        ply = start_ply + i
        if ply % 2 == 0:
            parts.append(f"{ply // 2 + 1}.{san}")
        else:
            parts.append(f"{ply // 2 + 1}...{san}" if i == 0 else san)
    return " ".join(parts)


def start_ply(board: chess.Board, sans: Sequence[str]) -> int:
    """The ply the moves `sans` started from (0 for a game from the standard start; a FEN's otherwise)."""
    return max(0, board.ply() - len(sans))


class MoveCodec:
    """How prompts and moves become token ids for a tokenizer (`char`, `move` or `vocab`: a corpus move
    vocabulary whose rare moves are spelled in characters; its moves end with a final id, vocab.py)."""

    def __init__(self, tokenizer, block_size: int, protocol: str = "lab"):
        self.tok = tokenizer
        self.kind = getattr(tokenizer, "kind", "char")
        self.block_size = block_size
        # paper protocol (char): Black's prompt ends right after White's move and the model writes the space
        self.lead_space = protocol == "paper" and self.kind == "char"
        self.final: frozenset[int] = frozenset()  # ids that end a move (and are part of it)
        if self.kind == "char":
            self.space = tokenizer.encode(" ")[0]
            self.stop = {self.space, tokenizer.encode(";")[0]}  # `;` ends the sample as an illegal move
            self.max_tokens = MAX_MOVE_CHARS + (1 if self.lead_space else 0)
        elif self.kind == "vocab":
            self.space = None
            self.stop = {tokenizer.pad_id, tokenizer.game_start_id}  # not a move: illegal
            self.final = tokenizer.final_ids
            self.max_tokens = MAX_MOVE_CHARS
        else:
            self.stop = set()
            self.max_tokens = 1
        self.reserve = self.max_tokens + 1

    def prompt(self, sans: Sequence[str], start: int = 0) -> list[int]:
        """Token ids of the prompt after `sans` played from ply `start` (see `start_ply`)."""
        if self.kind == "char":
            text = ";" + movetext(sans, start)
            ply = start + len(sans)
            if ply % 2 == 0:
                text += (" " if sans else "") + f"{ply // 2 + 1}."
            elif not sans:
                text += f"{ply // 2 + 1}..."  # a FEN with Black to move and no move since
            elif not self.lead_space:
                text += " "
            ids = self.tok.encode(text)
        elif self.kind == "vocab":
            ids = [self.tok.game_start_id] + [i for s in sans for i in self.tok.encode_move(s)]
        else:
            ids = [self.tok.game_start_id] + [self.tok.stoi[s] for s in sans]
        keep = self.block_size - self.reserve
        return ids[-keep:] if len(ids) > keep else ids  # crop the oldest context, as nanoGPT's generate

    def continuation(self, san: str) -> list[int] | None:
        """The tokens that spell `san` after a prompt (char: the move and its space); None if unspellable."""
        if self.kind == "char":
            return self.tok.encode(san + " ")
        if self.kind == "vocab":
            return self.tok.encode_move(san)
        tid = self.tok.stoi.get(san)
        return None if tid is None else [tid]

    def text(self, ids: Sequence[int]) -> str:
        if self.kind == "char":
            return self.tok.decode(ids)
        if self.kind == "vocab":
            return self.tok.move_text(ids)
        return self.tok.itos[ids[0]] if ids else ""


def _rng(seed: int, ply: int, attempt: int) -> np.random.Generator:
    return np.random.default_rng([seed, ply, attempt])


def sample_index(logp: np.ndarray, rng: np.random.Generator) -> int:
    """Sample from log-probabilities by inverse CDF (one uniform draw per choice)."""
    p = np.exp(logp - logp.max())
    c = np.cumsum(p)
    return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), len(p) - 1))


def sample_rows(logp: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Vectorised `sample_index`: row i sampled from log-probs logp[i] with the uniform draw u[i]."""
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    c = np.cumsum(p, axis=1)
    idx = (c <= (u * c[:, -1])[:, None]).sum(axis=1)
    return np.minimum(idx, logp.shape[1] - 1)


@dataclass
class PlayerStats:
    moves: int = 0
    illegal: int = 0
    forfeits: int = 0

    @property
    def legal_rate(self) -> float:
        n = self.moves + self.illegal
        return self.moves / n if n else float("nan")


class ModelPlayer:
    """A GPT that answers a batch of positions at temperature T under a legal-move policy."""

    def __init__(
        self,
        model,
        tokenizer,
        temperature: float,
        policy: Policy = "paper",
        name: str = "model",
        attempts: int = 5,
        max_batch: int = 64,
        headers: dict[str, str] | None = None,
        protocol: str = "lab",
    ):
        if not temperature > 0:
            raise LabError(f"temperature must be > 0, got {temperature}")
        if policy not in POLICIES:
            raise LabError(f"unknown legal-move policy {policy!r} (choose paper or masked)")
        self.model = model.eval()
        self.device = next(model.parameters()).device
        if protocol not in PROTOCOLS:
            raise LabError(f"unknown protocol {protocol!r} (choose {' or '.join(PROTOCOLS)})")
        self.protocol = protocol
        # the paper's prompt and move rules apply to its own (sampling) policy
        self.codec = MoveCodec(tokenizer, model.config.block_size, protocol if policy == "paper" else "lab")
        self.temperature = float(temperature)
        self.policy = policy
        self.name = name
        self.attempts = attempts
        self.max_batch = max_batch
        self.stats = PlayerStats()
        self._headers = dict(headers or {})
        self.cache = PromptCache(max_games=max(128, 2 * max_batch))  # each live game's prompt keys/values

    def end_game(self, game_id: str) -> None:
        """The arena says a game ended: drop its cached prompt."""
        self.cache.forget(game_id)

    def headers(self) -> dict[str, str]:
        return {
            **self._headers,
            "Temperature": f"{self.temperature:g}",
            "Policy": self.policy,
            "Tokenizer": self.codec.kind,
        }

    def select(self, requests: Sequence[MoveRequest]) -> list[MoveDecision]:
        out: list[MoveDecision] = []
        for i in range(0, len(requests), self.max_batch):
            chunk = requests[i : i + self.max_batch]
            out += self._masked(chunk) if self.policy == "masked" else self._paper(chunk)
        for d in out:
            self.stats.illegal += d.illegal
            self.stats.moves += d.move is not None
            self.stats.forfeits += d.forfeit
        return out

    # -- masked: score all legal moves ----------------------------------------------------------------

    def legal_logprobs(self, requests: Sequence[MoveRequest]) -> list[tuple[list[chess.Move], np.ndarray]]:
        """For each position: its legal moves and log p_T of each (normalised over the legal moves)."""
        prompts = [self.codec.prompt(r.sans, start_ply(r.board, r.sans)) for r in requests]
        last, cache = self.cache.prefill(self.model, [r.game_id for r in requests], prompts, self.device)
        last_lp = torch.log_softmax(last / self.temperature, dim=-1).cpu().numpy()
        moves_per: list[list[chess.Move]] = []
        seqs_per: list[list[list[int]]] = []
        for r in requests:
            mv, sq = [], []
            for m in r.board.legal_moves:
                ids = self.codec.continuation(r.board.san(m))
                if ids is not None:
                    mv.append(m)
                    sq.append(ids)
            moves_per.append(mv)
            seqs_per.append(sq)
        scores = [
            np.array([last_lp[b, s[0]] for s in seqs], dtype=np.float64) for b, seqs in enumerate(seqs_per)
        ]
        if any(len(s) > 1 for seqs in seqs_per for s in seqs):
            self._score_rest(cache, seqs_per, scores)
        out = []
        for mv, sc in zip(moves_per, scores, strict=True):
            out.append((mv, sc - np.logaddexp.reduce(sc) if len(sc) else sc))
        return out

    def _score_rest(
        self, cache: RaggedCache, seqs_per: list[list[list[int]]], scores: list[np.ndarray]
    ) -> None:
        """Add the log-probs of every candidate's tokens after the first, all candidates of a row packed."""
        B = len(seqs_per)
        S = max(1, max(sum(len(s) - 1 for s in seqs) for seqs in seqs_per))
        dev = self.device
        tokens = torch.zeros(B, S, dtype=torch.long)
        offsets = torch.zeros(B, S, dtype=torch.long)
        seen = torch.zeros(B, S, S, dtype=torch.bool)
        seen[:, range(S), range(S)] = True
        where: list[list[tuple[int, int]]] = []  # per row: (start, n_inputs) of each candidate
        for b, seqs in enumerate(seqs_per):
            at, spans = 0, []
            for s in seqs:
                n = len(s) - 1  # inputs: all tokens but the last (the last is only predicted)
                if n:
                    tokens[b, at : at + n] = torch.tensor(s[:-1])
                    offsets[b, at : at + n] = torch.arange(n)
                    seen[b, at : at + n, at : at + n] = torch.ones(n, n, dtype=torch.bool).tril()
                spans.append((at, n))
                at += n
            where.append(spans)
        logits = extend(self.model, cache, tokens.to(dev), offsets.to(dev), seen.to(dev))
        lp = torch.log_softmax(logits / self.temperature, dim=-1).cpu().numpy()
        for b, seqs in enumerate(seqs_per):
            for j, (s, (at, n)) in enumerate(zip(seqs, where[b], strict=True)):
                if n:
                    scores[b][j] += float(lp[b, np.arange(at, at + n), s[1:]].sum())

    def _masked(self, requests: Sequence[MoveRequest]) -> list[MoveDecision]:
        out = []
        for r, (moves, lp) in zip(requests, self.legal_logprobs(requests), strict=True):
            if not moves:
                out.append(MoveDecision(None, forfeit=True))
                continue
            k = sample_index(lp, _rng(r.seed, len(r.sans), 0))
            out.append(MoveDecision(moves[k]))
        return out

    # -- paper: sample, resample on illegal, forfeit -------------------------------------------------

    def sample_texts(
        self, cache: RaggedCache, last: torch.Tensor, rows: list[int], rngs: list[np.random.Generator]
    ) -> list[str]:
        """Sample one move string per row in `rows` token by token (until a stop token).

        `cache` must have room for max_tokens decoded tokens (prefill's `extra`); it is left as it was.
        """
        whole = len(rows) == cache.lengths.shape[0]
        if whole:  # decode in place, then rewind (the prefix is never overwritten): no copies
            sub, saved = cache, (cache.used, cache.lengths)
        else:
            sub = cache.select(torch.tensor(rows, device=self.device))
        logits = last[rows]
        n = len(rows)
        out: list[list[int]] = [[] for _ in rows]
        done = np.zeros(n, dtype=bool)
        ones = torch.ones(n, 1, 1, dtype=torch.bool, device=self.device)
        zero = torch.zeros(n, 1, dtype=torch.long, device=self.device)
        for _step in range(self.codec.max_tokens):
            lp = torch.log_softmax(logits / self.temperature, dim=-1).double().cpu().numpy()
            u = np.array([rngs[i].random() if not done[i] else 0.0 for i in range(n)])
            nxt = sample_rows(lp, u)
            for i in np.flatnonzero(~done):
                t = int(nxt[i])
                if self.codec.lead_space and t == self.codec.space and not out[i]:
                    continue  # the paper's Black prompt: the model writes the space before its move
                if t in self.codec.stop:
                    done[i] = True
                    if self.codec.kind != "move" and t != self.codec.space:
                        out[i] = []  # the game-start mark inside a move: not a move (illegal)
                else:
                    out[i].append(t)
                    done[i] = t in self.codec.final
            if done.all() or self.codec.max_tokens == 1:
                break
            tok = torch.as_tensor(nxt, device=self.device)[:, None]
            logits = extend(self.model, sub, tok, zero, ones, append=True)[:, -1, :]
        if whole:
            cache.valid[:, saved[0] :] = False
            cache.used, cache.lengths = saved
        texts = []
        for i in range(n):
            # a char sample with no space within the limit is a runaway, hence illegal
            runaway = self.codec.kind != "move" and not done[i]
            texts.append("" if runaway else self.codec.text(out[i]))
        return texts

    def _paper(self, requests: Sequence[MoveRequest]) -> list[MoveDecision]:
        prompts = [self.codec.prompt(r.sans, start_ply(r.board, r.sans)) for r in requests]
        keys = [r.game_id for r in requests]
        last, cache = self.cache.prefill(self.model, keys, prompts, self.device, extra=self.codec.max_tokens)
        result: list[MoveDecision | None] = [None] * len(requests)
        illegal = [0] * len(requests)
        pending = list(range(len(requests)))
        for attempt in range(self.attempts):
            if not pending:
                break
            rngs = [_rng(requests[b].seed, len(requests[b].sans), attempt) for b in pending]
            texts = self.sample_texts(cache, last, pending, rngs)
            still = []
            for b, text in zip(pending, texts, strict=True):
                if self.protocol == "paper" and text in ("1-0", "0-1"):  # the paper's code: a resignation
                    result[b] = MoveDecision(None, illegal=illegal[b], forfeit=True, resign=True)
                    continue
                if self.protocol == "paper":
                    text = text.replace("+", "")  # as the paper's code: `+` stripped from the model's moves
                move = parse_move(requests[b].board, text)
                if move is None:
                    illegal[b] += 1
                    still.append(b)
                else:
                    san = text if self.protocol == "paper" else None
                    result[b] = MoveDecision(move, illegal=illegal[b], san=san)
            pending = still
        for b in pending:
            if result[b] is None:
                result[b] = MoveDecision(None, illegal=illegal[b], forfeit=True)
        return [r for r in result if r is not None]


def parse_move(board: chess.Board, text: str) -> chess.Move | None:
    """The legal move a SAN string names, or None (python-chess's SAN parser, as the paper's code)."""
    if not text or text.strip() != text:
        return None
    try:
        move = board.parse_san(text)
    except ValueError:
        return None
    return move if move and move in board.legal_moves else None
