"""The per-position measure: expected Stockfish score of the model's T -> 0 move vs each expert's vs the vote.

On positions from held-out games of the experts' corpus (never trained on), each candidate move is scored
by Stockfish at a fixed depth: the win/draw/loss expectation (python-chess `analyse(..., info=INFO_SCORE)`
then `score.wdl()`) of the position after the move, from the mover's side. Candidates: the model's most
likely legal move, every expert's move (its own policy: random moves and blind spot included), and the
experts' plurality vote over those same proposals. Means come with 95% percentile-bootstrap intervals over
positions, and paired differences (model minus each) with theirs.
"""

from __future__ import annotations

import random

import chess
import chess.engine
import numpy as np

from lab_transcendence.synth import Expert


def move_value(engine: chess.engine.SimpleEngine, board: chess.Board, move: chess.Move, depth: int) -> float:
    """Expected score (1 win, 1/2 draw) for the side making `move`, Stockfish at `depth`."""
    mover = board.turn
    after = board.copy(stack=False)
    after.push(move)
    out = after.outcome(claim_draw=False)
    if out is not None:
        return 0.5 if out.winner is None else float(out.winner == mover)
    info = engine.analyse(after, chess.engine.Limit(depth=depth), info=chess.engine.INFO_SCORE)
    return float(info["score"].wdl(model="sf", ply=after.ply()).pov(mover).expectation())


def plurality(proposals: list[chess.Move]) -> chess.Move:
    """The most proposed move; ties go to the first proposer (synth.Vote's rule)."""
    counts: dict[chess.Move, int] = {}
    for m in proposals:
        counts[m] = counts.get(m, 0) + 1
    return max(proposals, key=lambda m: counts[m])


def held_out_positions(
    sans_games: list[list[str]], n: int, seed: int = 0, min_ply: int = 0
) -> list[chess.Board]:
    """n positions drawn uniformly (seeded) from the given games (replayed with python-chess)."""
    refs = [(g, p) for g, sans in enumerate(sans_games) for p in range(min_ply, len(sans))]
    rng = random.Random(f"positions-{seed}")
    picks = sorted(rng.sample(refs, min(n, len(refs))))
    boards: list[chess.Board] = []
    cache: dict[int, list[chess.Board]] = {}
    for g, p in picks:
        if g not in cache:
            cache.clear()
            b = chess.Board()
            seq = []
            for san in sans_games[g]:
                seq.append(b.copy(stack=False))
                b.push_san(san)
            cache[g] = seq
        boards.append(cache[g][p])
    return boards


def bootstrap_mean(x: np.ndarray, reps: int = 2000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(reps, len(x)))
    lo, hi = np.percentile(x[idx].mean(axis=1), [2.5, 97.5])
    return [float(lo), float(hi)]


def score_positions(
    boards: list[chess.Board],
    model_moves: list[chess.Move | None],
    experts: list[Expert],
    engine: chess.engine.SimpleEngine,
    depth: int = 8,
    seed: int = 0,
    model_name: str = "model",
) -> dict:
    """Expected score of each candidate on each position, means with bootstrap intervals, paired diffs."""
    names = [model_name, *[e.name for e in experts], "vote"]
    values = {n: [] for n in names}
    agree = {n: 0 for n in names}
    for i, (board, mm) in enumerate(zip(boards, model_moves, strict=True)):
        rng = random.Random(f"{seed}-pos-{i}")
        props = [e.move(board, engine, rng, game=("score", i)) for e in experts]
        cand = {model_name: mm if mm is not None else props[0], "vote": plurality(props)}
        cand.update({e.name: m for e, m in zip(experts, props, strict=True)})
        cache: dict[chess.Move, float] = {}
        for n in names:
            m = cand[n]
            if m not in cache:
                cache[m] = move_value(engine, board, m, depth)
            values[n].append(cache[m])
            agree[n] += m == cand["vote"]
    arr = {n: np.array(v) for n, v in values.items()}
    rows = {
        n: {
            "mean": float(arr[n].mean()),
            "ci95": bootstrap_mean(arr[n], seed=seed),
            "agrees_with_vote": agree[n] / len(boards),
        }
        for n in names
    }
    diffs = {
        f"{model_name} - {n}": {
            "mean": float((arr[model_name] - arr[n]).mean()),
            "ci95": bootstrap_mean(arr[model_name] - arr[n], seed=seed),
        }  # fmt: skip
        for n in names
        if n != model_name
    }
    return {"depth": depth, "positions": len(boards), "players": rows, "differences": diffs}
