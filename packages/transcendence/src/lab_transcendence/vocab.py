"""A move vocabulary built from a corpus: the frequent SAN moves, plus a character fallback.

`lab chess data vocab CORPUS --out vocab.json --min-count N` counts every move of the corpus (SAN as it
appears in the transcripts, suffixes included) and keeps those seen at least N times. Any other move --
and any other word -- is spelled with characters, so nothing made of SAN characters is unencodable.

Ids: 0 = pad (` `), 1 = `;` (game start), 2.. the kept moves (most frequent first), then three sets of
29 fallback characters (`#+-0-9=BKNOQRa-hx`): a word's first character (`N`), a middle one (`##b`) and
its last one (`##+</w>`). A move is one token when it is in the vocabulary, else first + middles + last
(a one-character word is its first-character token alone). The encoding is prefix-free: a move ends
with a whole-move token or a `</w>` token, so a sampler knows where a move stops. This is exactly what a
Hugging Face BPE with no merges, `ignore_merges`, `continuing_subword_prefix="##"` and
`end_of_word_suffix="</w>"` does (export.py writes it; AutoTokenizer gives the same ids, tested).

Words are cut as in the exported tokenizer: move numbers (`\\d+\\.+`) removed, `;` its own word,
whitespace splits. `decode` puts move numbers back from the ply count: `decode(encode(s)) == s` for
well-formed transcripts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from lab_shared.errors import LabError
from lab_shared.io import atomic_write_json, read_json

FORMAT = "lab-chess-vocab-1"
VOCAB_FILE = "vocab.json"
FALLBACK = "#+-0123456789=BKNOQRabcdefghx"
PREFIX, SUFFIX = "##", "</w>"
GAME_START = ";"
_NUMBER = re.compile(r"\d+\.+")
_WORDS = re.compile(r";|[^\s;]+")


def words(text: str) -> list[str]:
    """The words of a transcript as the tokenizer cuts them (move numbers removed, `;` alone)."""
    return [w for piece in _NUMBER.split(text) for w in _WORDS.findall(piece)]


class VocabTokenizer:
    """Frequent moves as single tokens, other words spelled in characters (see the module docstring)."""

    kind = "vocab"

    def __init__(self, moves: Iterable[str], info: dict | None = None):
        from lab_transcendence.tokenizer import san_vocabulary

        self.moves = list(moves)
        valid = set(san_vocabulary())
        bad = [m for m in self.moves if m not in valid]
        if bad:
            raise LabError(f"vocabulary entry {bad[0]!r} is not a SAN move")
        if len(set(self.moves)) != len(self.moves):
            raise LabError("vocabulary lists a move twice")
        self.info = dict(info or {})
        self.first = {c: 2 + len(self.moves) + i for i, c in enumerate(FALLBACK)}
        self.middle = {c: i + len(FALLBACK) for c, i in self.first.items()}
        self.last = {c: i + 2 * len(FALLBACK) for c, i in self.first.items()}
        self.itos = [" ", GAME_START, *self.moves, *FALLBACK]
        self.itos += [PREFIX + c for c in FALLBACK] + [PREFIX + c + SUFFIX for c in FALLBACK]
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.vocab_size = len(self.itos)
        self.pad_id, self.game_start_id = 0, 1
        self.space = self.pad_id
        # ids that end a move: whole moves and last characters
        self.first_ids, self.middle_ids = frozenset(self.first.values()), frozenset(self.middle.values())
        self.last_ids = frozenset(self.last.values())
        self.final_ids = frozenset(range(2, 2 + len(self.moves))) | self.last_ids

    # -- encoding ----------------------------------------------------------------------------------

    def encode_word(self, word: str) -> list[int]:
        tid = self.stoi.get(word)
        if tid is not None:
            return [tid]
        try:
            return [self.first[word[0]], *(self.middle[c] for c in word[1:-1]), self.last[word[-1]]]
        except KeyError:
            bad = sorted({c for c in word if c not in self.first})
            raise ValueError(f"characters outside the move vocabulary's fallback: {bad!r}") from None

    def encode_move(self, san: str) -> list[int]:
        """The ids of one move (one token, or its spelling)."""
        return self.encode_word(san)

    def encode(self, text: str) -> list[int]:
        """Transcript text -> ids; ValueError on characters outside `#+-.0-9;=BKNOQRa-hx` and whitespace."""
        out: list[int] = []
        for w in words(text):
            out += self.encode_word(w)
        return out

    # -- decoding ----------------------------------------------------------------------------------

    def split_words(self, ids) -> list[str]:
        """Ids -> words (a whole move, a first character or `;` starts a word; `##` tokens extend it)."""
        out: list[str] = []
        for i in ids:
            tok = self.itos[int(i)]
            if tok == " ":
                continue
            if tok.startswith(PREFIX) and len(tok) > 1 and out and out[-1] != GAME_START:
                out[-1] += tok[len(PREFIX) :].removesuffix(SUFFIX)
            else:
                out.append(tok.removeprefix(PREFIX).removesuffix(SUFFIX) if tok.startswith(PREFIX) else tok)
        return out

    def move_text(self, ids) -> str:
        """The SAN a sampled move's ids spell, or "" when they are not one well-formed move."""
        ids = [int(i) for i in ids]
        if not ids or ids[-1] not in self.final_ids:
            return ""
        if len(ids) == 1:
            return self.itos[ids[0]] if 2 <= ids[0] < 2 + len(self.moves) else ""
        if ids[0] not in self.first_ids or any(i not in self.middle_ids for i in ids[1:-1]):
            return ""
        if ids[-1] not in self.last_ids:
            return ""
        return "".join(self.split_words(ids))

    def decode(self, ids) -> str:
        """Ids -> transcript text with move numbers restored (`;1.e4 e5 2.Nf3`)."""
        parts: list[str] = []
        ply = None  # unknown until the first `;` (a sequence may start mid-game)
        for w in self.split_words(ids):
            if w == GAME_START:
                parts.append(GAME_START)
                ply = 0
                continue
            if ply is None:
                parts.append(("" if not parts else " ") + w)
                continue
            sep = "" if parts and parts[-1] == GAME_START else " "
            parts.append(f"{sep}{ply // 2 + 1}.{w}" if ply % 2 == 0 else f" {w}")
            ply += 1
        return "".join(parts)

    # -- files -------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"format": FORMAT, "moves": self.moves, "fallback": FALLBACK, "vocab_size": self.vocab_size,
                **{k: v for k, v in self.info.items() if k not in ("format", "moves", "fallback", "vocab_size")}}  # fmt: skip

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> VocabTokenizer:
        """A vocabulary file (or a folder holding vocab.json); LabError naming the file if it is not one."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCAB_FILE
        if not path.is_file():
            raise LabError(f"move vocabulary not found: {path} (make one with `lab chess data vocab`)")
        try:
            doc = read_json(path)
        except (ValueError, UnicodeDecodeError, OSError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise LabError(
                f"{path} is not a move vocabulary (no format {FORMAT!r}; see `lab chess data vocab`)"
            )
        moves = doc.get("moves")
        if not isinstance(moves, list) or not all(isinstance(m, str) for m in moves):
            raise LabError(f"{path}: `moves` must be a list of SAN strings")
        if doc.get("fallback", FALLBACK) != FALLBACK:
            raise LabError(f"{path}: unknown fallback alphabet {doc.get('fallback')!r}")
        try:
            tok = cls(moves, {k: v for k, v in doc.items() if k not in ("moves",)})
        except LabError as e:
            raise LabError(f"{path}: {e}") from None
        if doc.get("vocab_size", tok.vocab_size) != tok.vocab_size:
            raise LabError(
                f"{path}: vocab_size {doc.get('vocab_size')} does not match its moves ({tok.vocab_size})"
            )
        return tok


def count_moves(texts: Iterable[str]) -> tuple[Counter, int]:
    """Occurrences of every word that is not `;` (move numbers removed), and the number of games."""
    counts: Counter = Counter()
    games = 0
    for text in texts:
        ws = words(text)
        games += ws.count(GAME_START)
        counts.update(w for w in ws if w != GAME_START)
    return counts, games


def build_vocab(
    counts: Counter, min_count: int = 5, max_moves: int | None = None, info: dict | None = None
) -> VocabTokenizer:
    """The moves seen at least `min_count` times (at most `max_moves`, most frequent first; ties in the
    SAN vocabulary's order). Words that are not SAN moves are never kept (they fall back to characters)."""
    from lab_transcendence.tokenizer import san_vocabulary

    if min_count < 1:
        raise LabError(f"--min-count must be >= 1, got {min_count}")
    if max_moves is not None and not 1 <= max_moves <= 60000:
        raise LabError(f"--max-moves must be in 1..60000, got {max_moves}")
    order = {m: i for i, m in enumerate(san_vocabulary())}
    kept = sorted(
        (m for m, c in counts.items() if c >= min_count and m in order), key=lambda m: (-counts[m], order[m])
    )
    if max_moves is not None:
        kept = kept[:max_moves]
    total = sum(counts.values())
    covered = sum(counts[m] for m in kept)
    stats = {
        "min_count": min_count,
        "max_moves": max_moves,
        "distinct_moves": len(counts),
        "move_tokens": total,
        "coverage": round(covered / total, 6) if total else None,
        "counts": [counts[m] for m in kept],
    }
    return VocabTokenizer(kept, {**stats, **(info or {})})
