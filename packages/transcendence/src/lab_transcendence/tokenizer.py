"""Tokenizers for game transcripts: the paper's 32 characters, or one token per move.

Both work on the transcript text format (`;1.e4 e5 2.Nf3 Nc6`, games joined by `;`).

- `char`: the paper's vocabulary exactly, ids in sorted order (as nanoGPT's meta.pkl).
- `move`: `;` starts a game; every SAN move (check/mate suffix included) is one token. Move numbers are
  not tokens: `decode` puts them back from the ply count, so `decode(encode(s)) == s` for well-formed
  transcripts and sequences are ~5x shorter than in characters.
- `vocab`: the frequent moves of a corpus plus a character fallback (vocab.py); it lives in a file
  (`vocab.json` in a data or model folder), so it is loaded with `load_tokenizer(kind, folder)`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

CHAR_VOCAB = " #+-.0123456789;=BKNOQRabcdefghx"
GAME_START = ";"

FILES = "abcdefgh"
RANKS = "12345678"


class Tokenizer(Protocol):
    kind: str
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids) -> str: ...


class CharTokenizer:
    """The paper's character-level tokenizer: 32 symbols, id = index in sorted order."""

    kind = "char"

    def __init__(self) -> None:
        self.vocab = CHAR_VOCAB
        self.vocab_size = len(CHAR_VOCAB)
        self.stoi = {c: i for i, c in enumerate(CHAR_VOCAB)}
        self.game_start_id = self.stoi[GAME_START]
        self.space_id = self.stoi[" "]
        # bytes -> ids lookup table for fast bulk encoding (255 marks a character outside the vocabulary)
        table = bytearray([255]) * 256
        for c, i in self.stoi.items():
            table[ord(c)] = i
        self._table = bytes(table)
        self._inverse = bytes(ord(c) for c in CHAR_VOCAB) + bytes(256 - len(CHAR_VOCAB))

    def encode(self, text: str) -> list[int]:
        return list(self.encode_bytes(text))

    def encode_bytes(self, text: str) -> bytes:
        """Encode to one byte per character (the shard format); ValueError on characters outside the vocab."""
        out = text.encode("ascii", errors="replace").translate(self._table)
        if 255 in out:
            bad = sorted({c for c in text if c not in self.stoi})
            raise ValueError(f"characters outside the chess vocabulary: {bad!r}")
        return out

    def decode(self, ids) -> str:
        if isinstance(ids, np.ndarray) and ids.dtype == np.uint8:  # a shard's game: no per-id loop
            return ids.tobytes().translate(self._inverse).decode("ascii")
        return bytes(int(i) for i in ids).translate(self._inverse).decode("ascii")


def _squares() -> list[tuple[int, int, str]]:
    return [(f, r, FILES[f] + RANKS[r]) for r in range(8) for f in range(8)]


def _piece_reaches(piece: str, f0: int, r0: int, f1: int, r1: int) -> bool:
    df, dr = abs(f1 - f0), abs(r1 - r0)
    if (df, dr) == (0, 0):
        return False
    if piece == "N":
        return (df, dr) in ((1, 2), (2, 1))
    if piece == "B":
        return df == dr
    if piece == "R":
        return df == 0 or dr == 0
    if piece == "Q":
        return df == dr or df == 0 or dr == 0
    if piece == "K":
        return max(df, dr) == 1
    raise ValueError(piece)


