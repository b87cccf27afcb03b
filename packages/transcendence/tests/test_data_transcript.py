"""Movetext -> transcript: both paths, every move kind, everything that must be stripped."""

import random

import chess
import chess.pgn
import pytest

from lab_transcendence.transcript import BadGame, fast_transcript, format_transcript, replay_transcript

HEADERS = '[Event "Rated Blitz game"]\n[White "a"]\n[Black "b"]\n[WhiteElo "900"]\n[BlackElo "950"]\n\n'

CASES = [
    # (movetext as a Lichess dump writes it, expected transcript)
    (
        "1. e4 { [%clk 0:03:00] } 1... d5 { [%clk 0:03:00] } 2. e5 f5 3. exf6 Nxf6 4. Nf3 Bg4 5. Be2 Nc6 "
        "6. O-O Qd7 7. d3 O-O-O 8. Nbd2 e5 1-0",
        ";1.e4 d5 2.e5 f5 3.exf6 Nxf6 4.Nf3 Bg4 5.Be2 Nc6 6.O-O Qd7 7.d3 O-O-O 8.Nbd2 e5",
    ),
    (
        "1. h4 g5 2. hxg5 h6 3. gxh6 Nc6 4. h7 d6 5. hxg8=Q Rxh1 6. Qxf7+ Kd7 7. Qf5+ e6 0-1",
        ";1.h4 g5 2.hxg5 h6 3.gxh6 Nc6 4.h7 d6 5.hxg8=Q Rxh1 6.Qxf7+ Kd7 7.Qf5+ e6",
    ),
    (
        "1. a4 h5 2. Ra3 h4 3. Rb3 h3 4. a5 hxg2 5. a6 gxh1=N 6. axb7 Nxf2 7. bxc8=R Qxc8 1/2-1/2",
        ";1.a4 h5 2.Ra3 h4 3.Rb3 h3 4.a5 hxg2 5.a6 gxh1=N 6.axb7 Nxf2 7.bxc8=R Qxc8",
    ),
    (  # comments, NAGs, glyphs, nested variations, move-number ellipses, a line comment
        "1. e4 $1 e5!? { a comment (with parens) } 2. Bc4 (2. Nf3 Nc6 (2... d6 3. d4) 3. Bb5) 2... Nc6?! "
        "3. Qh5 ; rest of line\n3... Nf6?? 4. Qxf7# 1-0",
        ";1.e4 e5 2.Bc4 Nc6 3.Qh5 Nf6 4.Qxf7#",
    ),
    ("1.d4 d5 2.c4 e6 *", ";1.d4 d5 2.c4 e6"),  # no spaces after numbers; unfinished result
]


@pytest.mark.parametrize("movetext,expected", CASES)
def test_hand_picked_games_both_paths(movetext, expected):
    assert fast_transcript(movetext) == (expected, expected.count(" ") + 1)
    assert replay_transcript(HEADERS + movetext + "\n")[0] == expected


def test_fast_equals_replay_on_random_legal_games():
    """Lichess-style PGN (clocks, evals) from python-chess's own writer: the two paths agree exactly."""
    rng = random.Random(1)
    for i in range(60):
        board = chess.Board()
        game = chess.pgn.Game()
        game.headers["WhiteElo"], game.headers["BlackElo"] = "1000", "1000"
        node = game
        while not board.is_game_over() and board.ply() < 200:
            move = rng.choice(list(board.legal_moves))
            board.push(move)
            node = node.add_variation(move, comment=f"[%clk 0:0{i % 10}:00]")
            if rng.random() < 0.05:
                node.nags.add(rng.choice([1, 2, 3, 4, 5, 6]))
        game.headers["Result"] = board.result()
        text = str(game)
        movetext = text.split("\n\n", 1)[1]
        fast, plies = fast_transcript(movetext)
        assert fast == replay_transcript(text)[0]
        assert plies == board.ply()


@pytest.mark.parametrize(
    "movetext,reason",
    [
        ("1. e4 { clock 2. d4 1-0", "unterminated_comment"),
        ("1. e4 e5 2. Nf3", "truncated"),
        ("1. e4 e5 2. Nf3 \x00\x17garbage 1-0", "bad_movetext"),
        ("1. e4 (1. d4 e5 2. c4 1-0", "unbalanced_variation"),
        ("1-0", "empty"),
    ],
)
def test_bad_movetext_is_named(movetext, reason):
    with pytest.raises(BadGame) as e:
        fast_transcript(movetext)
    assert e.value.reason == reason


def test_illegal_move_needs_replay():
    text = HEADERS + "1. e4 e5 2. Ke3 Nc6 1-0\n"
    assert fast_transcript("1. e4 e5 2. Ke3 Nc6 1-0")[0] == ";1.e4 e5 2.Ke3 Nc6"  # well-formed SAN
    with pytest.raises(BadGame) as e:
        replay_transcript(text)
    assert e.value.reason == "illegal_move"


def test_format_transcript():
    assert format_transcript(["e4"]) == ";1.e4"
    assert format_transcript(["e4", "e5", "Nf3"]) == ";1.e4 e5 2.Nf3"
