"""Expert labels for a positions folder (`lab chess data positions CORPUS --out DIR --label-experts N`).

N positions are sampled (seeded) from the corpus's games; every expert of the corpus (meta.json `experts`:
noisy Stockfish configurations from `lab chess data synth`) is asked for its move in each, and the (position,
move, expert) pairs are written as extra shards `label-NNNNN.{x,y,game,ply,expert}.npy` in the folder's
format, listed in meta.json's `shards` so `lab chess train --model position` reads them unchanged. A label's
`game` is its source game, so labels of held-out games stay in validation.

Chunks of positions are tasks: local, on `workers` forked processes (or here, for one); Ray, through
lab_shared.backend, one task each; a Stockfish kept per worker process. Each expert move uses its own RNG (seed, position, expert) and a fresh
engine game (ucinewgame), so the labels are the same on either backend. The driver writes each chunk's
shard as it comes back: a rerun skips chunks whose shard is there.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import chess
import chess.engine
import numpy as np

from lab_shared.backend import Backend, map_tasks
from lab_shared.errors import LabError
from lab_shared.io import atomic_path, atomic_write_json, read_json
from lab_transcendence.positions import corpus_texts, transcript_sans
from lab_transcendence.synth import Expert, expert_move, open_engine

KEYS = ("x", "y", "game", "ply", "expert")  # `expert`: index into meta.json `experts`
DTYPES = {"x": np.uint8, "y": np.uint16, "game": np.uint32, "ply": np.uint16, "expert": np.uint8}
_ENGINE: chess.engine.SimpleEngine | None = None
_PATH: str | None = None


def corpus_experts(meta: dict, where: str | Path) -> list[Expert]:
    docs = meta.get("experts")
    if not isinstance(docs, list) or not docs or not all(isinstance(d, dict) and "name" in d for d in docs):
        raise LabError(
            f"{where} has no expert definitions (meta.json 'experts'): use a `lab chess data synth` corpus"
        )
    return [Expert.from_dict(d) for d in docs]


def sample_positions(texts: list[str], n: int, seed: int) -> list[tuple[int, int, str]]:
    """n (game, ply, FEN) positions, seeded: a game uniformly, then a ply before one of its moves.

    The draws come first; each sampled game is then replayed once for all of its plies (not once a sample)."""
    rng = random.Random(f"labels-{seed}")
    games = [(g, transcript_sans(t)) for g, t in enumerate(texts)]
    games = [(g, s) for g, s in games if s]
    if not games:
        raise LabError("the corpus has no moves to sample positions from")
    draws = []
    for _ in range(n):
        k = rng.randrange(len(games))
        draws.append((k, rng.randrange(len(games[k][1]))))
    fens: dict[tuple[int, int], str] = {}
    by_game: dict[int, set[int]] = {}
    for k, ply in draws:
        by_game.setdefault(k, set()).add(ply)
    for k, plies in by_game.items():
        board, sans, last = chess.Board(), games[k][1], max(plies)
        for ply, san in enumerate(sans[: last + 1]):
            if ply in plies:
                fens[k, ply] = board.fen()
            if ply < last:
                board.push_san(san)
    return [(games[k][0], ply, fens[k, ply]) for k, ply in draws]


def _engine(path: str) -> chess.engine.SimpleEngine:
    """This worker process's Stockfish (started once, kept for its next chunks)."""
    global _ENGINE, _PATH
    if _ENGINE is None or _PATH != path:
        close_engine()
        _ENGINE, _PATH = open_engine(path), path
    return _ENGINE


def close_engine() -> None:
    global _ENGINE
    eng, _ENGINE = _ENGINE, None
    if eng is not None:
        try:
            eng.quit()
        except Exception:  # noqa: BLE001 - it may be dead already
            pass


def label_chunk(arg: tuple) -> dict:
    """A task: (first index, positions, expert dicts, seed, stockfish) -> the chunk's arrays as lists."""
    from lab_transcendence.board import encode
    from lab_transcendence.moves import move_index

    first, positions, expert_docs, seed, stockfish = arg
    experts = [Expert.from_dict(d) for d in expert_docs]
    engine = _engine(stockfish)
    out: dict[str, list] = {k: [] for k in KEYS}
    for j, (g, ply, fen) in enumerate(positions):
        board = chess.Board(fen)
        x = encode(board).tolist()
        for e, expert in enumerate(experts):
            rng = random.Random(f"{seed}-label-{first + j}-{expert.name}")
            move = expert_move(expert, board, engine, rng, game=("label", first + j, e))
            if move is None or move not in board.legal_moves:
                raise LabError(f"expert {expert.name} gave no legal move in {fen}")
            out["x"].append(x)
            out["y"].append(move_index(move, board.turn == chess.BLACK))
            out["game"].append(g)
            out["ply"].append(ply)
            out["expert"].append(e)
    return out


