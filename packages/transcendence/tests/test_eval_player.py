"""The model as a player: argmax at T -> 0, the masked policy's legality, the paper policy's forfeit."""

import random
import sys
from pathlib import Path

import chess
import numpy as np
import pytest
import torch

from lab_shared.errors import LabError
from lab_transcendence.arena import MoveRequest
from lab_transcendence.player import ModelPlayer, movetext, parse_move, sample_index
from lab_transcendence.tokenizer import get_tokenizer

sys.path.insert(0, str(Path(__file__).parent))  # eval_helpers (pytest runs with importlib mode)
from eval_helpers import game_positions, memorized_model, stuck_model, tiny_model  # noqa: E402


def _positions(n: int, seed: int = 0) -> list[MoveRequest]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        board, sans = chess.Board(), []
        for _ in range(rng.randrange(0, 30)):
            legal = list(board.legal_moves)
            if not legal:
                break
            m = rng.choice(legal)
            sans.append(board.san(m))
            board.push(m)
        if not board.is_game_over():
            out.append(MoveRequest(f"g{i}", board, sans, seed=i))
    return out


def test_prompt_format():
    tok = get_tokenizer("char")
    p = ModelPlayer(tiny_model(), tok, 1.0)
    assert movetext(["e4", "e5", "Nf3"]) == "1.e4 e5 2.Nf3"
    assert tok.decode(p.codec.prompt([])) == ";1."
    assert tok.decode(p.codec.prompt(["e4", "e5"])) == ";1.e4 e5 2."
    assert tok.decode(p.codec.prompt(["e4"])) == ";1.e4 "


def test_batched_scores_match_single_and_full_forward():
    tok = get_tokenizer("char")
    model = tiny_model()
    p = ModelPlayer(model, tok, 0.7, "masked")
    reqs = _positions(5)
    batched = p.legal_logprobs(reqs)
    for r, (moves, lp) in zip(reqs, batched, strict=True):
        _, single = p.legal_logprobs([r])[0]
        np.testing.assert_allclose(lp, single, atol=1e-4)
        prompt = p.codec.prompt(r.sans)
        ref = []
        for m in moves:
            cont = p.codec.continuation(r.board.san(m))
            with torch.no_grad():
                logits = model(torch.tensor([prompt + cont]))[0] / 0.7
            lsm = torch.log_softmax(logits, -1)
            ref.append(sum(lsm[len(prompt) - 1 + i, t].item() for i, t in enumerate(cont)))
        ref = np.array(ref) - np.logaddexp.reduce(ref)
        np.testing.assert_allclose(lp, ref, atol=1e-4)


def test_prompt_cache_across_moves_matches_fresh_computation():
    tok = get_tokenizer("char")
    model = tiny_model(3)
    cached = ModelPlayer(model, tok, 0.8, "masked")
    game = _positions(1, seed=11)[0]
    board = chess.Board()
    for ply, san in enumerate(game.sans[:12]):
        if ply % 2 == 0:  # the model's turns: its cache grows by two moves each time
            req = MoveRequest("g", board.copy(), game.sans[:ply], 0)
            _, lp = cached.legal_logprobs([req])[0]
            _, fresh = ModelPlayer(model, tok, 0.8, "masked").legal_logprobs([req])[0]
            np.testing.assert_allclose(lp, fresh, atol=1e-4)
        board.push_san(san)
    assert "g" in cached.cache.store
    cached.end_game("g")
    assert "g" not in cached.cache.store


def test_low_temperature_is_argmax():
    tok = get_tokenizer("char")
    model = memorized_model()
    reqs = _positions(3, seed=3) + [
        MoveRequest(f"m{i}", b, s, i) for i, (b, s) in enumerate(game_positions())
    ]
    # masked: at T -> 0 the sample is the argmax of the legal moves' scores, whatever the random stream
    cold = ModelPlayer(model, tok, 1e-4, "masked")
    scored = cold.legal_logprobs(reqs)
    masked_pick = {}
    for seed_shift in range(3):
        shifted = [MoveRequest(r.game_id, r.board, r.sans, r.seed + seed_shift) for r in reqs]
        for r, (moves, lp), d in zip(reqs, scored, cold.select(shifted), strict=True):
            assert d.move == moves[int(np.argmax(lp))]
            masked_pick[r.game_id] = d.move
    # paper: the sampled characters are the greedy decode of a full forward pass
    p = ModelPlayer(model, tok, 1e-4, "paper")
    from lab_transcendence.batching import prefill

    agreed = 0
    for r in reqs:
        prompt = p.codec.prompt(r.sans)
        ids = list(prompt)
        for _ in range(p.codec.max_tokens):
            with torch.no_grad():
                nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
            if nxt in p.codec.stop:
                break
            ids.append(nxt)
        want = tok.decode(ids[len(prompt) :]) if nxt == p.codec.space else ""
        last, cache = prefill(model, [prompt], p.device, extra=p.codec.max_tokens)
        got = p.sample_texts(cache, last, [0], [np.random.default_rng(0)])[0]
        assert got == want
        legal = parse_move(r.board, got)
        if legal is not None:  # greedy decoding and the masked policy agree at T -> 0
            assert legal == masked_pick[r.game_id]
            agreed += 1
    assert agreed >= 10  # the memorised game's moves


def test_masked_policy_only_plays_legal_moves():
    tok = get_tokenizer("char")
    p = ModelPlayer(tiny_model(2), tok, 1.5, "masked")
    reqs = _positions(20, seed=5)
    for r, d in zip(reqs, p.select(reqs), strict=True):
        assert d.move in r.board.legal_moves and d.illegal == 0 and not d.forfeit
    assert p.stats.legal_rate == 1.0


def test_paper_policy_forfeits_after_five_illegal_samples():
    tok = get_tokenizer("char")
    p = ModelPlayer(stuck_model(), tok, 1.0, "paper")
    reqs = _positions(4)
    for d in p.select(reqs):
        assert d.move is None and d.forfeit and d.illegal == 5
    assert p.stats.forfeits == 4 and p.stats.legal_rate == 0.0


def test_move_tokenizer_player():
    tok = get_tokenizer("move")
    model = tiny_model(0, "move")
    reqs = _positions(4)
    for d, r in zip(ModelPlayer(model, tok, 1.0, "masked").select(reqs), reqs, strict=True):
        assert d.move in r.board.legal_moves
    for d in ModelPlayer(model, tok, 1.0, "paper").select(reqs):
        assert d.forfeit or d.move is not None


def test_bad_temperature_and_policy():
    tok = get_tokenizer("char")
    with pytest.raises(LabError, match="temperature"):
        ModelPlayer(tiny_model(), tok, 0.0)
    with pytest.raises(LabError, match="policy"):
        ModelPlayer(tiny_model(), tok, 1.0, "greedy")


def test_sample_index_follows_distribution():
    rng = np.random.default_rng(0)
    lp = np.log(np.array([0.7, 0.2, 0.1]))
    counts = np.bincount([sample_index(lp, rng) for _ in range(4000)], minlength=3) / 4000
    np.testing.assert_allclose(counts, [0.7, 0.2, 0.1], atol=0.03)
