"""PGN movetext -> the paper's transcript format: `;1.e4 e5 2.Nf3 Nc6`.

No comments, clocks, NAGs, annotation glyphs, variations, move-number ellipses or results. Two paths:

- `fast_transcript`: text only (regexes and a set lookup per move), no board replay. Checks every move is
  well-formed SAN (the move tokenizer's vocabulary) and that the game is terminated by a result.
- `replay_transcript`: python-chess parses and replays the game and writes each move's SAN from the board.
  On legal games both give identical transcripts (tested); it also catches illegal moves.
Both raise `BadGame(reason)` for a game to be skipped; the reason is counted in the data's metadata.
"""

from __future__ import annotations

import io
import re

from lab_transcendence.tokenizer import san_vocabulary


class BadGame(ValueError):
    """A game that cannot be converted; `.reason` is a short counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


RESULTS = frozenset({"1-0", "0-1", "1/2-1/2", "*"})
VALID_SAN = frozenset(san_vocabulary())
_COMMENT = re.compile(r"\{[^}]*\}")
_LINE_COMMENT = re.compile(r";[^\n]*")
_VARIATION = re.compile(r"\([^()]*\)")
_GLYPHS = "!?"


_NUMBER_PREFIX = re.compile(r"^\d+\.+")
_MOVE_NUMBERS = [f"{i}." for i in range(1, 1001)]


def clean_movetext(movetext: str) -> list[str]:
    """Strip comments, variations and move numbers: the SAN tokens (glyphs, NAGs, glued numbers left to
    _normalise) plus the result."""
    if ";" in movetext:  # a line comment; braces first, they may hold a ';'
        movetext = _LINE_COMMENT.sub(" ", _COMMENT.sub(" ", movetext))
    if "(" in movetext or ")" in movetext:
        movetext = _COMMENT.sub(" ", movetext)  # comments may hold parentheses
        while True:
            movetext, n = _VARIATION.subn(" ", movetext)
            if not n:
                break
        if "(" in movetext or ")" in movetext:
            raise BadGame("unbalanced_variation")
    if "{" in movetext:
        movetext = _COMMENT.sub(" ", movetext)
    if "{" in movetext or "}" in movetext:
        raise BadGame("unterminated_comment")
    # move numbers written apart ("12." / "12...") go here; glued ones ("12.e4") and NAGs in _normalise
    return [t for t in movetext.split() if not (t[-1] == "." and t[0].isdigit())]


def format_transcript(sans: list[str]) -> str:
    """SAN moves -> `;1.e4 e5 2.Nf3`."""
    out = list(sans)
    n = (len(out) + 1) // 2
    nums = _MOVE_NUMBERS[:n] if n <= len(_MOVE_NUMBERS) else [f"{i}." for i in range(1, n + 1)]
    out[0::2] = [a + b for a, b in zip(nums, out[0::2])]
    return ";" + " ".join(out)


def _normalise(tok: str) -> str | None:
    """A token that is not plain SAN: None for a NAG, else the SAN without a glued move number or glyphs
    (!?), castling written with zeros accepted; BadGame if no SAN remains."""
    if tok[0] == "$" and tok[1:].isdigit():
        return None
    t = _NUMBER_PREFIX.sub("", tok).rstrip(_GLYPHS)
    if t in VALID_SAN:
        return t
    if t in ("0-0", "0-0-0", "0-0+", "0-0-0+", "0-0#", "0-0-0#"):
        return t.replace("0", "O")
    if t in RESULTS:
        raise BadGame("bad_movetext", "result inside the movetext")
    raise BadGame("bad_movetext", f"not a SAN move: {t[:20]!r}")


def fast_transcript(movetext: str, require_result: bool = True) -> tuple[str, int]:
    """Movetext -> (transcript, plies) without replaying the board. Raises BadGame."""
    tokens = clean_movetext(movetext)
    if tokens and tokens[-1] in RESULTS:
        tokens.pop()
    elif require_result:
        raise BadGame("truncated", "no result at the end of the movetext")
    if not tokens:
        raise BadGame("empty")
    if not VALID_SAN.issuperset(tokens):
        tokens = [t if t in VALID_SAN else _normalise(t) for t in tokens]
        tokens = [t for t in tokens if t is not None]
        if not tokens:
            raise BadGame("empty")
    return format_transcript(tokens), len(tokens)


def replay_transcript(pgn_text: str) -> tuple[str, int]:
    """Full PGN game text -> (transcript, plies) by python-chess parsing and board replay. Raises BadGame."""
    import logging

    import chess.pgn

    logging.getLogger("chess.pgn").setLevel(logging.CRITICAL)  # errors are counted, not logged per game
    game = chess.pgn.read_game(io.StringIO(pgn_text))
    if game is None:
        raise BadGame("empty")
    if game.errors:
        raise BadGame("illegal_move", str(game.errors[0])[:80])
    if (
        game.headers.get("Variant", "Standard").lower() not in ("standard", "chess", "")
        or "FEN" in game.headers
    ):
        raise BadGame("non_standard_start")
    board = game.board()
    sans = []
    for move in game.mainline_moves():
        sans.append(board.san(move))
        board.push(move)
    if not sans:
        raise BadGame("empty")
    return format_transcript(sans), len(sans)
