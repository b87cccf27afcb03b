"""The UCI engine's search thread in-process: when `bestmove` may and must come, searchmoves, FEN starts,
the prompt cache across moves (real tiny models; the model lock is held to make "busy" deterministic)."""

import sys
import threading
from pathlib import Path

import chess
import pytest
import torch

from lab_transcendence.player import MoveCodec, movetext, start_ply
from lab_transcendence.tokenizer import get_tokenizer
from lab_transcendence.uci import UciEngine
from lab_transcendence.uci_search import GoParams, parse_go, time_budget

sys.path.insert(0, str(Path(__file__).parent))  # eval_helpers (pytest runs with importlib mode)
from eval_helpers import memorized_model  # noqa: E402

WAIT = 30  # seconds: only a bound on a broken engine, never a timing under test


class Out:
    """A thread-safe stdout for the engine: lines, and waiting for one."""

    def __init__(self):
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._part = ""

    def write(self, text: str) -> int:
        with self._cv:
            self._part += text
            *done, self._part = self._part.split("\n")
            self.lines += done
            self._cv.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    def wait_for(self, prefix: str, after: int = 0) -> str:
        with self._cv:
            ok = self._cv.wait_for(
                lambda: any(x.startswith(prefix) for x in self.lines[after:]), timeout=WAIT
            )
            assert ok, f"no {prefix!r} line in {self.lines[after:]}"
            return next(x for x in self.lines[after:] if x.startswith(prefix))

    def best(self, after: int = 0) -> list[str]:
        return [x for x in self.lines[after:] if x.startswith("bestmove")]


def engine(policy: str = "masked") -> tuple[UciEngine, Out]:
    e, out = UciEngine(memorized_model(), get_tokenizer("char"), policy=policy), Out()
    for line in ("uci", "isready", "ucinewgame", "position startpos moves e2e4 e7e5"):
        e.handle(line, out)
    return e, out


def test_go_infinite_answers_only_at_stop_and_isready_meanwhile():
    e, out = engine()
    n = len(out.lines)
    e.handle("go infinite", out)
    e.search.computed.wait(WAIT)
    out.wait_for("info depth 1", n)  # the move is known and reported ...
    assert out.best(n) == [] and not e.search.answered.is_set()  # ... but held until `stop`
    e.handle("isready", out)
    out.wait_for("readyok", n)
    assert out.best(n) == []
    e.handle("stop", out)
    assert out.wait_for("bestmove", n) == "bestmove g1f3"  # the memorised game's move
    e.handle("stop", out)  # a stray stop: nothing more
    e.wait()
    assert len(out.best(n)) == 1


def test_go_ponder_waits_for_ponderhit_or_stop():
    e, out = engine()
    e.handle("setoption name Ponder value true", out)
    n = len(out.lines)
    e.handle("go ponder wtime 10000 btime 10000", out)
    e.search.computed.wait(WAIT)
    out.wait_for("info depth 1", n)
    assert out.best(n) == []
    e.handle("ponderhit", out)
    best = out.wait_for("bestmove", n).split()
    assert best[1] == "g1f3" and best[2] == "ponder" and best[3] == "b8c6"  # its guess of the reply
    e.wait()
    e.handle("position startpos moves e2e4 e7e5 g1f3 b8c6", out)
    n = len(out.lines)
    e.handle("go ponder movetime 100", out)
    e.search.computed.wait(WAIT)
    assert out.best(n) == []
    e.handle("stop", out)
    assert out.wait_for("bestmove", n).startswith("bestmove f1b5")
    e.wait()


def test_budget_answers_a_fallback_while_the_model_is_busy():
    e, out = engine()
    with e.model_lock:  # the model is busy: no move can come from it before the deadline
        n = len(out.lines)
        e.handle("go movetime 60", out)
        assert out.wait_for("bestmove", n) == "bestmove a2a3"  # the first legal move in UCI order
        assert any("fallback" in x for x in out.lines[n:])
        n = len(out.lines)
        e.handle("position startpos moves e2e4", out)
        e.handle("go wtime 5 btime 5 searchmoves h7h6 a7a6", out)  # 5 ms on Black's clock
        assert out.wait_for("bestmove", n) == "bestmove a7a6"  # the fallback respects searchmoves
        n = len(out.lines)
        e.handle("go infinite", out)
        e.handle("stop", out)  # stop before the forward pass ends: answer now
        assert out.wait_for("bestmove", n) == "bestmove a7a5"
    e.wait()  # the stale computations finish and say nothing after their bestmove
    n = len(out.lines)
    e.handle("position startpos moves e2e4 e7e5", out)
    e.handle("go", out)
    e.wait()
    assert out.best(n) == ["bestmove g1f3"]


