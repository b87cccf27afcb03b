"""Corpus games -> (position, move) pairs in memory-mapped numpy shards (`lab chess data positions`).

Each game's transcript is replayed and every position before a move becomes one training pair: the
70-value encoding of board.py (side to move's view) and the move's index in moves.py's space. The
replay (`replay_raw`) is a small board of its own in local variables -- bitboards for python-chess's
attack tables, a 64-byte mailbox for the encoding, no move generation: each distinct SAN string is parsed
once, a move is resolved from the attacks onto its target square, and only when two pieces could make it
(a pin, or an SAN without disambiguation) does it test which one leaves its king safe. Every ply appends
its mailbox; a shard's plies are encoded in one vectorised pass (Black's flipped to its view). That is
exact for legal games (tested equal to python-chess); `validate=True` replays with python-chess's
`push_san` instead (illegal games dropped, counted).

Work is split into units of `unit_games` games; worker processes turn a unit into one shard
(`shard-NNNNN.{x,y,game,ply}.npy`, uint8 / uint16 / uint32 / uint16) written atomically, so a killed
conversion resumes by redoing only the units whose shard is missing; `meta.json` is written last. Game
g is held out for validation when g % val_every == 0 (the same games for every consumer). On a Ray
backend each unit is one task that gets its games' transcripts and sends its arrays back: the driver
writes every shard (the output folder only needs to be on the driver's machine), the same bytes as
locally, and resumes the same way.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chess
import numpy as np

from lab_shared.errors import LabError
from lab_shared.io import atomic_path, atomic_write_json, read_json
from lab_transcendence.board import ENCODED_LEN
from lab_transcendence.moves import FROM_TO, PROMO_PAIRS, UNDER_PROMOTIONS
from lab_transcendence.procs import die_with_parent

FORMAT = "lab-chess-positions-1"
PIECES = {"N": 1, "B": 2, "R": 3, "Q": 4, "K": 5}  # piece type - 1
_SQ = {chess.SQUARE_NAMES[s]: s for s in chess.SQUARES}


class BadMove(ValueError):
    pass


_NUMBERS = re.compile(r"\d+\.+")


def transcript_sans(text: str) -> list[str]:
    """`;1.e4 e5 2.Nf3` -> ['e4', 'e5', 'Nf3']."""
    return _NUMBERS.sub(" ", text.lstrip(";")).split()


# piece codes as seen by the other side: own 1..6 <-> opponent 7..12 (0 stays empty)
_SWAP = np.array([0, *range(7, 13), *range(1, 7)], dtype=np.uint8)


def _encode(boxes, castling: list[int], ep_files: list[int], black: np.ndarray) -> np.ndarray:
    """(n, 70) encodings: `boxes` 64 bytes a ply (White 1..6, Black 7..12, real squares), the castling
    rights mask and en passant file + 1 of each ply, `black` 1 where Black moves (flipped to its view)."""
    n = len(black)
    out = np.empty((n, ENCODED_LEN), dtype=np.uint8)
    board = np.frombuffer(boxes, dtype=np.uint8).reshape(n, 64)
    out[:, :64] = board
    rows_b = np.flatnonzero(black)
    if len(rows_b):  # the mover's view: ranks mirrored, colours swapped
        out[rows_b, :64] = _SWAP[board[rows_b].reshape(-1, 8, 8)[:, ::-1, :].reshape(-1, 64)]
    out[:, 64] = black
    cs = np.asarray(castling, dtype=np.uint64)
    for i, (w, b) in enumerate(((7, 63), (0, 56), (63, 7), (56, 0))):  # h1 a1 h8 a8 in the mover's view
        out[:, 65 + i] = np.where(black, cs >> np.uint64(b), cs >> np.uint64(w)) & np.uint64(1)
    out[:, 69] = ep_files
    return out


# -- the fast replay: SAN parsed once per distinct string, the board in local variables ---------------

_ALL = chess.BB_ALL
_START = chess.Board()
_START_PIECES = [[_START.pieces_mask(pt, c) for pt in chess.PIECE_TYPES] for c in (chess.WHITE, chess.BLACK)]
_START_CASTLING = _START.castling_rights
_START_BOX = bytes(
    0 if (p := _START.piece_at(sq)) is None else p.piece_type + (0 if p.color == chess.WHITE else 6)
    for sq in chess.SQUARES
)
_PARSED: dict[str, tuple] = {}
_UNDER = {p: FROM_TO + UNDER_PROMOTIONS.index(p) * PROMO_PAIRS for p in UNDER_PROMOTIONS}
KNIGHT_ATT, KING_ATT = chess.BB_KNIGHT_ATTACKS, chess.BB_KING_ATTACKS
DIAG_ATT, DIAG_MASK = chess.BB_DIAG_ATTACKS, chess.BB_DIAG_MASKS
RANK_ATT, RANK_MASK = chess.BB_RANK_ATTACKS, chess.BB_RANK_MASKS
FILE_ATT, FILE_MASK = chess.BB_FILE_ATTACKS, chess.BB_FILE_MASKS


def _parse(san: str) -> tuple:
    """(piece 0..5, or 6 = O-O, 7 = O-O-O; target; disambiguation mask; promotion; pawn capture file or -1)."""
    s = san.rstrip("+#!?")
    if s in ("O-O", "0-0"):
        return 6, 0, _ALL, None, -1
    if s in ("O-O-O", "0-0-0"):
        return 7, 0, _ALL, None, -1
    promo = None
    if "=" in s:
        s, p = s.split("=", 1)
        promo = PIECES[p] + 1 if p in PIECES and p != "K" else None
        if promo is None:
            raise BadMove(san)
    to = _SQ.get(s[-2:])
    if to is None:
        raise BadMove(san)
    if s[0] not in PIECES:  # pawn
        if "x" in s:
            f = ord(s[0]) - 97
            if not 0 <= f < 8:
                raise BadMove(san)
            return 0, to, _ALL, promo, f
        return 0, to, _ALL, promo, -1
    mask = _ALL
    for ch in s[1:-2].replace("x", ""):
        if "a" <= ch <= "h":
            mask &= chess.BB_FILES[ord(ch) - 97]
        elif "1" <= ch <= "8":
            mask &= chess.BB_RANKS[ord(ch) - 49]
        else:
            raise BadMove(san)
    return PIECES[s[0]], to, mask, promo, -1


def _pinned(frm: int, to: int, ksq: int, occ: int, opp: list[int]) -> bool:
    """Whether moving the (non-king) piece frm -> to exposes the mover's king (at ksq) to a slider."""
    occ = occ & ~(1 << frm) | (1 << to)
    keep = ~(1 << to)
    diag, line = (opp[2] | opp[4]) & keep, (opp[3] | opp[4]) & keep
    if DIAG_ATT[ksq][DIAG_MASK[ksq] & occ] & diag:
        return True
    return bool((RANK_ATT[ksq][RANK_MASK[ksq] & occ] | FILE_ATT[ksq][FILE_MASK[ksq] & occ]) & line)


