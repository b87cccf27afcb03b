"""`lab chess uci`: driven by python-chess's chess.engine like any UCI engine."""

import io
import sys
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
        first = eng.play(board, chess.engine.Limit(time=0.5)).move
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
    lines = out.getvalue().splitlines()
    assert "uciok" in lines and "readyok" in lines and lines[-1] == "bestmove g1f3"
    out = io.StringIO()
    e.handle("position fen 8/8/8/8/8/8/8/8 w - - 0 1", out)  # no kings: impossible
    e.handle("position startpos moves e2e5", out)  # illegal move
    e.handle("setoption name Temperature value -1", out)
    e.handle("go", out)
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