def test_time_budget_and_go_parsing():
    assert time_budget(GoParams(movetime=1000), True, 30) == pytest.approx(0.97)
    assert time_budget(GoParams(wtime=60000, btime=1000, movestogo=20), True, 0) == pytest.approx(3.0)
    assert time_budget(GoParams(wtime=60000, btime=1000, movestogo=20), False, 0) == pytest.approx(0.05)
    # sudden death: a 30th of the clock plus 3/4 of the increment
    assert time_budget(GoParams(wtime=30000, winc=1000), True, 0) == pytest.approx(1.75)
    assert time_budget(GoParams(wtime=100, movestogo=1), True, 30) == pytest.approx(
        0.07
    )  # never the whole clock
    assert time_budget(GoParams(wtime=10), True, 30) == pytest.approx(0.001)
    assert time_budget(GoParams(), True) is None and time_budget(GoParams(infinite=True), True) is None
    go = parse_go("searchmoves e2e4 d2d4 wtime 100 btime 200 winc 1 binc 2 movestogo 3 ponder".split())
    assert (
        go.searchmoves == ["e2e4", "d2d4"] and go.ponder and (go.wtime, go.binc, go.movestogo) == (100, 2, 3)
    )
    for bad in ("movetime", "movetime x", "depth -1", "sideways"):
        with pytest.raises(ValueError):
            parse_go(bad.split())
    e, out = engine()
    n = len(out.lines)
    e.handle("go movetime nope", out)  # a bad `go` still answers (no limit)
    assert out.wait_for("info string bad go", n) and out.wait_for("bestmove", n) == "bestmove g1f3"
    e.wait()


@pytest.mark.parametrize("policy", ["masked", "paper"])
def test_searchmoves_restricts_the_candidates(policy):
    e, out = engine(policy)
    n = len(out.lines)
    e.handle("go searchmoves a2a3 h2h3 e1e2", out)
    e.wait()
    assert out.best(n)[0].split()[1] in {"a2a3", "h2h3", "e1e2"}
    n = len(out.lines)
    e.handle("go searchmoves g1f3 b1c3", out)
    e.wait()
    assert out.best(n) == ["bestmove g1f3"]
    n = len(out.lines)
    e.handle("go searchmoves e2e4", out)  # not legal here: ignored, all moves searched
    e.wait()
    assert any("not a legal move" in x for x in out.lines[n:]) and out.best(n) == ["bestmove g1f3"]


def test_fen_prompt_with_black_to_move():
    tok = get_tokenizer("char")
    codec = MoveCodec(tok, 127)
    assert movetext(["Nf6", "Nc3", "e5"], 45) == "23...Nf6 24.Nc3 e5"
    assert tok.decode(codec.prompt([], 45)) == ";23..."
    assert tok.decode(codec.prompt(["Nf6"], 45)) == ";23...Nf6 24."
    assert tok.decode(codec.prompt(["Nf6", "Nc3"], 45)) == ";23...Nf6 24.Nc3 "
    assert tok.decode(codec.prompt(["Nf3"], 44)) == ";23.Nf3 "
    assert tok.decode(codec.prompt(["e4"])) == ";1.e4 "  # from the start: as before
    board = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/2B1P3/5N2/PPPP1PPP/RNBQK2R b KQkq - 3 23")
    assert start_ply(board, []) == 45
    board.push_san("Nf6")
    assert start_ply(board, ["Nf6"]) == 45 and start_ply(chess.Board(), []) == 0
    e, out = engine()
    for moves in ([], ["g8f6", "d2d3"]):
        here = board.root()
        n = len(out.lines)
        e.handle(f"position fen {here.fen()}" + "".join(f" moves {' '.join(moves)}" for _ in moves[:1]), out)
        e.handle("go", out)
        e.wait()
        for u in moves:
            here.push_uci(u)
        assert here.turn == chess.BLACK
        assert chess.Move.from_uci(out.best(n)[0].split()[1]) in here.legal_moves


def test_fen_black_to_move_with_a_position_model():
    from lab_transcendence.position_config import PositionConfig
    from lab_transcendence.position_model import PositionPolicy

    torch.manual_seed(0)
    model = PositionPolicy(PositionConfig(width=8, layers=1, head_dim=4)).eval()
    e, out = UciEngine(model, None), Out()
    fen = "rnbqkbnr/pppppppp/8/8/3P4/8/PPP1PPPP/RNBQKBNR b KQkq - 0 1"
    for line in ("uci", "isready", f"position fen {fen}", "go searchmoves d7d5 g8f6"):
        e.handle(line, out)
    e.wait()
    assert out.best()[0].split()[1] in {"d7d5", "g8f6"}
    e.handle("go movetime 5000", out)
    e.wait()
    assert chess.Move.from_uci(out.best()[1].split()[1]) in chess.Board(fen).legal_moves


def test_prompt_cache_is_kept_across_moves_and_games():
    e, out = engine()
    moves = ["e2e4", "e7e5", "g1f3", "b8c6", "f1b5", "a7a6"]
    answers, prev_total = [], 0
    for ply in range(2, 7, 2):
        e.handle("position startpos moves " + " ".join(moves[:ply]), out)
        n = len(out.lines)
        e.handle("go", out)
        e.wait()
        note = next(x for x in out.lines[n:] if "prompt cache reused" in x).split()
        reused, total = int(note[5]), int(note[7])
        if ply > 2:
            assert reused >= prev_total - 1 and total > reused  # only the new moves run through the model
        prev_total = total
        answers.append(out.best(n)[0])
    fresh, fout = engine()
    fresh.handle("position startpos moves " + " ".join(moves[:6]), fout)
    fresh.handle("go", fout)
    fresh.wait()
    assert fout.best()[-1] == answers[-1]  # the cached prompt gives the same move
    e.handle("ucinewgame", out)
    e.handle("position startpos moves e2e4 e7e5", out)
    n = len(out.lines)
    e.handle("go", out)
    e.wait()
    assert out.best(n) == ["bestmove g1f3"]
    assert "uci-1" not in e._player("masked").cache.store  # the finished game's prompt was dropped
