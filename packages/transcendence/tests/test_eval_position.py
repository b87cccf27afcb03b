"""The position policy: board encoding, move space, fast corpus replay, shards, model, training, player."""

import random
from pathlib import Path

import chess
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lab_shared.errors import LabError
from lab_transcendence.board import encode
from lab_transcendence.cli import app
from lab_transcendence.moves import FROM_TO, MOVE_SPACE, index_move, legal_indices, move_index
from lab_transcendence.positions import (
    convert,
    load_positions,
    replay_game,
    replay_game_checked,
    transcript_sans,
)

runner = CliRunner()


def random_games(n: int, seed: int = 0, plies: int = 300) -> list[list[str]]:
    """Random legal games (long ones promote, castle and take en passant now and then)."""
    rng = random.Random(seed)
    games = []
    for _ in range(n):
        b, sans = chess.Board(), []
        while not b.is_game_over() and len(sans) < plies:
            moves = list(b.legal_moves)
            special = [m for m in moves if m.promotion or b.is_castling(m) or b.is_en_passant(m)]
            m = rng.choice(special) if special and rng.random() < 0.5 else rng.choice(moves)
            sans.append(b.san(m))
            b.push(m)
        games.append(sans)
    return games


def test_move_space_round_trip_and_size():
    assert MOVE_SPACE == 4096 + 3 * 22 == 4162
    for fen in (chess.STARTING_FEN, "8/P6k/8/8/8/8/p6K/8 w - - 0 1", "1n6/P6k/8/8/8/8/p6K/1N6 b - - 0 1"):
        b = chess.Board(fen)
        moves, idx = legal_indices(b)
        assert len(set(idx.tolist())) == len(moves)  # distinct moves, distinct indices
        for m, i in zip(moves, idx, strict=True):
            f, t, p = index_move(int(i), b.turn == chess.BLACK)
            assert (f, t) == (m.from_square, m.to_square)
            assert p == (m.promotion if m.promotion != chess.QUEEN else None)
    b = chess.Board("8/P6k/8/8/8/8/p6K/8 w - - 0 1")
    under = [
        move_index(m, False) for m in b.legal_moves if m.promotion in (chess.KNIGHT, chess.BISHOP, chess.ROOK)
    ]
    assert len(under) == 3 and all(FROM_TO <= i < MOVE_SPACE for i in under)


def test_encoding_is_the_side_to_moves_view():
    rng = random.Random(1)
    b = chess.Board()
    for _ in range(40):
        b.push(rng.choice(list(b.legal_moves)))
        x, y = encode(b), encode(b.mirror())  # mirror: ranks flipped, colours swapped, other side to move
        assert (x[:64] == y[:64]).all() and (x[65:] == y[65:]).all() and x[64] != y[64]
    # the mover's pieces are 1..6, the opponent's 7..12, whoever moves
    start = encode(chess.Board())
    assert start[chess.E1] == 6 and start[chess.E8] == 12 and list(start[65:69]) == [1, 1, 1, 1]


def test_fast_replay_equals_python_chess():
    for sans in random_games(60, seed=2):
        x, y = replay_game(sans)
        x2, y2 = replay_game_checked(sans)
        assert x.dtype == np.uint8 and y.dtype == np.uint16
        assert (x == x2).all() and (y == y2).all()


def test_fast_board_resolves_a_pinned_twin():
    # both knights attack d4, the e2 knight is pinned by the rook on e8: SAN says just "Nd4"
    b = chess.Board("4r2k/8/8/8/8/8/2N1N3/4K3 w - - 0 1")
    assert b.san(b.parse_san("Nd4")) == "Nd4"
    assert replay_game(["Nd4"], start=b)[1].tolist() == [move_index(chess.Move(chess.C2, chess.D4), False)]
    assert (replay_game(["Nd4"], start=b)[0] == encode(b)).all()
    with pytest.raises(ValueError):
        replay_game(["Qh5"])  # no queen can get there


def _corpus(tmp_path: Path, n: int = 40) -> Path:
    from lab_transcendence.lichess import IngestFilters, ingest

    games = random_games(n, seed=3, plies=120)
    text = ""
    for i, sans in enumerate(games):
        moves = " ".join((f"{j // 2 + 1}. " if j % 2 == 0 else "") + s for j, s in enumerate(sans))
        text += f'[Event "t"]\n[Round "{i}"]\n[Result "*"]\n\n{moves} *\n\n'
    (tmp_path / "g.pgn").write_text(text)
    ingest(tmp_path / "g.pgn", tmp_path / "corpus", IngestFilters(require_ratings=False), show_progress=False)
    return tmp_path / "corpus"


@pytest.fixture(scope="module")
def positions_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pos")
    corpus = _corpus(tmp)
    convert(corpus, tmp / "pos", workers=2, unit_games=7, val_every=5, show_progress=False)
    return tmp / "pos"


