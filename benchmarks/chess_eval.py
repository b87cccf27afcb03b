"""Benchmark chess_eval: model-side moves/s over 32 concurrent games, batched, vs one game at a time.

The baseline is the paper's loop: one game at a time, nanoGPT-style sampling that re-runs the whole
prompt for every character (no KV cache). Ours answers the positions of all 32 live games in one batched
prefill plus cached decoding (lab_transcendence.player). Both sample at T = 0.001 with the paper policy
and one attempt, so both do exactly the same work (the same greedy characters) on the same positions;
the positions come from 32 recorded games, so Stockfish is not part of the timing. Also shown: our
player one game at a time (the KV cache alone) and the masked policy batched.

    .venv/bin/python benchmarks/chess_eval.py [--model DIR] [--plies 60] [--full]
"""

from __future__ import annotations

import argparse
import random
import time

import chess
import numpy as np
import torch


def recorded_games(n: int, plies: int, seed: int = 0) -> list[list[str]]:
    """n games of random legal moves (SAN), played out to `plies` where possible."""
    rng = random.Random(seed)
    games = []
    while len(games) < n:
        board, sans = chess.Board(), []
        for _ in range(plies):
            legal = list(board.legal_moves)
            if not legal:
                break
            m = rng.choice(legal)
            sans.append(board.san(m))
            board.push(m)
        if len(sans) == plies:
            games.append(sans)
    return games


def paper_loop_move(model, codec, board, sans, temperature: float, rng) -> str:
    """The paper's sampling: regenerate from the full (cropped) prompt for every character, no cache."""
    from lab_transcendence.player import sample_index

    ids = codec.prompt(sans)
    out = []
    for _ in range(codec.max_tokens):
        x = torch.tensor([ids[-model.config.block_size :]], device=next(model.parameters()).device)
        with torch.no_grad():
            logits = model(x)[0, -1].float()
        lp = torch.log_softmax(logits / temperature, -1).cpu().numpy().astype(np.float64)
        t = sample_index(lp, rng)
        if t in codec.stop:
            break
        out.append(t)
        ids.append(t)
    return codec.text(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="exported model folder (default: an untrained `small` preset GPT)")
    ap.add_argument("--games", type=int, default=32)
    ap.add_argument("--plies", type=int, default=50, help="plies per game (prompt lengths grow with them)")
    ap.add_argument("--every", type=int, default=2, help="time every n-th ply of the games")
    ap.add_argument("--full", action="store_true", help="every ply of 80-ply games")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.full:
        args.plies, args.every = 80, 1
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads and args.device == "cpu":
        torch.set_num_threads(args.threads)
    from lab_transcendence.arena import MoveRequest
    from lab_transcendence.player import ModelPlayer

    if args.model:
        from lab_transcendence.export import load_model

        model, tok, _ = load_model(args.model, args.device if args.device != "auto" else "cpu")
        label = args.model
    else:
        from lab_transcendence.model import GPT, preset_config
        from lab_transcendence.tokenizer import get_tokenizer

        torch.manual_seed(0)
        tok = get_tokenizer("char")
        model = GPT(preset_config("small", tok.vocab_size)).eval().to(args.device)
        label = "untrained `small` preset (4 layers, d 128, context 255)"
    T = 0.001
    games = recorded_games(args.games, args.plies)
    rounds = []
    for p in range(0, args.plies, args.every):
        reqs = []
        for g, sans in enumerate(games):
            board = chess.Board()
            for s in sans[:p]:
                board.push_san(s)
            reqs.append(MoveRequest(f"g{g}", board, sans[:p], g))
        rounds.append(reqs)
    n_moves = sum(len(r) for r in rounds)
    batched = ModelPlayer(model, tok, T, "paper", attempts=1, max_batch=args.games)
    single = ModelPlayer(model, tok, T, "paper", attempts=1, max_batch=1)
    masked = ModelPlayer(model, tok, T, "masked", max_batch=args.games)
    batched.select(rounds[0][:2])  # warm up

    def timed(fn) -> tuple[float, list]:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    t_batch, out_batch = timed(lambda: [d for r in rounds for d in batched.select(r)])
    t_single, out_single = timed(lambda: [d for r in rounds for req in r for d in single.select([req])])
    t_paper, out_paper = timed(
        lambda: [
            paper_loop_move(model, batched.codec, req.board, req.sans, T, np.random.default_rng(0))
            for r in rounds
            for req in r
        ]
    )
    t_masked, _ = timed(lambda: [d for r in rounds for d in masked.select(r)])
    from lab_transcendence.player import parse_move

    agree = sum(  # the paper's loop gives text: the same move, or both not a legal move
        d.move == parse_move(req.board, txt)
        for req, d, txt in zip([q for r in rounds for q in r], out_batch, out_paper, strict=True)
    )
    same = sum(a.move == b.move for a, b in zip(out_batch, out_single, strict=True))
    rate = {
        k: n_moves / t
        for k, t in (("batched", t_batch), ("single", t_single), ("paper", t_paper), ("masked", t_masked))
    }
    print(
        f"model: {label}; {args.games} games, {len(rounds)} rounds (plies 0..{args.plies - 1} every "
        f"{args.every}), {n_moves} moves, T={T}, torch threads {torch.get_num_threads()}"
    )
    print(f"  paper's loop, one game at a time, no KV cache : {rate['paper']:8.1f} moves/s")
    print(f"  ours, one game at a time (KV cache only)      : {rate['single']:8.1f} moves/s")
    print(f"  ours, {args.games} games batched + KV cache          : {rate['batched']:8.1f} moves/s")
    print(f"  ours, {args.games} games batched, masked policy       : {rate['masked']:8.1f} moves/s")
    print(f"  same moves: batched vs single {same}/{n_moves}; batched vs paper's loop {agree}/{n_moves}")
    ratio = rate["batched"] / rate["paper"]
    print(
        f"RESULT chess_eval: {ratio:.1f}x model-side moves/s, {args.games} games batched vs one at a time "
        f"(paper's loop) (target: >= 8x on CPU)"
    )


if __name__ == "__main__":
    main()
