"""Streaming ingest: filters, corrupt input, .zst, parallel == serial, resume after a crash, the CLI."""

import json
import random

import chess
import numpy as np
import pytest
import zstandard

from lab_shared.errors import LabError
from lab_transcendence import lichess
from lab_transcendence.lichess import (
    IngestFilters,
    ingest,
    lichess_style_game,
    load_games,
    time_control_class,
)
from lab_transcendence.tokenizer import get_tokenizer
from lab_transcendence.transcript import format_transcript


def random_game(rng: random.Random, max_plies: int = 120) -> tuple[list[str], str]:
    board, sans = chess.Board(), []
    while not board.is_game_over() and len(sans) < max_plies:
        move = rng.choice(list(board.legal_moves))
        sans.append(board.san(move))
        board.push(move)
    return sans, board.result() if board.is_game_over() else "1/2-1/2"


def make_dump(n: int = 60, seed: int = 0) -> tuple[str, list[tuple[str, int, int]]]:
    """n Lichess-style games with ratings 700..1400: (pgn text, [(transcript, white, black)])."""
    rng = random.Random(seed)
    text, games = [], []
    for i in range(n):
        sans, result = random_game(rng)
        w, b = rng.randrange(700, 1400), rng.randrange(700, 1400)
        text.append(lichess_style_game(sans, result, i, w, b))
        games.append((format_transcript(sans), w, b))
    return "".join(text), games


def decoded(out) -> list[str]:
    games, meta = load_games(out)
    tok = get_tokenizer(meta["tokenizer"])
    return [tok.decode(g) for g in games]


def test_rating_cap_on_both_players(tmp_path):
    text, games = make_dump()
    src = tmp_path / "dump.pgn"
    src.write_text(text)
    meta = ingest(src, tmp_path / "out", IngestFilters(max_elo=1000), show_progress=False)
    expected = [t for t, w, b in games if w <= 1000 and b <= 1000]
    assert decoded(tmp_path / "out") == expected
    assert meta["games_kept"] == len(expected)
    assert meta["games_dropped"] == {"rating_above_max": len(games) - len(expected)}
    assert meta["max_rating"] <= 1000
    assert sum(meta["rating_histogram"].values()) == 2 * len(expected)
    assert meta["tokens"] == sum(len(t) for t in expected)


def test_corrupt_file_skips_and_counts(tmp_path):
    rng = random.Random(3)
    good = [random_game(rng) for _ in range(6)]
    parts = [lichess_style_game(s, r, i, 900, 900) for i, (s, r) in enumerate(good)]
    bad = [
        '[Event "x"]\n[WhiteElo "?"]\n[BlackElo "900"]\n\n1. e4 e5 1-0\n\n',  # '?' rating
        '[Event "x"]\n[WhiteElo "900"]\n\n1. e4 e5 1-0\n\n',  # missing BlackElo header
        '[Event "x"]\n[WhiteElo "900"]\n[BlackElo "900"]\n\n1. e4 { [%clk 0:01:00] 1... e5 2. Nf3 1-0\n\n',
        '[Event "x"]\n[WhiteElo "900"]\n[BlackElo "900"]\n\n1. e4 e5 2. Ke3 Nc6 1-0\n\n',  # illegal Ke3
        '[Event "x"]\n[WhiteElo "900"]\n[BlackElo "900"]\n\n1. e4 e5 2. Nf3 Nc6 3. Bb\n\n',  # truncated
        "\x00\x13\xff garbage bytes \x89PNG\n\n",
        '[Event "x"]\n[WhiteElo "800"]\n[BlackElo "900"]\n[Variant "Chess960"]\n\n1. e4 e5 1-0\n\n',
    ]
    text = (
        parts[0]
        + bad[0]
        + parts[1]
        + bad[1]
        + parts[2]
        + bad[2]
        + parts[3]
        + bad[3]
        + parts[4]
        + bad[5]
        + bad[4]
        + parts[5]
        + bad[6]
    )
    src = tmp_path / "bad.pgn"
    src.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    meta = ingest(src, tmp_path / "v", IngestFilters(), validate=True, show_progress=False)
    assert decoded(tmp_path / "v") == [format_transcript(s) for s, _ in good]
    assert meta["games_dropped"] == {
        "missing_rating": 2, "unterminated_comment": 1, "illegal_move": 1, "truncated": 1, "no_headers": 1,
        "non_standard_start": 1,
    }  # fmt: skip
    assert meta["validation_mismatches"] == 0
    # the fast path cannot see the illegal move (no replay) but catches everything else
    fast = ingest(src, tmp_path / "f", IngestFilters(), validate=False, show_progress=False)
    assert fast["games_kept"] == len(good) + 1 and "illegal_move" not in fast["games_dropped"]