@lru_cache(maxsize=1)
def san_vocabulary() -> tuple[str, ...]:
    """Every SAN string a legal chess move can have (suffixes `+`/`#` included), in a fixed order."""
    moves: list[str] = ["O-O", "O-O-O"]
    sq = _squares()
    # pawns: pushes, captures, promotions
    for f, r, name in sq:
        if r in (0, 7):
            for p in "QRBN":
                moves.append(f"{name}={p}")
                for df in (-1, 1):
                    if 0 <= f + df < 8:
                        moves.append(f"{FILES[f + df]}x{name}={p}")
        elif 1 <= r <= 6:
            moves.append(name)
            for df in (-1, 1):
                if 0 <= f + df < 8:
                    moves.append(f"{FILES[f + df]}x{name}")
    # pieces, with every disambiguation a reachable origin square allows
    for piece in "NBRQK":
        for f1, r1, dest in sq:
            origins = [(f0, r0, n0) for f0, r0, n0 in sq if _piece_reaches(piece, f0, r0, f1, r1)]
            prefixes = {""}
            if piece != "K":
                for f0, r0, n0 in origins:
                    prefixes.update({FILES[f0], RANKS[r0], n0})
            for pre in sorted(prefixes, key=lambda s: (len(s), s)):
                moves.append(f"{piece}{pre}{dest}")
                moves.append(f"{piece}{pre}x{dest}")
    return tuple(m + s for m in moves for s in ("", "+", "#"))


class MoveTokenizer:
    """One token per move. Ids: 0 = pad (space), 1 = `;` (game start), then the SAN vocabulary."""

    kind = "move"

    def __init__(self) -> None:
        self.itos = [" ", GAME_START, *san_vocabulary()]
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.vocab_size = len(self.itos)
        self.pad_id = 0
        self.game_start_id = 1

    def encode(self, text: str) -> list[int]:
        """Transcript text -> ids. Move numbers (`12.`) are dropped; unknown tokens raise ValueError."""
        ids: list[int] = []
        stoi = self.stoi
        for gi, game in enumerate(text.split(GAME_START)):
            if gi > 0:
                ids.append(self.game_start_id)
            for word in game.split():
                dot = word.rfind(".")
                if dot >= 0:
                    if not word[:dot].isdigit():
                        raise ValueError(f"bad move number in {word!r}")
                    word = word[dot + 1 :]
                    if not word:
                        continue
                tok = stoi.get(word)
                if tok is None:
                    raise ValueError(f"not a SAN move: {word!r}")
                ids.append(tok)
        return ids

    def decode(self, ids) -> str:
        """Ids -> transcript text with move numbers restored (`;1.e4 e5 2.Nf3`)."""
        parts: list[str] = []
        ply = None  # None until the first `;`: a sequence may start mid-game (then numbers are unknown)
        for i in ids:
            tok = self.itos[int(i)]
            if tok == GAME_START:
                parts.append(GAME_START)
                ply = 0
                continue
            if tok == " ":
                continue
            if ply is None:
                parts.append(("" if not parts else " ") + tok)
                continue
            sep = "" if parts and parts[-1] == GAME_START else " "
            if ply % 2 == 0:
                parts.append(f"{sep}{ply // 2 + 1}.{tok}")
            else:
                parts.append(f" {tok}")
            ply += 1
        return "".join(parts)


@lru_cache(maxsize=2)
def get_tokenizer(kind: Literal["char", "move"] | str = "char") -> CharTokenizer | MoveTokenizer:
    """The tokenizer of a kind ("char" = the paper's 32 characters, "move" = one token per move)."""
    if kind == "char":
        return CharTokenizer()
    if kind == "move":
        return MoveTokenizer()
    from lab_shared.errors import LabError

    if kind == "vocab":
        raise LabError("the vocab tokenizer lives in a file: load it with load_tokenizer('vocab', FOLDER)")
    raise LabError(f"unknown tokenizer {kind!r} (choose char, move or vocab)")


def load_tokenizer(kind: str, folder: str | Path | None = None):
    """The tokenizer of a data or model folder: char and move are fixed, vocab is read from FOLDER/vocab.json."""
    if kind == "vocab":
        from lab_shared.errors import LabError
        from lab_transcendence.vocab import VOCAB_FILE, VocabTokenizer

        if folder is None:
            raise LabError("the vocab tokenizer needs the folder that holds its vocab.json")
        return VocabTokenizer.load(Path(folder) / VOCAB_FILE)
    if not isinstance(kind, str):
        from lab_shared.errors import LabError

        raise LabError(f"tokenizer must be a name, got {kind!r}")
    return get_tokenizer(kind)