def _state(board: chess.Board | None) -> tuple:
    """(pieces, occupancy, mailbox, castling, ep square, ep file + 1, side to move) of a board (the start)."""
    if board is None:
        pieces = [list(_START_PIECES[0]), list(_START_PIECES[1])]
        return pieces, [sum(pieces[0]), sum(pieces[1])], bytearray(_START_BOX), _START_CASTLING, -1, 0, 0
    pieces = [[board.pieces_mask(pt, c) for pt in chess.PIECE_TYPES] for c in (chess.WHITE, chess.BLACK)]
    box = bytearray(
        0 if (p := board.piece_at(sq)) is None else p.piece_type + (0 if p.color == chess.WHITE else 6)
        for sq in chess.SQUARES
    )
    ep = -1 if board.ep_square is None else board.ep_square
    me = 1 if board.turn == chess.BLACK else 0
    return (
        pieces,
        [sum(pieces[0]), sum(pieces[1])],
        box,
        board.castling_rights,
        ep,
        0 if ep < 0 else (ep & 7) + 1,
        me,
    )


def replay_raw(
    sans: list[str],
    boxes: bytearray,
    castles: list[int],
    eps: list[int],
    ys: list[int],
    start: chess.Board | None = None,
) -> None:
    """Replay one game from the start (or from `start`), appending per ply the board before the move (64
    bytes to `boxes`), its castling mask, its en passant file + 1 and the move's index. BadMove (a
    ValueError) when a move cannot be made; the lists may then hold part of the game (the caller cuts them)."""
    pieces, occ, box, castling, ep_sq, ep_file, me = _state(start)
    parsed = _PARSED
    for san in sans:
        p = parsed.get(san)
        if p is None:
            p = parsed[san] = _parse(san)
        mine, theirs = pieces[me], pieces[1 - me]
        boxes += box
        castles.append(castling)
        eps.append(ep_file)
        pt, to, mask, promo, cap_file = p
        if pt >= 6:  # castling
            frm = 60 if me else 4
            to = frm + (2 if pt == 6 else -2)
            pt = 5
            if not mine[5] >> frm & 1:
                raise BadMove(san)
        elif pt == 0:
            pawns = mine[0]
            if cap_file >= 0:
                frm = (to >> 3) * 8 + (8 if me else -8) + cap_file
            elif pawns >> (to + 8 if me else to - 8) & 1:
                frm = to + 8 if me else to - 8
            else:
                frm = to + 16 if me else to - 16
            if not (0 <= frm < 64 and pawns >> frm & 1):
                raise BadMove(san)
        else:
            allocc = occ[0] | occ[1]
            if pt == 1:
                att = KNIGHT_ATT[to]
            elif pt == 5:
                att = KING_ATT[to]
            elif pt == 2:
                att = DIAG_ATT[to][DIAG_MASK[to] & allocc]
            elif pt == 3:
                att = RANK_ATT[to][RANK_MASK[to] & allocc] | FILE_ATT[to][FILE_MASK[to] & allocc]
            else:
                att = (
                    DIAG_ATT[to][DIAG_MASK[to] & allocc]
                    | RANK_ATT[to][RANK_MASK[to] & allocc]
                    | FILE_ATT[to][FILE_MASK[to] & allocc]
                )
            cand = mine[pt] & att & mask
            if not cand:
                raise BadMove(san)
            if cand & (cand - 1):  # two candidates: keep the ones that do not expose the king (pins)
                ksq = mine[5].bit_length() - 1
                ok = [sq for sq in chess.scan_forward(cand) if not _pinned(sq, to, ksq, allocc, theirs)]
                if len(ok) != 1:
                    raise BadMove(san)
                frm = ok[0]
            else:
                frm = cand.bit_length() - 1
        if promo is not None and promo != 5:
            f, t = (frm ^ 56, to ^ 56) if me else (frm, to)
            ys.append(_UNDER[promo] + (f & 7) * 2 + (t & 7))  # moves.promo_pair: 3 x from-file + direction
        else:
            ys.append((frm ^ 56) * 64 + (to ^ 56) if me else frm * 64 + to)
        fb, tb = 1 << frm, 1 << to
        op = 1 - me
        base = 7 if me else 1
        captured = box[to]
        if captured:
            i = captured - (1 if me else 7)  # the opponent's piece type
            if not 0 <= i < 6:
                raise BadMove(san)  # our own piece on the target
            theirs[i] ^= tb
            occ[op] ^= tb
        elif pt == 0 and to == ep_sq and (frm - to) & 7:  # en passant
            csq = to + 8 if me else to - 8
            theirs[0] ^= 1 << csq
            occ[op] ^= 1 << csq
            box[csq] = 0
        new = pt if promo is None else promo - 1
        mine[pt] ^= fb
        mine[new] |= tb
        occ[me] ^= fb | tb
        box[frm] = 0
        box[to] = base + new
        if pt == 5:
            if to - frm in (2, -2):  # castling: the rook jumps too
                r_from, r_to = (to + 1, to - 1) if to > frm else (to - 2, to + 1)
                rb = 1 << r_from | 1 << r_to
                mine[3] ^= rb
                occ[me] ^= rb
                box[r_from], box[r_to] = 0, base + 3
            castling &= ~(chess.BB_RANK_8 if me else chess.BB_RANK_1)
        castling &= ~(fb | tb)
        if pt == 0 and to - frm in (16, -16):
            ep_sq = (frm + to) >> 1
            ep_file = (ep_sq & 7) + 1
        else:
            ep_sq, ep_file = -1, 0
        me = op


