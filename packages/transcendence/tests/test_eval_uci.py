"""`lab chess uci`: driven by python-chess's chess.engine like any UCI engine, and by PolyGlot (Debian's
UCI-to-xboard adapter) as a GUI would, in games against Stockfish."""

import io
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import chess
import chess.engine
import pytest

from lab_transcendence.export import export_model
from lab_transcendence.tokenizer import get_tokenizer
from lab_transcendence.uci import UciEngine

sys.path.insert(0, str(Path(__file__).parent))  # eval_helpers (pytest runs with importlib mode)
from eval_helpers import memorized_model  # noqa: E402


def _lab_cmd() -> list[str]:
    lab = Path(sys.executable).parent / "lab"
    if lab.exists():
        return [str(lab)]
    return [sys.executable, "-c", "import sys; from lab_shared.cli import main; sys.argv[0] = 'lab'; main()"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("uci") / "model"
    return export_model(memorized_model(), path, "char", {"max_rating": 1000})


def test_uci_engine_plays_legal_moves_via_python_chess(model_dir):
    eng = chess.engine.SimpleEngine.popen_uci(
        [*_lab_cmd(), "chess", "uci", "--model", str(model_dir)], timeout=60
    )
    try:
        assert eng.id["name"] == "lab-chess-gpt"
        assert {"Temperature", "Policy", "Seed"} <= set(eng.options)
        board = chess.Board()
        first = eng.play(board, chess.engine.Limit(depth=1)).move  # no clock: the model's own move
        assert first == chess.Move.from_uci("e2e4")  # the memorised game's first move at low temperature
        eng.configure({"Temperature": "1.0", "Policy": "paper"})
        for _ in range(12):  # a short game against itself: every answer is legal
            if board.is_game_over():
                break
            move = eng.play(board, chess.engine.Limit(time=0.5)).move
            assert move in board.legal_moves
            board.push(move)
        eng.ping()  # isready / readyok
    finally:
        eng.quit()


def test_uci_protocol_lines_and_bad_input(tmp_path):
    model = memorized_model()
    e = UciEngine(model, get_tokenizer("char"))
    out = io.StringIO()
    for line in ["uci", "isready", "position startpos moves e2e4 e7e5", "go movetime 100"]:
        e.handle(line, out)
    e.wait()
    lines = out.getvalue().splitlines()
    assert "uciok" in lines and "readyok" in lines and lines[-1] == "bestmove g1f3"
    out = io.StringIO()
    e.handle("position fen 8/8/8/8/8/8/8/8 w - - 0 1", out)  # no kings: impossible
    e.handle("position startpos moves e2e5", out)  # illegal move
    e.handle("setoption name Temperature value -1", out)
    e.handle("go", out)
    e.wait()
    text = out.getvalue()
    assert text.count("info string bad") == 3
    assert text.splitlines()[-1] == "bestmove g1f3"  # the last good position still stands
    assert not e.handle("quit", io.StringIO())


def test_uci_rejects_folder_that_is_not_a_model(tmp_path):
    import subprocess

    (tmp_path / "junk").mkdir()
    r = subprocess.run(
        [*_lab_cmd(), "chess", "uci", "--model", str(tmp_path / "junk")],
        capture_output=True,
        text=True,
        input="uci\n",
        timeout=60,
    )
    assert (
        r.returncode == 2
        and r.stderr.strip().startswith("error:")
        and len(r.stderr.strip().splitlines()) == 1
    )


STOCKFISH = "/usr/games/stockfish"


def _stockfish():
    sf = chess.engine.SimpleEngine.popen_uci(STOCKFISH, timeout=60)
    sf.configure({"Skill Level": 0, "Threads": 1, "Hash": 16})
    return sf


@pytest.mark.skipif(not Path(STOCKFISH).exists(), reason="Stockfish not installed at /usr/games/stockfish")
def test_uci_protocol_and_a_game_against_stockfish_via_python_chess(model_dir):
    eng = chess.engine.SimpleEngine.popen_uci(
        [*_lab_cmd(), "chess", "uci", "--model", str(model_dir)], timeout=60
    )
    sf = _stockfish()
    try:
        board = chess.Board()
        board.push_uci("e2e4")
        board.push_uci("e7e5")
        with eng.analysis(board) as analysis:  # `go infinite`: infos, and bestmove only after `stop`
            info = next(i for i in analysis if "pv" in i)
            assert info["pv"][0] == chess.Move.from_uci("g1f3") and info["depth"] == 1
            analysis.stop()
            assert analysis.wait().move == chess.Move.from_uci("g1f3")
        limit = chess.engine.Limit(time=5)
        moves = [chess.Move.from_uci(u) for u in ("a2a3", "h2h3")]
        assert eng.play(board, limit, root_moves=moves).move in moves  # searchmoves
        fen = chess.Board("rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq - 0 1")
        assert eng.play(fen, chess.engine.Limit(time=0.3)).move in fen.legal_moves  # movetime, Black to move
        # a short game against Stockfish on a clock, pondering on Stockfish's time
        game, clock = chess.Board(), {chess.WHITE: 60.0, chess.BLACK: 60.0}
        while not game.is_game_over() and game.ply() < 24:
            if game.turn == chess.WHITE:
                lim = chess.engine.Limit(
                    white_clock=clock[True], black_clock=clock[False], white_inc=1, black_inc=1
                )
                move = eng.play(game, lim, ponder=True, game="g1").move
            else:
                move = sf.play(game, chess.engine.Limit(depth=1)).move
            assert move in game.legal_moves, (game.fen(), move)
            game.push(move)
        assert game.ply() >= 10 or game.is_game_over()
    finally:
        eng.quit()
        sf.quit()


POLYGLOT = shutil.which("polyglot") or (
    "/usr/games/polyglot" if Path("/usr/games/polyglot").exists() else None
)


class _Lines:
    """Lines of a child's stdout through a reader thread, read with a time bound (never hangs a test)."""

    def __init__(self, proc: subprocess.Popen):
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, f) -> None:
        for line in f:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def until(self, pred, timeout: float = 60) -> str:
        seen = []
        while True:
            line = self.q.get(timeout=timeout)
            assert line is not None, f"PolyGlot ended; last lines {seen[-10:]}"
            seen.append(line)
            if pred(line):
                return line


