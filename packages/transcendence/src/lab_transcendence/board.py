"""The board as 70 small integers, always from the side to move's point of view.

Layout of one encoded position (uint8):

- 0..63: the squares a1..h8 of the board *as seen by the side to move*: when Black is to move the board
  is mirrored top to bottom (square s -> s ^ 56) and the colours are swapped. Values: 0 empty, 1..6 the
  mover's pawn, knight, bishop, rook, queen, king, 7..12 the opponent's.
- 64: the real side to move (0 White, 1 Black);
- 65..68: castling rights: mover king side, mover queen side, opponent king side, opponent queen side;
- 69: en passant file + 1 (0: none), python-chess's `ep_square` rule (set after every double push).

Why flip: chess is symmetric under "mirror the ranks and swap the colours", so a position with Black to
move is the same problem as its mirror with White to move. Flipping lets one set of weights (and one
from-square x to-square move space) serve both colours, halves what the model must learn, and makes a
pawn push always "up the board". The real colour is kept as token 64 so nothing is lost.
"""

from __future__ import annotations

import chess
import numpy as np

ENCODED_LEN = 70
SQUARE_VALUES = 13  # 0 empty + 6 own + 6 opponent piece types
STM, CASTLE, EP = 64, 65, 69


def flip_square(square: int, black: bool) -> int:
    """A square as seen by the side to move (mirrored when Black moves)."""
    return square ^ 56 if black else square


def encode_bitboards(
    pieces: tuple[tuple[int, ...], tuple[int, ...]], black: bool, castling: int, ep_square: int | None
) -> np.ndarray:
    """Encode from raw bitboards: pieces[color][piece_type - 1] (color 0 White, 1 Black), castling mask.

    The shared core of `encode` and the fast corpus replay (positions.py), so both give identical rows.
    """
    out = np.zeros(ENCODED_LEN, dtype=np.uint8)
    me, them = (1, 0) if black else (0, 1)
    for side, base in ((me, 1), (them, 7)):
        for pt in range(6):
            bb = pieces[side][pt]
            if black:
                bb = chess.flip_vertical(bb)
            while bb:
                low = bb & -bb
                out[low.bit_length() - 1] = base + pt
                bb ^= low
    out[STM] = 1 if black else 0
    rights = (
        (chess.BB_H8, chess.BB_A8, chess.BB_H1, chess.BB_A1)
        if black
        else (chess.BB_H1, chess.BB_A1, chess.BB_H8, chess.BB_A8)
    )
    for i, rook in enumerate(rights):
        out[CASTLE + i] = 1 if castling & rook else 0
    out[EP] = 0 if ep_square is None else chess.square_file(ep_square) + 1
    return out


def board_bitboards(board: chess.Board) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(White's, Black's) six piece bitboards (pawn .. king) of a python-chess board."""
    return tuple(
        tuple(board.pieces_mask(pt, color) for pt in chess.PIECE_TYPES)
        for color in (chess.WHITE, chess.BLACK)
    )  # type: ignore[return-value]


def encode(board: chess.Board) -> np.ndarray:
    """The 70-value encoding of a python-chess board (see the module docstring)."""
    return encode_bitboards(
        board_bitboards(board), board.turn == chess.BLACK, board.castling_rights, board.ep_square
    )


def encode_many(boards: list[chess.Board]) -> np.ndarray:
    """(N, 70) uint8 encodings of many boards."""
    out = np.zeros((len(boards), ENCODED_LEN), dtype=np.uint8)
    for i, b in enumerate(boards):
        out[i] = encode(b)
    return out
