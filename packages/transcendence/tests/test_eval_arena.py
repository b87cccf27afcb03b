"""Arena and engine pool with the real Stockfish: draw rule, PGN headers, resume, crash and hang recovery."""

import json
import os
import signal
import threading
import time

import chess
import chess.pgn
import pytest

from lab_shared.errors import LabError
from lab_transcendence.arena import (
    EnginePlayer,
    GameLog,
    GameSpec,
    _outcome,
    play_games,
    read_records,
    score_for,
    write_pgn,
)
from lab_transcendence.engines import EngineSettings, level_settings, open_pool, parse_limit

pytestmark = [
    pytest.mark.stockfish,
    pytest.mark.skipif(
        not os.path.exists("/usr/games/stockfish") and not os.environ.get("LAB_STOCKFISH"),
        reason="needs Stockfish (apt-get install -y stockfish)",
    ),
]


@pytest.fixture
def pool():
    p = open_pool(size=2, grace=1.0)
    yield p
    p.close()


def _players(pool, a=0, b=5):
    pa = EnginePlayer(pool, EngineSettings(skill=a, depth=1))
    pb = EnginePlayer(pool, EngineSettings(skill=b, depth=1))
    return {pa.name: pa, pb.name: pb}


def _specs(players, n):
    a, b = list(players)
    return [GameSpec(f"g{i}", a if i % 2 == 0 else b, b if i % 2 == 0 else a, round=i + 1) for i in range(n)]


def test_89_move_rule():
    board = chess.Board()
    board.set_fen("4k3/8/8/8/8/8/8/R3K3 w - - 0 89")
    assert _outcome(board, 89) is None
    board.push_san("Ra2")
    board.push_san("Kd8")  # 89 full moves done: the 90th would start
    assert _outcome(board, 89) == ("1/2-1/2", "max_moves_89")
    assert _outcome(board, None) is None


def test_short_games_are_draws_and_pgn_has_settings(pool, tmp_path):
    players = _players(pool)
    log = GameLog(tmp_path / "games.jsonl")
    recs = play_games(_specs(players, 4), players, log, concurrency=4, max_moves=3)
    assert len(recs) == 4
    for r in recs:
        assert r["result"] == "1/2-1/2" and r["termination"] == "max_moves_3" and r["plies"] == 6
    write_pgn(recs, tmp_path / "games.pgn")
    with open(tmp_path / "games.pgn") as f:
        games = [chess.pgn.read_game(f) for _ in range(4)]
    h = games[0].headers
    assert h["WhiteSkill"] in ("0", "5") and h["WhiteDepthLimit"] == "1" and h["Termination"] == "max_moves_3"
    assert len(list(games[0].mainline_moves())) == 6


def test_resume_skips_recorded_games_and_tolerates_torn_line(pool, tmp_path):
    players = _players(pool)
    path = tmp_path / "games.jsonl"
    play_games(_specs(players, 3), players, GameLog(path), max_moves=2)
    with open(path, "a") as f:
        f.write('{"game_id": "g9", "resu')  # a kill mid-write
    log = GameLog(path)
    assert log.done_ids() == {"g0", "g1", "g2"}
    seen = []
    recs = play_games(
        _specs(players, 5), players, log, max_moves=2, on_game=lambda r: seen.append(r["game_id"])
    )
    assert sorted(seen) == ["g3", "g4"] and len(recs) == 5
    assert len(read_records(path)) == 5 and all(json.loads(x) for x in path.read_text().splitlines())


def test_engine_crash_mid_game_is_restarted(pool, tmp_path):
    players = _players(pool)
    killed = []

    def killer():
        for _ in range(200):
            pids = [e.pid for e in pool.engines if e.pid]
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.01)

    t = threading.Thread(target=killer)
    t.start()
    recs = play_games(_specs(players, 4), players, GameLog(tmp_path / "g.jsonl"), max_moves=20)
    t.join()
    assert killed and pool.restarts >= 1
    assert len(recs) == 4 and all(r["result"] != "*" for r in recs)


def test_hung_engine_is_killed_and_replaced(pool):
    board = chess.Board()
    eng = pool.engines[0]
    s = EngineSettings(skill=3, depth=2)
    eng.play(board, s)
    os.kill(eng.pid, signal.SIGSTOP)  # a hang: the process lives but never answers
    t0 = time.time()
    move = eng.play(board, s)
    assert move in board.legal_moves and eng.restarts == 1 and time.time() - t0 < 15


def test_engine_failure_marks_the_game(tmp_path):
    pool = open_pool(size=1, grace=0.5)
    pool.engines[0].retries = 0
    try:
        players = _players(pool)
        os.kill(pool.engines[0].pid, signal.SIGSTOP)  # hangs on the first move, and no retry is allowed
        recs = play_games(_specs(players, 1), players, GameLog(tmp_path / "g.jsonl"), max_moves=None)
        assert pool.engines[0].pid is None  # the hung process was killed
    finally:
        pool.close()
    r = recs[0]
    assert r["result"] == "*" and r["termination"] == "error" and "did not answer" in r["error"]
    assert GameLog(tmp_path / "g.jsonl").done_ids() == set()  # recorded, and replayed on resume


def test_limits_and_scores():
    assert parse_limit("time:0.1") == ("time", 0.1)
    assert level_settings(3, "depth:level+1").depth == 4
    assert level_settings(1, "nodes:500").nodes == 500
    for bad in ("time:0", "speed:3", "depth:x"):
        with pytest.raises(LabError):
            parse_limit(bad)
    with pytest.raises(LabError, match="0..20"):
        EngineSettings(skill=25, depth=1)
    rec = {"white": "a", "black": "b", "result": "0-1"}
    assert score_for(rec, "a") == 0.0 and score_for(rec, "b") == 1.0
    assert score_for({**rec, "result": "*"}, "a") is None


def test_missing_stockfish_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_STOCKFISH", str(tmp_path / "nope"))
    with pytest.raises(LabError, match="apt-get install -y stockfish"):
        open_pool()
