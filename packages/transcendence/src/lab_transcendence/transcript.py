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
_NAG_NUMBER = re.compile(r"\$\d+|\d+\.(?:\.\.)?")
_GLYPHS = "!?"


def clean_movetext(movetext: str) -> list[str]:
    """Strip comments, variations, NAGs, move numbers and glyphs: the list of SAN tokens plus the result."""
    if "{" in movetext:
        movetext = _COMMENT.sub(" ", movetext)
    if "{" in movetext or "}" in movetext:
        raise BadGame("unterminated_comment")
    if ";" in movetext:
        movetext = _LINE_COMMENT.sub(" ", movetext)
    if "(" in movetext or ")" in movetext:
        while True:
            movetext, n = _VARIATION.subn(" ", movetext)
            if not n:
                break
        if "(" in movetext or ")" in movetext:
            raise BadGame("unbalanced_variation")
    return _NAG_NUMBER.sub(" ", movetext).split()


def format_transcript(sans: list[str]) -> str:
    """SAN moves -> `;1.e4 e5 2.Nf3`."""
    parts = [";"]
    for i in range(0, len(sans), 2):
        if i:
            parts.append(" ")
        parts.append(f"{i // 2 + 1}.{sans[i]}")
        if i + 1 < len(sans):
            parts.append(" " + sans[i + 1])
    return "".join(parts)


def fast_transcript(movetext: str, require_result: bool = True) -> tuple[str, int]:
    """Movetext -> (transcript, plies) without replaying the board. Raises BadGame."""
    tokens = clean_movetext(movetext)
    if tokens and tokens[-1] in RESULTS:
        tokens.pop()
    elif require_result:
        raise BadGame("truncated", "no result at the end of the movetext")
    sans = []
    for tok in tokens:
        if tok not in VALID_SAN:
            tok = tok.rstrip(_GLYPHS)
            if tok not in VALID_SAN:
                if tok in ("0-0", "0-0-0", "0-0+", "0-0-0+", "0-0#", "0-0-0#"):
                    tok = tok.replace("0", "O")
                elif tok in RESULTS:
                    raise BadGame("bad_movetext", "result inside the movetext")
                else:
                    raise BadGame("bad_movetext", f"not a SAN move: {tok[:20]!r}")
        sans.append(tok)
    if not sans:
        raise BadGame("empty")
    return format_transcript(sans), len(sans)


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
