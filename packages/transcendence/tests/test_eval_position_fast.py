"""The position player's optimized batched path against the plain reference (the trained model on one
encoded board, moves.legal_indices, a log-softmax over the legal moves, player.sample_index) on fixed
seeds: the same moves and the same probabilities to float tolerance, on positions with promotions,
under-promotions, castling, en passant, Black to move, mate and stalemate, and repeated positions."""

import random

import chess
import numpy as np
import pytest
import torch

from lab_transcendence.arena import MoveRequest
from lab_transcendence.board import encode
from lab_transcendence.moves import legal_indices
from lab_transcendence.player import _rng, sample_index
from lab_transcendence.position_config import PositionConfig
from lab_transcendence.position_inference import FastPolicy, encode_batch, planes
from lab_transcendence.position_model import PositionPolicy
from lab_transcendence.position_player import PositionPlayer, sample_padded

FENS = [
    "r3k2r/pPppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq - 0 1",  # castling, b7xa8/c8 promotions
    "r3k2r/pPppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R b KQkq - 0 1",  # the same, Black to move
    "8/P6k/8/8/8/8/p6K/8 b - - 0 1",  # Black promotes (under-promotions too)
    "8/P6k/8/8/8/8/p6K/8 w - - 0 1",
    "rnbqkbnr/ppp1p1pp/8/3pPp2/8/8/PPPP1PPP/RNBQKBNR w KQkq f6 0 3",  # e5xf6 en passant
    "rnbqkbnr/pppp1ppp/8/8/3PpP2/8/PPP1P1PP/RNBQKBNR b KQkq f3 0 3",  # e4xf3 en passant, Black
    "r3k3/8/8/8/8/8/8/4K2R w Kq - 0 1",  # one castling right each
    "4k3/8/8/8/8/8/8/4K2R b K - 0 1",
    "r3k3/8/8/8/8/8/8/5K1R b q - 0 1",  # Black castles queen side
    "7k/5Q2/6K1/8/8/8/8/8 b - - 0 1",  # stalemate: no legal move
    "R6k/6pp/8/8/8/8/8/6K1 b - - 0 1",  # checkmate: no legal move
    "1r5k/P7/8/8/8/8/8/7K w - - 0 1",  # a7-a8 and a7xb8 with every promotion
]


def _model(arch: str) -> PositionPolicy:
    torch.manual_seed(1)
    m = PositionPolicy(PositionConfig(arch=arch, width=16, layers=2, heads=2, head_dim=8))
    for mod in m.modules():  # trained-looking batch norms, so folding is not a no-op
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.5)
            mod.running_var.uniform_(0.3, 3.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.normal_(0, 0.3)
    return m.eval()


def _boards(n: int, seed: int = 5) -> list[chess.Board]:
    rng, out, b = random.Random(seed), [chess.Board(f) for f in FENS], chess.Board()
    while len(out) < n:
        if b.is_game_over() or b.ply() > 80:
            b = chess.Board()
        out.append(b.copy(stack=False))
        b.push(rng.choice(list(b.legal_moves)))
    return out + [chess.Board()] * 4 + [chess.Board(FENS[4])] * 2  # repeated positions


def _reference(model, board: chess.Board, temperature: float) -> tuple[list[chess.Move], np.ndarray]:
    moves, ix = legal_indices(board)
    if not moves:
        return moves, np.zeros(0)
    with torch.no_grad():
        logits = model(torch.from_numpy(encode(board)[None]))[0].double()
    lp = torch.log_softmax(logits[torch.from_numpy(ix)] / temperature, 0)
    return moves, lp.numpy()


def test_batch_encoding_and_planes_equal_the_reference():
    boards = _boards(300)
    enc = np.stack([encode(b) for b in boards])
    assert np.array_equal(encode_batch(boards), enc)
    ref = PositionPolicy(PositionConfig(width=8, layers=1))._planes(torch.from_numpy(enc))
    assert torch.equal(torch.from_numpy(planes(enc)), ref.reshape(len(enc), 18, 64).transpose(1, 2))


@pytest.mark.parametrize("arch", ["cnn", "transformer"])
def test_fast_logits_equal_the_model(arch):
    model = _model(arch)
    enc = encode_batch(_boards(120))
    fast = FastPolicy(model)
    with torch.no_grad():
        for rows in (enc, enc[:1], enc[7:8]):  # a batch and batches of one
            want = model(torch.from_numpy(rows))
            assert torch.allclose(fast(rows), want, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("arch,temperature", [("cnn", 1.0), ("cnn", 0.3), ("transformer", 1.0)])
def test_batched_player_equals_the_reference_path(arch, temperature):
    model = _model(arch)
    boards = _boards(60)
    player = PositionPlayer(model, temperature)
    reqs = [MoveRequest(f"g{i}", b, ["e4"] * (i % 7), seed=11 + i) for i, b in enumerate(boards)]
    batched = player.select(reqs)
    scored = player.legal_logprobs(boards)
    agree = 0
    for r, dec, (moves, lp) in zip(reqs, batched, scored, strict=True):
        ref_moves, ref_lp = _reference(model, r.board, temperature)
        assert moves == ref_moves
        assert np.allclose(lp, ref_lp, atol=1e-4 / temperature)
        if not ref_moves:
            assert dec.move is None and dec.forfeit
            continue
        want = ref_moves[sample_index(ref_lp, _rng(r.seed, len(r.sans), 0))]
        agree += dec.move == want
    played = sum(1 for b in boards if any(True for _ in b.legal_moves))
    assert agree == played  # every game draws the reference's move
    assert [d.move for d in batched] == [player.select([r])[0].move for r in reqs]  # one game at a time


def test_promotions_castling_en_passant_are_scored_and_playable():
    model = _model("cnn")
    player = PositionPlayer(model, 1.0)
    boards = [chess.Board(f) for f in FENS]
    for b, (moves, lp) in zip(boards, player.legal_logprobs(boards), strict=True):
        assert moves == list(b.legal_moves)
        if moves:
            assert np.isclose(np.exp(lp).sum(), 1.0) and np.isfinite(lp).all()
    names = {m.uci() for b in boards for m in b.legal_moves}
    assert {"b7a8n", "b7b8r", "a2a1b", "e5f6", "e4f3", "e1g1", "e1c1", "e8g8", "e8c8", "a7b8q"} <= names
    greedy = player.greedy(boards)
    for b, g in zip(boards, greedy, strict=True):
        ref_moves, ref_lp = _reference(model, b, 1.0)
        if not ref_moves:
            assert g is None
            continue
        top = np.sort(ref_lp)[-2:] if len(ref_lp) > 1 else ref_lp
        if len(ref_lp) == 1 or top[1] - top[0] > 1e-4:  # no near tie: the same argmax
            assert g == ref_moves[int(np.argmax(ref_lp))]


def test_sample_padded_equals_sample_index():
    rng = np.random.default_rng(0)
    counts = np.array([1, 5, 30, 7, 2, 30])
    lp = np.full((len(counts), 30), -np.inf)
    for i, n in enumerate(counts):
        lp[i, :n] = rng.normal(0, 1 if i % 2 else 300, n)  # soft and near one-hot rows (underflow)
        lp[i, :n] -= np.logaddexp.reduce(lp[i, :n])
    for seed in range(50):
        u = np.array([_rng(seed, i, 0).random() for i in range(len(counts))])
        got = sample_padded(lp, u, counts)
        for i, n in enumerate(counts):
            r = _rng(seed, i, 0)
            assert got[i] == sample_index(lp[i, :n], r)