def _keyed_chunk(task: tuple) -> tuple[str, dict]:
    return task[0], label_chunk(task[1])


def _local_pool(tasks: list[tuple], workers: int, write) -> None:
    """The local backend on `workers` forked processes (they and their engines die with this one)."""
    import multiprocessing
    import os

    from lab_transcendence.procs import die_with_parent

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        for name, res in pool.imap_unordered(_keyed_chunk, tasks):
            write(name, res)


def _check_engine(stockfish: str) -> str:
    from lab_transcendence.engines import health_check

    return health_check(stockfish)


def _write_shard(out: Path, name: str, res: dict) -> None:
    for k in (*KEYS[:-1], "expert"):  # `expert` last: its file marks the shard complete
        arr = np.asarray(res[k], dtype=DTYPES[k])
        if k == "x":
            arr = arr.reshape(-1, 70)
        with atomic_path(out / f"{name}.{k}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)


def add_labels(
    folder: str | Path,
    n: int,
    seed: int = 0,
    stockfish: str | Path | None = None,
    backend: Backend | None = None,
    chunk: int = 64,
    show_progress: bool = True,
    workers: int = 1,
) -> dict:
    """Add n x experts labels to a finished positions folder (local backend: `workers` processes, each with
    its own Stockfish); returns its updated meta.json."""
    from lab_transcendence.engines import resolve_stockfish

    folder = Path(folder)
    backend = backend or Backend()
    meta = read_json(folder / "meta.json")
    experts = corpus_experts(meta, meta.get("corpus", folder))
    if n < 1 or chunk < 1:
        raise LabError("--label-experts and --label-chunk must be >= 1")
    sf = (
        str(resolve_stockfish(stockfish)) if not backend.is_ray else str(stockfish or resolve_stockfish(None))
    )
    docs = [e.to_dict() for e in experts]
    key = hashlib.sha256(f"{meta['key']}|{n}|{seed}|{chunk}|{docs}".encode()).hexdigest()[:16]
    done = meta.get("labels")
    if isinstance(done, dict):
        if done.get("key") == key:
            return meta
        raise LabError(f"{folder} already holds other expert labels (use --force or another --out)")
    state = folder / "labels-progress.json"
    if state.is_file() and read_json(state).get("key") != key:
        for old in folder.glob("label-*.npy"):
            old.unlink()  # an unfinished labelling with other settings: start it over
    atomic_write_json(state, {"key": key})
    backend.start()
    backend.check(_check_engine, sf)  # no working Stockfish where the tasks run: one line before any work
    texts, _ = corpus_texts(Path(meta["corpus"]))
    sampled = sample_positions(texts, n, seed)
    names = [f"label-{i // chunk:05d}" for i in range(0, n, chunk)]
    tasks = [
        (names[c], (c * chunk, sampled[c * chunk : (c + 1) * chunk], docs, seed, sf))
        for c in range(len(names))
        if not (folder / f"{names[c]}.expert.npy").is_file()
    ]
    write = lambda name, res: _write_shard(folder, name, res)  # noqa: E731 - the driver writes every shard
    if not backend.is_ray and workers > 1 and len(tasks) > 1:
        _local_pool(tasks, workers, write)
    else:
        try:
            map_tasks(label_chunk, tasks, backend, on_result=write,
                      desc="expert labels" if show_progress else None)  # fmt: skip
        finally:
            if not backend.is_ray:
                close_engine()
    labels = sum(len(np.load(folder / f"{nm}.expert.npy", mmap_mode="r")) for nm in names)
    meta["shards"] = [s for s in meta["shards"] if not s.startswith("label-")] + names
    meta["labels"] = {"key": key, "positions": n, "pairs": labels, "seed": seed, "chunk": chunk,
                      "experts": [e.name for e in experts]}  # fmt: skip
    meta["positions"] = int(meta["positions"]) + labels
    atomic_write_json(folder / "meta.json", meta)
    state.unlink()
    return meta