def test_filters_time_control_rated_plies():
    assert [time_control_class(t) for t in ("15+0", "60+0", "180+2", "600+0", "1800+20", "-")] == [
        "ultrabullet", "bullet", "blitz", "rapid", "classical", "correspondence",
    ]  # fmt: skip
    head = '[Event "{ev}"]\n[WhiteElo "900"]\n[BlackElo "900"]\n[TimeControl "{tc}"]\n\n'
    text = (
        head.format(ev="Rated Blitz game", tc="180+0") + "1. e4 e5 2. Nf3 Nc6 1-0\n\n"
        + head.format(ev="Casual Blitz game", tc="180+0") + "1. d4 d5 2. c4 e6 1-0\n\n"
        + head.format(ev="Rated Bullet game", tc="60+0") + "1. c4 e5 2. g3 Nc6 1-0\n\n"
        + head.format(ev="Rated Blitz game", tc="300+0") + "1. f4 1-0\n\n"
    )  # fmt: skip
    f = IngestFilters(rated_only=True, time_controls=["blitz"], min_plies=2)
    res = lichess.process_block(text, f, "char", validate=False)
    assert res.kept == 1 and dict(res.dropped) == {"not_rated": 1, "time_control": 1, "too_short": 1}
    with pytest.raises(LabError):
        IngestFilters(time_controls=["hyperbullet"]).check()


def test_zst_parallel_equals_serial_and_move_tokens(tmp_path):
    text, games = make_dump(80, seed=5)
    src = tmp_path / "dump.pgn.zst"
    src.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    m1 = ingest(src, tmp_path / "s", workers=1, block_chars=20_000, show_progress=False)
    m2 = ingest(src, tmp_path / "p", workers=2, block_chars=20_000, show_progress=False)
    assert len(m1["shards"]) > 3 and m1["games_kept"] == m2["games_kept"] == 80
    assert decoded(tmp_path / "s") == decoded(tmp_path / "p") == [t for t, _, _ in games]
    mv = ingest(src, tmp_path / "m", tokenizer="move", block_chars=20_000, show_progress=False)
    assert mv["dtype"] == "uint16" and decoded(tmp_path / "m") == [t for t, _, _ in games]
    assert mv["tokens"] * 4 < m1["tokens"]


def test_resume_after_crash(tmp_path, monkeypatch):
    text, games = make_dump(50, seed=7)
    src = tmp_path / "dump.pgn"
    src.write_text(text)
    real, calls = lichess.process_block, []

    def crashing(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(lichess, "process_block", crashing)
    with pytest.raises(KeyboardInterrupt):
        ingest(src, tmp_path / "out", block_chars=15_000, show_progress=False)
    progress = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert progress["blocks_done"] == 2 and not (tmp_path / "out" / "meta.json").exists()
    monkeypatch.setattr(lichess, "process_block", real)
    calls.clear()
    meta = ingest(src, tmp_path / "out", block_chars=15_000, show_progress=False)
    assert decoded(tmp_path / "out") == [t for t, _, _ in games] and meta["games_seen"] == 50
    assert not (tmp_path / "out" / "progress.json").exists()
    # finished: a rerun returns the meta; other settings are refused without --force
    assert ingest(src, tmp_path / "out", block_chars=15_000, show_progress=False) == meta
    with pytest.raises(LabError):
        ingest(src, tmp_path / "out", IngestFilters(max_elo=900), block_chars=15_000, show_progress=False)


def test_max_games_and_missing_file(tmp_path):
    text, games = make_dump(30, seed=9)
    src = tmp_path / "d.pgn"
    src.write_text(text)
    meta = ingest(src, tmp_path / "o", max_games=7, block_chars=5000, show_progress=False)
    assert meta["games_kept"] == 7 and decoded(tmp_path / "o") == [t for t, _, _ in games[:7]]
    with pytest.raises(LabError):
        ingest(tmp_path / "nope.pgn", tmp_path / "o2", show_progress=False)
    with pytest.raises(LabError):
        load_games(tmp_path / "empty")


def test_cli_lichess(tmp_path):
    from typer.testing import CliRunner

    from lab_transcendence.cli import app

    text, games = make_dump(20, seed=11)
    src = tmp_path / "d.pgn"
    src.write_text(text)
    res = CliRunner().invoke(
        app, ["data", "lichess", str(src), "--max-elo", "1100", "--out", str(tmp_path / "o"), "-j", "1"]
    )
    assert res.exit_code == 0, res.output
    kept = [t for t, w, b in games if w <= 1100 and b <= 1100]
    assert f"kept {len(kept)} of 20" in res.output
    assert np.load(tmp_path / "o" / "shard-00000.tokens.npy", mmap_mode="r").dtype == np.uint8
