"""Corpus games -> (position, move) pairs in memory-mapped numpy shards (`lab chess data positions`).

Each game's transcript is replayed and every position before a move becomes one training pair: the
70-value encoding of board.py (side to move's view) and the move's index in moves.py's space. The
replay is a small bitboard board of its own (python-chess's attack tables, no move generation): a SAN
move is resolved from the attacks onto its target square, and only when two pieces could make it (a pin
or an SAN without disambiguation) does it test which one leaves its king safe. That is exact for legal
games; `validate=True` replays with python-chess's `push_san` instead (illegal games dropped, counted).

Work is split into units of `unit_games` games; worker processes turn a unit into one shard
(`shard-NNNNN.{x,y,game,ply}.npy`, uint8 / uint16 / uint32 / uint16) written atomically, so a killed
conversion resumes by redoing only the units whose shard is missing; `meta.json` is written last. Game
g is held out for validation when g % val_every == 0 (the same games for every consumer).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import chess
import numpy as np

from lab_shared.errors import LabError
from lab_shared.io import atomic_path, atomic_write_json, read_json
from lab_transcendence.board import ENCODED_LEN
from lab_transcendence.moves import FROM_TO, PROMO_PAIRS, UNDER_PROMOTIONS, promo_pair
from lab_transcendence.procs import die_with_parent

FORMAT = "lab-chess-positions-1"
PIECES = {"N": 1, "B": 2, "R": 3, "Q": 4, "K": 5}  # piece type - 1
_SQ = {chess.SQUARE_NAMES[s]: s for s in chess.SQUARES}


class BadMove(ValueError):
    pass


def transcript_sans(text: str) -> list[str]:
    """`;1.e4 e5 2.Nf3` -> ['e4', 'e5', 'Nf3']."""
    out = []
    for tok in text.lstrip(";").split():
        if "." in tok:
            tok = tok.rsplit(".", 1)[1]
        if tok:
            out.append(tok)
    return out


class FastBoard:
    """Piece bitboards, castling rights (python-chess's rook-square mask), en passant square, turn."""

    __slots__ = ("pieces", "occ", "castling", "ep", "black")

    def __init__(self) -> None:
        b = chess.Board()
        self.pieces = [[b.pieces_mask(pt, c) for pt in chess.PIECE_TYPES] for c in (chess.WHITE, chess.BLACK)]
        self.occ = [b.occupied_co[chess.WHITE], b.occupied_co[chess.BLACK]]
        self.castling = b.castling_rights
        self.ep: int | None = None
        self.black = False

    @classmethod
    def from_board(cls, board: chess.Board) -> FastBoard:
        """The same state as a python-chess board (tests start from arbitrary positions)."""
        fb = cls()
        fb.pieces = [
            [board.pieces_mask(pt, c) for pt in chess.PIECE_TYPES] for c in (chess.WHITE, chess.BLACK)
        ]
        fb.occ = [board.occupied_co[chess.WHITE], board.occupied_co[chess.BLACK]]
        fb.castling, fb.ep, fb.black = board.castling_rights, board.ep_square, board.turn == chess.BLACK
        return fb

    def _sliders_hit(self, ksq: int, occ: int, diag: int, line: int) -> bool:
        if chess.BB_DIAG_ATTACKS[ksq][chess.BB_DIAG_MASKS[ksq] & occ] & diag:
            return True
        rank = chess.BB_RANK_ATTACKS[ksq][chess.BB_RANK_MASKS[ksq] & occ]
        file = chess.BB_FILE_ATTACKS[ksq][chess.BB_FILE_MASKS[ksq] & occ]
        return bool((rank | file) & line)

    def _safe(self, frm: int, to: int) -> bool:
        """Whether moving the (non-king) piece frm -> to leaves the mover's king free of slider attacks."""
        me, op = (1, 0) if self.black else (0, 1)
        ksq = self.pieces[me][5].bit_length() - 1
        occ = (self.occ[0] | self.occ[1]) & ~(1 << frm) | (1 << to)
        keep = ~(1 << to)
        opp = self.pieces[op]
        return not self._sliders_hit(ksq, occ, (opp[2] | opp[4]) & keep, (opp[3] | opp[4]) & keep)

    def resolve(self, san: str) -> tuple[int, int, int | None]:
        """(from, to, promotion piece type or None) of a SAN move in this position."""
        s = san.rstrip("+#!?")
        me = 1 if self.black else 0
        back = 56 if self.black else 0
        if s in ("O-O", "0-0"):
            return back + 4, back + 6, None
        if s in ("O-O-O", "0-0-0"):
            return back + 4, back + 2, None
        promo = None
        if "=" in s:
            s, p = s.split("=", 1)
            promo = PIECES[p] + 1 if p in PIECES and p != "K" else None
            if promo is None:
                raise BadMove(san)
        to = _SQ.get(s[-2:])
        if to is None:
            raise BadMove(san)
        step = -8 if self.black else 8
        if s[0] not in PIECES:  # pawn
            pawns = self.pieces[me][0]
            if "x" in s:
                frm = chess.square(ord(s[0]) - 97, chess.square_rank(to) - (-1 if self.black else 1))
            elif pawns >> (to - step) & 1:
                frm = to - step
            else:
                frm = to - 2 * step
            if not (0 <= frm < 64 and pawns >> frm & 1):
                raise BadMove(san)
            return frm, to, promo
        pt = PIECES[s[0]]
        dis = s[1:-2].replace("x", "")
        occ = self.occ[0] | self.occ[1]
        if pt == 1:
            att = chess.BB_KNIGHT_ATTACKS[to]
        elif pt == 5:
            att = chess.BB_KING_ATTACKS[to]
        else:
            att = 0
            if pt in (2, 4):
                att |= chess.BB_DIAG_ATTACKS[to][chess.BB_DIAG_MASKS[to] & occ]
            if pt in (3, 4):
                att |= chess.BB_RANK_ATTACKS[to][chess.BB_RANK_MASKS[to] & occ]
                att |= chess.BB_FILE_ATTACKS[to][chess.BB_FILE_MASKS[to] & occ]
        cand = self.pieces[me][pt] & att
        for ch in dis:
            cand &= chess.BB_FILES[ord(ch) - 97] if "a" <= ch <= "h" else chess.BB_RANKS[ord(ch) - 49]
        if cand & (cand - 1):  # two candidates: keep the ones that do not expose the king (pins)
            squares = [sq for sq in chess.scan_forward(cand) if self._safe(sq, to)]
            if len(squares) != 1:
                raise BadMove(san)
            return squares[0], to, promo
        if not cand:
            raise BadMove(san)
        return cand.bit_length() - 1, to, promo

    def push(self, frm: int, to: int, promo: int | None) -> None:
        me, op = (1, 0) if self.black else (0, 1)
        mine, theirs = self.pieces[me], self.pieces[op]
        fb, tb = 1 << frm, 1 << to
        pt = next(i for i in range(6) if mine[i] & fb)
        if self.occ[op] & tb:
            for i in range(6):
                if theirs[i] & tb:
                    theirs[i] ^= tb
                    break
            self.occ[op] ^= tb
        elif pt == 0 and to == self.ep and (frm - to) % 8:  # en passant
            cap = 1 << (to - 8 if not self.black else to + 8)
            theirs[0] ^= cap
            self.occ[op] ^= cap
        mine[pt] ^= fb
        mine[pt if promo is None else promo - 1] |= tb
        self.occ[me] ^= fb | tb
        if pt == 5 and abs(to - frm) == 2:  # castling: the rook jumps too
            r_from, r_to = (to + 1, to - 1) if to > frm else (to - 2, to + 1)
            rb = (1 << r_from) | (1 << r_to)
            mine[3] ^= rb
            self.occ[me] ^= rb
        self.castling &= ~(fb | tb)
        if pt == 5:
            self.castling &= ~(chess.BB_RANK_8 if self.black else chess.BB_RANK_1)
        self.ep = (frm + to) // 2 if pt == 0 and abs(to - frm) == 16 else None
        self.black = not self.black


def _move_index(frm: int, to: int, promo: int | None, black: bool) -> int:
    if black:
        frm, to = frm ^ 56, to ^ 56
    if promo is not None and promo != chess.QUEEN:
        return FROM_TO + UNDER_PROMOTIONS.index(promo) * PROMO_PAIRS + promo_pair(frm, to)
    return frm * 64 + to


def _rows(raw: list[tuple], black: np.ndarray) -> np.ndarray:
    """Vectorised board.encode_bitboards over one game's recorded plies."""
    n = len(raw)
    arr = np.array(raw, dtype=np.uint64)  # (n, 14): 6 white, 6 black bitboards, castling, ep+1
    bbs = arr[:, :12].copy()
    castle = arr[:, 12].copy()
    rows_b = np.flatnonzero(black)
    if len(rows_b):  # the mover's view: swap colours and mirror ranks (= reverse the bytes)
        bbs[rows_b] = np.concatenate([bbs[rows_b, 6:], bbs[rows_b, :6]], axis=1).byteswap()
        castle[rows_b] = castle[rows_b].byteswap()
    bits = np.unpackbits(bbs.view(np.uint8).reshape(n, 12, 8), axis=2, bitorder="little")
    out = np.zeros((n, ENCODED_LEN), dtype=np.uint8)
    out[:, :64] = np.einsum("npq,p->nq", bits, np.arange(1, 13, dtype=np.uint8))
    out[:, 64] = black
    for i, sq in enumerate((7, 0, 63, 56)):  # h1 a1 h8 a8 in the mover's view
        out[:, 65 + i] = (castle >> np.uint64(sq)) & np.uint64(1)
    out[:, 69] = arr[:, 13]
    return out


def replay_game(sans: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 70) uint8 positions and (N,) uint16 move indices of one game (fast board)."""
    b = FastBoard()
    raw, black, ys = [], [], []
    for san in sans:
        w, k = b.pieces
        raw.append((*w, *k, b.castling, 0 if b.ep is None else (b.ep & 7) + 1))
        black.append(b.black)
        frm, to, promo = b.resolve(san)
        ys.append(_move_index(frm, to, promo, b.black))
        b.push(frm, to, promo)
    if not raw:
        return np.zeros((0, ENCODED_LEN), np.uint8), np.zeros(0, np.uint16)
    return _rows(raw, np.array(black, dtype=np.uint8)), np.array(ys, dtype=np.uint16)


def replay_game_checked(sans: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The same with python-chess (`push_san`: legality checked); raises ValueError on an illegal move."""
    from lab_transcendence.board import encode
    from lab_transcendence.moves import move_index

    board = chess.Board()
    xs, ys = [], []
    for san in sans:
        move = board.parse_san(san)
        xs.append(encode(board))
        ys.append(move_index(move, board.turn == chess.BLACK))
        board.push(move)
    if not xs:
        return np.zeros((0, ENCODED_LEN), np.uint8), np.zeros(0, np.uint16)
    return np.stack(xs), np.array(ys, dtype=np.uint16)


# ---------------------------------------------------------------- the conversion


def _unit_job(args: tuple) -> dict:
    """Worker: one unit of games -> one shard. Returns its counts."""
    out, name, first, texts, validate = args
    replay = replay_game_checked if validate else replay_game
    xs, ys, gs, ps = [], [], [], []
    dropped = 0
    for j, text in enumerate(texts):
        try:
            x, y = replay(transcript_sans(text))
        except (ValueError, KeyError, IndexError, StopIteration):
            dropped += 1
            continue
        xs.append(x)
        ys.append(y)
        gs.append(np.full(len(y), first + j, dtype=np.uint32))
        ps.append(np.arange(len(y), dtype=np.uint16))
    cat = lambda a, shape, dt: np.concatenate(a) if a else np.zeros(shape, dt)  # noqa: E731
    parts = {
        "x": cat(xs, (0, ENCODED_LEN), np.uint8),
        "y": cat(ys, (0,), np.uint16),
        "game": cat(gs, (0,), np.uint32),
        "ply": cat(ps, (0,), np.uint16),
    }
    for key in ("x", "y", "game"):  # `ply` last: its file marks the shard complete
        with atomic_path(Path(out) / f"{name}.{key}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, parts[key])
    with atomic_path(Path(out) / f"{name}.ply.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, parts["ply"])
    return {
        "name": name,
        "positions": int(len(parts["y"])),
        "games": len(texts) - dropped,
        "dropped": dropped,
    }


def corpus_texts(corpus: Path) -> tuple[list[str], dict]:
    """The corpus's games as transcripts (`;1.e4 e5 ...`) and its meta.json (a `lab chess data` folder)."""
    from lab_transcendence.lichess import load_games
    from lab_transcendence.tokenizer import load_tokenizer

    games, meta = load_games(corpus)
    tok = load_tokenizer(meta.get("tokenizer", "char"), corpus)
    return [tok.decode(np.asarray(g).tolist()) for g in games], meta


def _units(texts: list[str], unit_games: int) -> Iterator[tuple[int, int]]:
    for start in range(0, len(texts), unit_games):
        yield start, min(len(texts), start + unit_games)


def convert(
    corpus: str | Path,
    out: str | Path,
    workers: int = 1,
    unit_games: int = 1000,
    val_every: int = 50,
    validate: bool = False,
    force: bool = False,
    show_progress: bool = True,
) -> dict:
    """Replay a `lab chess data` folder's games into position shards in `out`; returns meta.json's dict."""
    import shutil

    from lab_shared.progress import progress

    corpus, out = Path(corpus), Path(out)
    if out.resolve() == corpus.resolve():
        raise LabError("--out must be a new folder, not the corpus itself")
    t0 = time.perf_counter()
    texts, cmeta = corpus_texts(corpus)
    if not texts:
        raise LabError(f"{corpus} holds no games")
    key = hashlib.sha256(
        f"{FORMAT}|{cmeta.get('settings_key', '')}|{cmeta.get('games_kept', len(texts))}|{unit_games}|"
        f"{validate}".encode()
    ).hexdigest()[:16]
    if force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "progress.json"
    if (out / "meta.json").is_file():
        meta = read_json(out / "meta.json")
        if meta.get("key") == key:
            return meta
        raise LabError(f"{out} holds positions made from other data (use --force or another --out)")
    if state_file.is_file() and read_json(state_file).get("key") != key:
        raise LabError(f"{out} holds an unfinished conversion of other data (use --force or another --out)")
    atomic_write_json(state_file, {"key": key, "corpus": str(corpus)})
    units = list(_units(texts, unit_games))
    names = [f"shard-{i:05d}" for i in range(len(units))]
    todo = [i for i, n in enumerate(names) if not (out / f"{n}.ply.npy").is_file()]
    jobs = [(str(out), names[i], units[i][0], texts[units[i][0] : units[i][1]], validate) for i in todo]
    bar = progress(total=len(units), desc="position shards", enabled=show_progress)
    bar.update(len(units) - len(todo))
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(
            workers, initializer=die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            for _ in pool.imap_unordered(_unit_job, jobs):
                bar.update(1)
    else:
        for job in jobs:
            _unit_job(job)
            bar.update(1)
    bar.close()
    positions = kept = 0
    for n in names:
        g = np.load(out / f"{n}.game.npy", mmap_mode="r")
        positions += len(g)
        kept += len(np.unique(g))
    dropped = len(texts) - kept  # games that failed to replay (or had no moves)
    if positions == 0:
        raise LabError(f"{corpus}: no game could be replayed")
    keep = {
        k: cmeta.get(k) for k in ("synthetic", "experts", "expert_ratings", "max_rating", "synth_settings")
    }
    meta = {
        "format": FORMAT,
        "key": key,
        "corpus": str(corpus.resolve()),
        "games": len(texts),
        "positions": positions,
        "games_dropped": dropped,
        "val_every": val_every,
        "encoding": "board.py: 64 squares (side to move's view) + stm + 4 castling + ep file",
        "move_space": "moves.py: 4096 from-to + 66 under-promotions = 4162",
        "validated": validate,
        "shards": names,
        "seconds": round(time.perf_counter() - t0, 2),
        **{k: v for k, v in keep.items() if v is not None},
    }
    atomic_write_json(out / "meta.json", meta)
    return meta


def is_positions(folder: str | Path) -> bool:
    meta = Path(folder) / "meta.json"
    doc = read_json(meta) if meta.is_file() else None
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def load_positions(folder: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """All shards of a positions folder, concatenated (x, y, game, ply) and its meta."""
    folder = Path(folder)
    if not is_positions(folder):
        raise LabError(
            f"{folder} is not a positions folder (run `lab chess data positions CORPUS --out DIR`)"
        )
    meta = read_json(folder / "meta.json")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "y", "game", "ply")}
    try:
        for n in meta["shards"]:
            for k in parts:
                parts[k].append(np.load(folder / f"{n}.{k}.npy", mmap_mode="r"))
    except (OSError, ValueError) as e:
        raise LabError(f"corrupt or missing shard in {folder}: {e}") from None
    return {k: np.concatenate(v) for k, v in parts.items()}, meta