def replay_game(sans: list[str], start: chess.Board | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, 70) uint8 positions and (N,) uint16 move indices of one game (fast replay), from the start or
    from the position `start`."""
    boxes, castles, eps, ys = bytearray(), [], [], []
    replay_raw(sans, boxes, castles, eps, ys, start)
    if not ys:
        return np.zeros((0, ENCODED_LEN), np.uint8), np.zeros(0, np.uint16)
    first_black = start is not None and start.turn == chess.BLACK
    black = ((np.arange(len(ys)) + first_black) & 1).astype(np.uint8)
    return _encode(boxes, castles, eps, black), np.array(ys, dtype=np.uint16)


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
    """Worker: one unit of games -> one shard (all its games encoded at once). Returns its counts."""
    out, name, first, texts, validate = args
    parts, counts = _unit_arrays((name, first, texts, validate))
    _write_shard(Path(out), name, parts)
    return counts


def _unit_arrays(args: tuple) -> tuple[dict[str, np.ndarray], dict]:
    """One unit of games -> its shard's arrays (x, y, game, ply) and counts (a Ray task: sent back)."""
    name, first, texts, validate = args
    ys: list[int] = []
    lengths, kept = [], []
    dropped = 0
    if validate:
        xs = []
        for j, text in enumerate(texts):
            try:
                x, y = replay_game_checked(transcript_sans(text))
            except (ValueError, KeyError, IndexError, StopIteration):
                dropped += 1
                continue
            xs.append(x)
            ys += y.tolist()
            lengths.append(len(y))
            kept.append(first + j)
        x_all = np.concatenate(xs) if xs else np.zeros((0, ENCODED_LEN), np.uint8)
    else:
        boxes, castles, eps = bytearray(), [], []
        for j, text in enumerate(texts):
            n_ys = len(ys)
            try:
                replay_raw(transcript_sans(text), boxes, castles, eps, ys)
            except (ValueError, KeyError, IndexError):
                del boxes[64 * n_ys :], castles[n_ys:], eps[n_ys:], ys[n_ys:]
                dropped += 1
                continue
            lengths.append(len(ys) - n_ys)
            kept.append(first + j)
    lens = np.asarray(lengths, dtype=np.int64)
    ply = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)  # games start with White
    if not validate:
        empty = np.zeros((0, ENCODED_LEN), np.uint8)
        x_all = _encode(boxes, castles, eps, (ply & 1).astype(np.uint8)) if len(ply) else empty
    parts = {
        "x": x_all,
        "y": np.asarray(ys, dtype=np.uint16),
        "game": np.repeat(np.asarray(kept, dtype=np.uint32), lens),
        "ply": ply.astype(np.uint16),
    }
    counts = {
        "name": name,
        "positions": int(len(parts["y"])),
        "games": len(texts) - dropped,
        "dropped": dropped,
    }
    return parts, counts


