"""The fixed move space of the position policy: from-square x to-square plus under-promotions.

Squares are seen from the side to move (board.py flips them for Black), so a move's index does not depend
on the colour. Indices:

- 0..4095: `from * 64 + to` for every move, queen promotions included (a pawn reaching the last rank
  with no promotion letter would be illegal, so from-to alone names the queen promotion);
- 4096..4161: under-promotions to knight, bishop or rook: 4096 + 22 * piece + pair, where pair numbers
  the 22 pawn moves from the 7th to the 8th rank (8 pushes, 7 captures to each side).

MOVE_SPACE = 4096 + 3 * 22 = 4162. Most from-to pairs can never be legal (1,792 of the 4,096 are reachable
by a queen or knight move); they stay in the space so the head is a plain bilinear from x to product.
"""

from __future__ import annotations

import chess
import numpy as np

from lab_transcendence.board import flip_square

FROM_TO = 4096
UNDER_PROMOTIONS = (chess.KNIGHT, chess.BISHOP, chess.ROOK)
PROMO_PAIRS = 22
MOVE_SPACE = FROM_TO + len(UNDER_PROMOTIONS) * PROMO_PAIRS  # 4162


def promo_pair(from_sq: int, to_sq: int) -> int:
    """0..21 for a 7th -> 8th rank pawn move (mover's view), numbered by from-file and direction."""
    d = chess.square_file(to_sq) - chess.square_file(from_sq) + 1  # 0 capture left, 1 push, 2 capture right
    return chess.square_file(from_sq) * 3 + d - 1


def move_index(move: chess.Move, black: bool) -> int:
    """Index of a move in the move space (the mover is Black when `black`)."""
    f, t = flip_square(move.from_square, black), flip_square(move.to_square, black)
    if move.promotion in UNDER_PROMOTIONS:
        return FROM_TO + UNDER_PROMOTIONS.index(move.promotion) * PROMO_PAIRS + promo_pair(f, t)
    return f * 64 + t


def index_move(index: int, black: bool) -> tuple[int, int, int | None]:
    """(from, to, promotion) in real squares for an index (promotion None = none or queen, see legal)."""
    if index < FROM_TO:
        f, t = divmod(index, 64)
        return flip_square(f, black), flip_square(t, black), None
    piece, pair = divmod(index - FROM_TO, PROMO_PAIRS)
    raw = pair + 1
    file_f, d = divmod(raw, 3)
    f = chess.square(file_f, 6)
    t = chess.square(file_f + d - 1, 7)
    return flip_square(f, black), flip_square(t, black), UNDER_PROMOTIONS[piece]


def legal_indices(board: chess.Board) -> tuple[list[chess.Move], np.ndarray]:
    """The legal moves of a board and their indices (int64), in python-chess's order."""
    black = board.turn == chess.BLACK
    moves = list(board.legal_moves)
    return moves, np.array([move_index(m, black) for m in moves], dtype=np.int64)
