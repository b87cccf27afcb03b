"""`--protocol paper`: the paper's prompt, `+` stripping, resignation, automatic draws only, game order."""

import sys
from pathlib import Path

import chess
import pytest

from lab_shared.errors import LabError
from lab_transcendence.arena import MoveRequest, _outcome
from lab_transcendence.player import ModelPlayer, MoveCodec
from lab_transcendence.tokenizer import get_tokenizer

sys.path.insert(0, str(Path(__file__).parent))
from eval_helpers import game_positions, memorized_model  # noqa: E402


def test_paper_prompt_ends_after_whites_move():
    tok = get_tokenizer("char")
    lab, paper = MoveCodec(tok, 127, "lab"), MoveCodec(tok, 127, "paper")
    assert tok.decode(lab.prompt(["e4"])) == ";1.e4 " and tok.decode(paper.prompt(["e4"])) == ";1.e4"
    assert tok.decode(paper.prompt(["e4", "e5"])) == tok.decode(lab.prompt(["e4", "e5"])) == ";1.e4 e5 2."
    assert paper.max_tokens == lab.max_tokens + 1


def test_paper_protocol_black_writes_the_space_and_plays_the_move():
    model, tok = memorized_model(), get_tokenizer("char")
    board, sans = game_positions()[1]  # Black to move after 1.e4
    lab = ModelPlayer(model, tok, 0.001, "paper").select([MoveRequest("g", board, sans, 0)])[0]
    paper = ModelPlayer(model, tok, 0.001, "paper", protocol="paper").select(
        [MoveRequest("h", board, sans, 0)]
    )[0]
    assert lab.move == chess.Move.from_uci("e7e5") and paper.move == lab.move and paper.san == "e5"


class _Writes(ModelPlayer):
    """The real player with its sampled text fixed (tests the decision rules on the text)."""

    text = ""

    def sample_texts(self, cache, last, rows, rngs):
        return [self.text for _ in rows]


@pytest.mark.parametrize(("text", "move", "resign", "san"), [("1-0", None, True, None), ("0-1", None, True, None),
                                                           ("Nf3+", "g1f3", False, "Nf3"), ("Nf3", "g1f3", False, "Nf3")])  # fmt: skip
def test_paper_protocol_resignation_and_plus(text, move, resign, san):
    p = _Writes(memorized_model(), get_tokenizer("char"), 0.5, "paper", protocol="paper")
    p.text = text
    d = p.select([MoveRequest("g", chess.Board(), [], 0)])[0]
    assert (d.move.uci() if d.move else None) == move and d.resign == resign and d.san == san
    assert d.forfeit == resign
    lab = _Writes(memorized_model(), get_tokenizer("char"), 0.5, "paper")
    lab.text = text
    d = lab.select([MoveRequest("g", chess.Board(), [], 0)])[0]
    assert not d.resign and d.san is None  # lab: 1-0 is an illegal sample (5 of them: a forfeit)
    with pytest.raises(LabError, match="unknown protocol"):
        ModelPlayer(memorized_model(), get_tokenizer("char"), 0.5, "paper", protocol="nope")


def test_paper_protocol_game_length():
    from lab_transcendence.transcend import EvalConfig, game_length

    assert game_length(EvalConfig()) == 89 and game_length(EvalConfig(protocol="paper")) == 90
    assert (
        game_length(EvalConfig(protocol="paper", max_moves=40)) == 40
        and game_length(EvalConfig(max_moves=0)) is None
    )


def test_only_automatic_draws_under_the_paper_protocol():
    board = chess.Board()
    for _ in range(2):
        for uci in ("g1f3", "g8f6", "f3g1", "f6g8"):
            board.push_uci(uci)
    assert board.can_claim_threefold_repetition()
    assert _outcome(board, None, claim_draws=True)[1] == "threefold_repetition"
    assert _outcome(board, None, claim_draws=False) is None


@pytest.mark.stockfish
def test_transcend_paper_protocol_end_to_end(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from lab_transcendence.cli import app
    from lab_transcendence.export import export_model

    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    model = export_model(memorized_model(), tmp_path / "m", "char", {"max_rating": 1000})
    runner = CliRunner()
    r = runner.invoke(app, ["transcend", "--model", str(model), "--protocol", "bogus"])
    assert r.exit_code == 2 and "'bogus' is not one of lab, paper" in r.output  # a choice option now
    args = ["transcend", "--model", str(model), "--protocol", "paper", "--policies", "paper", "--temperatures",
            "0.001", "--games", "2", "--levels", "1", "--limit", "depth:1", "--max-moves", "10", "--no-experts"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    run = next((tmp_path / "runs" / "chess-transcend").iterdir())
    res = json.loads((run / "results.json").read_text())
    row = next(x for x in res["ratings"] if x["kind"] == "model")
    assert set(row["paper_glicko_per_level"]) == {"stockfish-l1"}
    order = row["paper_game_order"]  # the model's Black games (odd game numbers), then its White games
    assert [int(g.rsplit("|", 1)[1]) % 2 for g in order] == [1, 0]