def test_convert_shards_resume_and_bad_input(positions_dir, tmp_path):
    from lab_transcendence.positions import corpus_texts

    arrays, meta = load_positions(positions_dir)
    texts, _ = corpus_texts(Path(meta["corpus"]))
    xs, ys = zip(*(replay_game_checked(transcript_sans(t)) for t in texts), strict=True)
    assert (arrays["x"] == np.concatenate(xs)).all() and (arrays["y"] == np.concatenate(ys)).all()
    assert meta["positions"] == len(arrays["y"]) and meta["games"] == 40 and meta["games_dropped"] == 0
    assert len(meta["shards"]) == 6 and isinstance(arrays["x"], np.ndarray)
    # a killed run: one shard and meta.json missing -> only that shard is made again, the same data
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(positions_dir, copy)
    (copy / "meta.json").unlink()
    (copy / "shard-00002.ply.npy").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in copy.glob("shard-00000.*")}
    convert(Path(meta["corpus"]), copy, workers=1, unit_games=7, val_every=5, show_progress=False)
    again, _ = load_positions(copy)
    assert (again["x"] == arrays["x"]).all()
    assert before == {p.name: p.stat().st_mtime_ns for p in copy.glob("shard-00000.*")}
    # not a data folder / not a positions folder / positions given to the transcript trainer: a LabError
    # (the `lab` entry point prints it as one line and exits 2)
    r = runner.invoke(app, ["data", "positions", str(tmp_path), "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, LabError) and "meta.json" in str(r.exception)
    assert not (tmp_path / "o").exists()
    with pytest.raises(LabError, match="not a positions folder"):
        load_positions(tmp_path)
    r = runner.invoke(app, ["train", "--data", str(positions_dir), "--max-steps", "1"])
    assert isinstance(r.exception, LabError) and "--model position" in str(r.exception)


@pytest.mark.parametrize("arch", ["cnn", "transformer"])
def test_model_shapes_and_masking(arch):
    from lab_transcendence.position_model import PositionConfig, PositionPolicy
    from lab_transcendence.position_player import PositionPlayer

    torch.manual_seed(0)
    m = PositionPolicy(PositionConfig(arch=arch, width=16, layers=1, heads=2, head_dim=8))
    boards = [chess.Board(), chess.Board("8/P6k/8/8/8/8/p6K/8 b - - 0 1")]
    x = torch.from_numpy(np.stack([encode(b) for b in boards]))
    assert m(x).shape == (2, MOVE_SPACE)
    for (moves, lp), b in zip(PositionPlayer(m, 1.0).legal_logprobs(boards), boards, strict=True):
        assert set(moves) == set(b.legal_moves) and abs(np.exp(lp).sum() - 1) < 1e-9
    cold = PositionPlayer(m, 0.001)
    assert cold.greedy(boards) == cold.greedy(boards)  # T -> 0 is the legal argmax, deterministic


def test_train_export_load_and_kinds(positions_dir, tmp_path, monkeypatch):
    from lab_shared.trainer import TrainerConfig
    from lab_transcendence.arena import MoveRequest
    from lab_transcendence.loading import load_any, model_kind, weights_hash
    from lab_transcendence.position_config import PositionConfig
    from lab_transcendence.position_player import PositionPlayer
    from lab_transcendence.train import ChessTrainConfig, train

    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    cfg = ChessTrainConfig(
        data=positions_dir,
        model="position",
        position=PositionConfig(width=16, layers=1, head_dim=8),
        trainer=TrainerConfig(
            max_steps=4, batch_size=32, lr=1e-3, eval_every=2, progress=False, device="cpu"
        ),
    )
    res = train(cfg, name="t")
    folder = Path(res["run_dir"]) / "model"
    assert res["model"] == "position" and res["step"] == 4 and 0 <= res["val_top1"] <= 1
    assert model_kind(folder) == "position" and len(weights_hash(folder)) == 16
    kind, model, tok, meta = load_any(folder)
    assert kind == "position" and tok is None and meta["kind"] == "position"
    board = chess.Board()
    dec = PositionPlayer(model, 0.5).select([MoveRequest("g", board, [], 0)])[0]
    assert dec.move in board.legal_moves
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"")
    with pytest.raises(LabError, match="unknown model_type"):
        model_kind(tmp_path / "bad")


def test_wrong_kind_for_a_command_is_one_error(positions_dir, tmp_path, monkeypatch):
    from lab_transcendence.export import export_model
    from lab_transcendence.loading import model_kind, require_kind
    from lab_transcendence.position_config import PositionConfig
    from lab_transcendence.position_model import PositionPolicy
    from lab_transcendence.position_train import export_position_model

    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    pos = export_position_model(
        PositionPolicy(PositionConfig(width=8, layers=1, head_dim=4)), tmp_path / "pm"
    )
    sys_path = Path(__file__).parent
    import sys

    sys.path.insert(0, str(sys_path))
    from eval_helpers import tiny_model

    gpt = export_model(tiny_model(), tmp_path / "gpt", "char")
    assert model_kind(pos) == "position" and model_kind(gpt) == "transcript"
    with pytest.raises(LabError, match="needs a transcript model"):
        require_kind(pos, ("transcript",), "x")
    for args in (["uci", "--model", str(pos), "--policy", "paper"],
                 ["eval", "--model", str(pos), "--policy", "paper", "--games", "1", "--levels", "1"]):  # fmt: skip
        r = runner.invoke(app, args)
        assert isinstance(r.exception, LabError) and "no paper policy" in str(r.exception), r.output
    assert not (tmp_path / "runs" / "chess-eval").exists() or not any(
        (tmp_path / "runs" / "chess-eval").rglob("games.jsonl")
    )


def test_uci_serves_a_position_model(tmp_path):
    import io

    from lab_transcendence.loading import load_any
    from lab_transcendence.position_config import PositionConfig
    from lab_transcendence.position_model import PositionPolicy
    from lab_transcendence.position_train import export_position_model
    from lab_transcendence.uci import UciEngine, serve

    torch.manual_seed(0)
    folder = export_position_model(
        PositionPolicy(PositionConfig(width=8, layers=1, head_dim=4)), tmp_path / "pm"
    )
    kind, model, tok, _ = load_any(folder)
    out = io.StringIO()
    serve(
        UciEngine(model, tok, 0.001),
        io.StringIO("uci\nisready\nposition startpos moves e2e4\ngo\nquit\n"),
        out,
    )
    best = [line for line in out.getvalue().splitlines() if line.startswith("bestmove")][0].split()[1]
    board = chess.Board()
    board.push_uci("e2e4")
    assert chess.Move.from_uci(best) in board.legal_moves