@pytest.mark.skipif(POLYGLOT is None, reason="PolyGlot not installed (Debian package polyglot)")
@pytest.mark.skipif(not Path(STOCKFISH).exists(), reason="Stockfish not installed at /usr/games/stockfish")
def test_polyglot_drives_the_engine_in_a_game_against_stockfish(model_dir, tmp_path):
    """PolyGlot adapts `lab chess uci` to xboard; the test is the xboard GUI, Stockfish plays White."""
    import shlex

    cmd = " ".join(shlex.quote(c) for c in [*_lab_cmd(), "chess", "uci", "--model", str(model_dir)])
    log = tmp_path / "polyglot.log"
    env = {**os.environ, "HOME": str(tmp_path)}  # PolyGlot keeps its settings under $HOME/.polyglot
    proc = subprocess.Popen(
        [POLYGLOT, "-noini", "-ec", cmd, "-ed", str(tmp_path), "-log", "true", "-lf", str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    out = _Lines(proc)

    def send(line: str) -> None:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()

    sf = _stockfish()
    try:
        send("xboard")
        send("protover 2")
        out.until(lambda x: x.startswith("feature done=1"))
        for line in ("new", "hard", "st 5"):  # the engine plays Black, ponders, 5 s a move
            send(line)
        board = chess.Board()
        while not board.is_game_over() and board.ply() < 16:
            white = sf.play(board, chess.engine.Limit(depth=1)).move
            send(f"usermove {white.uci()}")
            board.push(white)
            if board.is_game_over():
                break
            reply = out.until(lambda x: x.startswith(("move ", "resign")) or x[:3] in ("1-0", "0-1", "1/2"))
            assert reply.startswith("move "), reply
            move = chess.Move.from_uci(reply.split()[1])
            assert move in board.legal_moves, (board.fen(), reply)
            board.push(move)
        assert board.ply() >= 8 or board.is_game_over()
        send("quit")
        proc.wait(timeout=30)
        text = log.read_text()
        gos = [x for x in text.splitlines() if "Adapter->Engine: go " in x]
        assert any(x.endswith(" ponder") for x in gos), gos  # PolyGlot pondered on the engine's guesses
        assert "Terminating it" not in text  # the engine left at `quit` by itself
    finally:
        sf.quit()
        if proc.poll() is None:
            proc.kill()