def _write_shard(out: Path, name: str, parts: dict[str, np.ndarray]) -> None:
    for key in ("x", "y", "game", "ply"):  # `ply` last: its file marks the shard complete
        with atomic_path(out / f"{name}.{key}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, parts[key])


def corpus_texts(corpus: Path) -> tuple[list[str], dict]:
    """The corpus's games as transcripts (`;1.e4 e5 ...`) and its meta.json (a `lab chess data` folder)."""
    from lab_transcendence.lichess import load_games
    from lab_transcendence.tokenizer import load_tokenizer

    games, meta = load_games(corpus)
    tok = load_tokenizer(meta.get("tokenizer", "char"), corpus)
    return [tok.decode(np.asarray(g)) for g in games], meta


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
    backend: Any = None,
) -> dict:
    """Replay a `lab chess data` folder's games into position shards in `out`; returns meta.json's dict.
    `workers` local processes, or (`backend` Ray) one task a unit, the shards written here."""
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
    if backend is not None and backend.is_ray:
        from lab_shared.backend import map_tasks

        def write(name: str, res: tuple) -> None:  # as each unit comes back (completion order)
            _write_shard(out, name, res[0])
            bar.update(1)

        tasks = [(name, (name, first, texts, val)) for _, name, first, texts, val in jobs]
        map_tasks(_unit_arrays, tasks, backend, on_result=write, show_progress=False)
    elif workers > 1 and len(jobs) > 1:
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
