"""Synthetic experts: their policy, determinism of the corpus, resume, measured ratings."""

import json
import random

import chess
import pytest

from lab_shared.tools import find_stockfish
from lab_transcendence import synth
from lab_transcendence.lichess import load_games
from lab_transcendence.synth import Expert, SynthSettings, expert_move, fit_elo, generate_corpus, open_engine

pytestmark = pytest.mark.stockfish


@pytest.fixture(scope="module")
def engine():
    eng = open_engine(find_stockfish())
    yield eng
    eng.quit()


def test_blind_spot_never_moved_unless_forced(engine):
    rng = random.Random(0)
    knightless = Expert("e", random_rate=0.5, blind_spot="N", depth=1)
    board = chess.Board()
    for _ in range(40):
        if board.is_game_over():
            break
        legal = list(board.legal_moves)
        move = expert_move(knightless, board, engine, rng, game="blind")
        others = [m for m in legal if board.piece_type_at(m.from_square) != chess.KNIGHT]
        if others and board.turn == chess.WHITE:
            assert board.piece_type_at(move.from_square) != chess.KNIGHT
        board.push(move)
    king_and_knight = chess.Board("7k/8/8/8/8/8/1N6/K7 w - - 0 1")
    moves = {expert_move(knightless, king_and_knight, engine, random.Random(i), game=i) for i in range(10)}
    assert all(king_and_knight.piece_type_at(m.from_square) == chess.KING for m in moves)
    kingless = Expert("k", random_rate=0.0, blind_spot="K", depth=1)
    lone_king = chess.Board("k7/8/8/8/8/8/8/K7 w - - 0 1")  # only king moves exist: forced
    assert (
        lone_king.piece_type_at(expert_move(kingless, lone_king, engine, rng, game="f").from_square)
        == chess.KING
    )


def test_corpus_is_deterministic_for_a_seed(tmp_path):
    sf = find_stockfish()
    s = SynthSettings(players=3, games=8, seed=1, depth=1, rating_games=0)
    m1 = generate_corpus(tmp_path / "a", s, sf, workers=1, chunk_games=3, show_progress=False)
    m2 = generate_corpus(tmp_path / "b", s, sf, workers=2, chunk_games=3, show_progress=False)
    pgn_a = (tmp_path / "a" / "games.pgn").read_text()
    assert pgn_a == (tmp_path / "b" / "games.pgn").read_text()
    assert m1["games_kept"] == m2["games_kept"] == 8 and m1["synthetic"]
    other = SynthSettings(players=3, games=8, seed=2, depth=1, rating_games=0)
    generate_corpus(tmp_path / "c", other, sf, workers=1, show_progress=False)
    assert (tmp_path / "c" / "games.pgn").read_text() != pgn_a
    games, meta = load_games(tmp_path / "a")
    assert len(games) == 8 and meta["tokenizer"] == "char"
    experts = json.loads((tmp_path / "a" / "experts.json").read_text())["experts"]
    assert len({e["blind_spot"] for e in experts}) == 3 and len({e["random_rate"] for e in experts}) == 3


def test_corpus_resumes_after_interruption(tmp_path, monkeypatch):
    sf = find_stockfish()
    s = SynthSettings(players=2, games=9, seed=3, depth=1, rating_games=0)
    generate_corpus(tmp_path / "ref", s, sf, workers=1, chunk_games=3, show_progress=False)
    real = synth.play_many

    def interrupted(tasks, stockfish, workers=1, backend=None):
        for n, item in enumerate(real(tasks, stockfish, workers, backend)):
            if n == 7:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(synth, "play_many", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_corpus(tmp_path / "run", s, sf, workers=1, chunk_games=3, show_progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "chunks").iterdir()) == [
        "games-00000.pgn",
        "games-00001.pgn",
    ]
    monkeypatch.setattr(synth, "play_many", real)
    generate_corpus(tmp_path / "run", s, sf, workers=1, chunk_games=3, show_progress=False)
    assert (tmp_path / "run" / "games.pgn").read_text() == (tmp_path / "ref" / "games.pgn").read_text()


def test_ratings_are_measured_against_anchors(tmp_path):
    s = SynthSettings(players=2, games=4, seed=0, depth=1, rating_games=2, anchors=[1])
    meta = generate_corpus(tmp_path / "r", s, find_stockfish(), workers=2, show_progress=False)
    doc = json.loads((tmp_path / "r" / "experts.json").read_text())
    assert doc["anchors"] == [{"name": "stockfish-skill1", "level": 1, "rating": 1554}]
    games_vs_anchor = doc["crosstable"]["expert0"]["stockfish-skill1"][1]
    assert games_vs_anchor == 2
    ratings = meta["expert_ratings"]
    assert all(isinstance(r, float) for r in ratings.values())
    assert meta["max_rating"] == max(ratings.values())
    header = (tmp_path / "r" / "games.pgn").read_text().split("\n\n")[0]
    assert f'[WhiteElo "{round(ratings["expert0"])}"]' in header


def test_fit_elo():
    # a beats the 1500 anchor 3 of 4, b loses 3 of 4: a above, b below, symmetric
    recs = (
        [("a", "anchor", 1.0)] * 3
        + [("a", "anchor", 0.0)]
        + [("b", "anchor", 0.0)] * 3
        + [("b", "anchor", 1.0)]
    )
    fit = fit_elo(recs, {"anchor": 1500.0}, prior_sd=1e6)
    assert fit.ratings["a"] == pytest.approx(1500 + 400 * 0.47712, abs=0.5)  # 400 log10(3)
    assert fit.ratings["a"] - 1500 == pytest.approx(1500 - fit.ratings["b"], abs=0.01)
    # all losses: the prior keeps the rating finite
    fit2 = fit_elo([("c", "anchor", 0.0)] * 5, {"anchor": 1500.0})
    assert 500 < fit2.ratings["c"] < 1500 and fit2.se["c"] > 0


def test_vote_plays_the_plurality(engine):
    from lab_transcendence.synth import Vote

    board = chess.Board()
    for san in ("e4", "e5", "Bc4", "Nc6", "Qh5", "Nf6"):
        board.push_san(san)
    steady = Expert("s", random_rate=0.0, depth=3)
    best = steady.move(board, engine, random.Random(0), game="v")
    assert board.san(best) == "Qxf7#"
    noisy = Expert("n", random_rate=1.0)
    for i in range(5):  # two steady experts out-vote one random one
        assert Vote([noisy, steady, steady]).move(board, engine, random.Random(i), game="v") == best
    # one vote each: the first proposer's move
    lone = Vote([noisy, steady]).move(board, engine, random.Random(7), game="v")
    assert lone == expert_move(noisy, board, engine, random.Random(7))


def test_pool_finishes_when_the_parent_catches_sigterm(tmp_path):
    """Workers inherit the parent's Python handlers (Ray's driver and the trainer install one for SIGTERM):
    the pool's SIGTERM must still end them, or the pool's join waits forever on the engine thread."""
    import subprocess
    import sys
    import textwrap

    code = f"""
        import signal
        signal.signal(signal.SIGTERM, lambda *a: None)
        from lab_shared.tools import find_stockfish
        from lab_transcendence.synth import SynthSettings, generate_corpus
        s = SynthSettings(players=2, games=4, seed=0, depth=1, rating_games=2, anchors=[1])
        generate_corpus({str(tmp_path / "r")!r}, s, find_stockfish(), workers=2, show_progress=False)
        print("done")
    """
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]
