"""Tokenizers: the paper's exact 32-character vocabulary and the move-level tokenizer's round trips."""

import random
import re

import chess
import pytest

from lab_transcendence.tokenizer import CHAR_VOCAB, get_tokenizer
from lab_transcendence.transcript import format_transcript

# SAN patterns of every move kind, found in seeded random games below.
KINDS = {
    "castle_short": r"^O-O[+#]?$",
    "castle_long": r"^O-O-O[+#]?$",
    "promotion": r"^[a-h]8=[QRBN]|^[a-h]1=[QRBN]",
    "capture_promotion": r"^[a-h]x[a-h][18]=[QRBN]",
    "check": r"\+$",
    "mate": r"#$",
    "file_disambiguation": r"^[NBRQ][a-h]x?[a-h][1-8]",
    "rank_disambiguation": r"^[NBRQ][1-8]x?[a-h][1-8]",
    "square_disambiguation": r"^[NBRQ][a-h][1-8]x?[a-h][1-8]",
    "en_passant_like_capture": r"^[a-h]x[a-h][36]$",
}


def random_games(n: int, seed: int = 0, max_plies: int = 300) -> list[list[str]]:
    rng = random.Random(seed)
    games = []
    for _ in range(n):
        board, sans = chess.Board(), []
        while not board.is_game_over() and len(sans) < max_plies:
            move = rng.choice(list(board.legal_moves))
            sans.append(board.san(move))
            board.push(move)
        games.append(sans)
    return games


# Hand-picked legal games (SAN as python-chess writes it): en passant, both castlings, file
# disambiguation, promotion with and without capture, underpromotion, check, mate.
HAND_GAMES = [
    "e4 d5 e5 f5 exf6 Nxf6 Nf3 Bg4 Be2 Nc6 O-O Qd7 d3 O-O-O Nbd2 e5 Re1 Bc5 Nb3 Bb6 Be3 Rhe8 c4 d4",
    "h4 g5 hxg5 h6 gxh6 Nc6 h7 d6 hxg8=Q Rxh1 Qxf7+ Kd7 Qf5+ e6",
    "a4 h5 Ra3 h4 Rb3 h3 a5 hxg2 a6 gxh1=N axb7 Nxf2 bxc8=R Qxc8",
    "e4 e5 Bc4 Nc6 Qh5 Nf6 Qxf7#",
]


def square_disambiguation_san() -> str:
    board = chess.Board("4k3/8/8/8/8/Q7/8/Q1Q1K3 w - - 0 1")  # three queens reach b2
    return board.san(chess.Move.from_uci("a1b2"))


@pytest.fixture(scope="module")
def games():
    return [g.split() for g in HAND_GAMES] + random_games(150)


def test_char_vocab_is_the_papers():
    tok = get_tokenizer("char")
    assert tok.vocab_size == 32
    assert CHAR_VOCAB == " #+-.0123456789;=BKNOQRabcdefghx"
    assert [tok.stoi[c] for c in CHAR_VOCAB] == list(range(32))
    assert sorted(CHAR_VOCAB) == list(CHAR_VOCAB)  # nanoGPT's meta.pkl order
    with pytest.raises(ValueError):
        tok.encode(";1.e4 {")


def test_every_move_kind_round_trips(games):
    char, move = get_tokenizer("char"), get_tokenizer("move")
    seen = dict.fromkeys(KINDS, 0)
    for sans in games:
        text = format_transcript(sans)
        assert char.decode(char.encode(text)) == text
        ids = move.encode(text)
        assert len(ids) == len(sans) + 1  # one token per move plus the game start
        assert move.decode(ids) == text
        for s in sans:
            for kind, pat in KINDS.items():
                seen[kind] += bool(re.search(pat, s))
    square = square_disambiguation_san()
    assert square == "Qa1b2" and move.decode(move.encode(f";1.{square}")) == f";1.{square}"
    seen["square_disambiguation"] += 1
    missing = [k for k, v in seen.items() if v == 0]
    assert not missing, f"random games never produced {missing}"


def test_move_tokenizer_multi_game_and_shorter():
    move, char = get_tokenizer("move"), get_tokenizer("char")
    text = ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.O-O Nf6;1.d4 d5 2.c4 dxc4 3.e3 b5 4.a4 c6 5.axb5 cxb5 6.Qf3"
    ids = move.encode(text)
    assert move.decode(ids) == text
    assert ids.count(move.game_start_id) == 2
    assert len(char.encode(text)) / len(ids) > 4
    # a prompt that ends after a move number decodes to the moves so far
    assert move.decode(move.encode(";1.e4 e5 2.")) == ";1.e4 e5"
    for bad in (";1.e4 e9", ";1.Zf3", ";x.e4"):
        with pytest.raises(ValueError):
            move.encode(bad)


def test_square_disambiguation_and_suffixes_in_vocab():
    move = get_tokenizer("move")
    for san in ("Qh4xe1", "Qh4e1#", "Nb1d2", "R1a3+", "exd8=N#", "O-O-O+", "Kxe2"):
        assert san in move.stoi
    for not_san in ("Kaxe2", "Pe4", "e8", "Nb1b2"):
        assert not_san not in move.stoi


def test_unknown_kind_is_a_lab_error():
    from lab_shared.errors import LabError

    with pytest.raises(LabError):
        get_tokenizer("bpe")
