"""Synthetic "expert" players built on Stockfish, their games, and their measured ratings.

An expert is Stockfish at a search limit with two kinds of its own errors: a random-move rate (a uniformly
random legal move) and a blind spot (a piece type it never moves unless forced). Different experts err in
different places, so a plurality vote over them denoises the errors: the setting in which the paper's
low-temperature sampling can transcend every expert in the data.

Ratings are measured, not assumed: a round robin between the experts and fixed Stockfish anchors (UCI
"Skill Level" k searched to depth k + 1 -- Stockfish picks its skill move at that depth, so this is the
strength of the paper's 0.1 s anchors -- with the paper's anchor ratings), fitted by maximum likelihood
(Bradley-Terry on the Elo scale, draws as half points, a weak Gaussian prior keeps all-loss players finite).
Corpus games are deterministic for a seed (each game has its own RNG and starts from a cleared engine);
anchor games are not bit-reproducible because Stockfish seeds its skill randomness from the clock.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.util
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import chess
import chess.engine

from lab_shared.backend import Backend, imap_tasks
from lab_shared.errors import LabError
from lab_transcendence.procs import die_with_parent

PIECE_LETTERS = {
    "P": chess.PAWN,
    "N": chess.KNIGHT,
    "B": chess.BISHOP,
    "R": chess.ROOK,
    "Q": chess.QUEEN,
    "K": chess.KING,
}
# The paper's anchor ratings for Stockfish skill levels (deviation 0).
ANCHOR_RATINGS = {1: 1554, 2: 1759, 3: 1867, 4: 2006, 5: 2148}
DEFAULT_MAX_PLIES = 300  # games still running then are adjudicated drawn


@dataclass
class Expert:
    """A noisy Stockfish player. `move()` is its policy (see expert_move)."""

    name: str
    random_rate: float = 0.1  # probability of a uniformly random (allowed) legal move
    blind_spot: str | None = None  # piece letter (P N B R Q K) it never moves unless forced
    depth: int | None = 2  # search limit: depth ...
    nodes: int | None = None  # ... and/or nodes
    rating: float | None = None  # measured (round robin vs anchors)
    rating_se: float | None = None

    def limit(self) -> chess.engine.Limit:
        return chess.engine.Limit(depth=self.depth, nodes=self.nodes)

    def move(
        self, board: chess.Board, engine: chess.engine.SimpleEngine, rng: random.Random, game: Any = None
    ) -> chess.Move:
        return expert_move(self, board, engine, rng, game=game)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Expert:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Anchor:
    """A fixed-rating reference player: Stockfish at a skill level, searched to depth level + 1."""

    level: int
    rating: float
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"stockfish-skill{self.level}"

    def move(
        self, board: chess.Board, engine: chess.engine.SimpleEngine, rng: random.Random, game: Any = None
    ) -> chess.Move:
        limit = chess.engine.Limit(depth=self.level + 1)
        return engine.play(board, limit, game=game, options={"Skill Level": self.level}).move

    def to_dict(self) -> dict:
        return {"name": self.name, "level": self.level, "rating": self.rating}


def expert_move(
    expert: Expert,
    board: chess.Board,
    engine: chess.engine.SimpleEngine,
    rng: random.Random,
    game: Any = None,
) -> chess.Move:
    """The expert's move: random with probability random_rate, else Stockfish's best among allowed moves.

    Allowed moves exclude the blind-spot piece type unless every legal move uses it. `game` is passed to
    python-chess so that a new key starts a fresh engine game (ucinewgame clears the hash: determinism).
    """
    legal = list(board.legal_moves)
    allowed = legal
    if expert.blind_spot:
        blind = PIECE_LETTERS[expert.blind_spot.upper()]
        allowed = [m for m in legal if board.piece_type_at(m.from_square) != blind] or legal
    if rng.random() < expert.random_rate or len(allowed) == 1:
        return rng.choice(allowed)
    root = allowed if len(allowed) < len(legal) else None
    return engine.play(board, expert.limit(), root_moves=root, game=game).move


def default_experts(k: int, seed: int = 0, depth: int = 2) -> list[Expert]:
    """K experts with distinct blind spots and random-move rates (their errors differ by construction)."""
    if k < 1:
        raise ValueError("need at least one expert")
    rng = random.Random(f"experts-{seed}")
    spots = ["N", "B", "R", "Q", "K"]
    rng.shuffle(spots)
    experts = []
    for i in range(k):
        rate = 0.10 + 0.15 * (i / max(1, k - 1))  # 0.10 .. 0.25
        experts.append(
            Expert(
                name=f"expert{i}", random_rate=round(rate, 3), blind_spot=spots[i % len(spots)], depth=depth
            )
        )
    return experts


def default_anchors(levels: Iterable[int] = (1, 3, 5)) -> list[Anchor]:
    return [Anchor(level=lv, rating=ANCHOR_RATINGS[lv]) for lv in levels]


# ---------------------------------------------------------------- playing games


@dataclass
class Vote:
    """Plurality vote over experts: each proposes its move, the most proposed one is played (ties: the
    first proposer's). The T -> 0 limit of a model imitating the experts' mixture: the paper's mechanism."""

    experts: list[Expert]
    name: str = "vote"

    def move(
        self, board: chess.Board, engine: chess.engine.SimpleEngine, rng: random.Random, game: Any = None
    ) -> chess.Move:
        proposals = [expert_move(e, board, engine, rng, game=game) for e in self.experts]
        counts: dict[chess.Move, int] = {}
        for m in proposals:
            counts[m] = counts.get(m, 0) + 1
        return max(proposals, key=lambda m: counts[m])  # max keeps the first of equal counts

    def to_dict(self) -> dict:
        return {"name": self.name, "experts": [e.to_dict() for e in self.experts]}


def player_from_spec(spec: dict) -> Expert | Anchor | Vote:
    if spec.get("kind") == "anchor":
        return Anchor(level=spec["level"], rating=spec["rating"], name=spec.get("name", ""))
    if spec.get("kind") == "vote":
        return Vote([Expert.from_dict(e) for e in spec["experts"]], name=spec.get("name", "vote"))
    return Expert.from_dict(spec)


def player_spec(p: Expert | Anchor | Vote) -> dict:
    kind = {Anchor: "anchor", Vote: "vote"}.get(type(p), "expert")
    return {"kind": kind, **p.to_dict()}


def vote_check(experts: list[Expert], anchor: Anchor, games: int, stockfish: str | Path, seed: int = 0,
               workers: int = 1, max_plies: int = DEFAULT_MAX_PLIES) -> dict:  # fmt: skip
    """Score of the experts' plurality vote and of each expert against one anchor (same number of games,
    colours alternating): whether the corpus can show transcendence in principle."""
    players: list[Expert | Vote] = [Vote(experts), *experts]
    tasks = []
    for p in players:
        for g in range(games):
            w, b = (p, anchor) if g % 2 == 0 else (anchor, p)
            tasks.append((len(tasks), player_spec(w), player_spec(b), seed, max_plies, "vote"))
    scores: dict[str, float] = {p.name: 0.0 for p in players}
    for _, g in play_many(tasks, stockfish, workers):
        s = score_of(g["result"])
        if g["white"] in scores:
            scores[g["white"]] += s
        else:
            scores[g["black"]] += 1 - s
    return {"anchor": anchor.name, "games_each": games, "score": {k: v / games for k, v in scores.items()}}


def open_engine(stockfish: str | Path, hash_mb: int = 16) -> chess.engine.SimpleEngine:
    """Stockfish at `stockfish` (one thread), started so that it dies with this process."""
    from lab_transcendence.engines import popen_engine

    engine = popen_engine(stockfish)
    engine.configure({"Threads": 1, "Hash": hash_mb})
    return engine


def play_game(
    white: Expert | Anchor,
    black: Expert | Anchor,
    engine: chess.engine.SimpleEngine,
    rng: random.Random,
    game_key: Any,
    max_plies: int = DEFAULT_MAX_PLIES,
) -> dict:
    """One game; returns {"sans", "result", "termination"}."""
    board = chess.Board()
    sans: list[str] = []
    players = (white, black)
    outcome = None
    while len(sans) < max_plies:
        outcome = board.outcome()
        if outcome is not None:
            break
        mover = players[0] if board.turn == chess.WHITE else players[1]
        move = mover.move(board, engine, rng, game=game_key)
        sans.append(board.san(move))
        board.push(move)
    outcome = board.outcome()
    if outcome is None:
        return {"sans": sans, "result": "1/2-1/2", "termination": "adjudication (max plies)"}
    return {"sans": sans, "result": outcome.result(), "termination": outcome.termination.name.lower()}


class SynthEngineError(LabError):
    """A worker's engine could not start or kept dying (a one-argument LabError: it pickles across processes
    and the CLI prints it as one line)."""


ENGINE_RETRIES = 2  # restarts of a worker's engine within one game before the game (and the run) fails
_ENGINE_ERRORS = (chess.engine.EngineError, chess.engine.EngineTerminatedError, TimeoutError, OSError)
_ENGINE: chess.engine.SimpleEngine | None = None
_STOCKFISH: str | None = None


def _init_worker(stockfish: str, parent: int | None = None) -> None:
    """Pool initializer: die with the parent, then start the engine. Never raises: a raising initializer
    makes multiprocessing.Pool respawn the worker forever; a failed start is reported by the first task."""
    global _ENGINE, _STOCKFISH
    if parent is not None:  # a forked pool worker (not this process, not a Ray worker)
        die_with_parent(parent)  # also restores SIGTERM's default (see procs.die_with_parent)
        # Close the engine on a clean exit: its python-chess thread would otherwise keep the worker alive.
        multiprocessing.util.Finalize(None, _drop_engine, exitpriority=10)
    _STOCKFISH, _ENGINE = stockfish, None
    try:
        _ENGINE = open_engine(stockfish)
    except _ENGINE_ERRORS:
        _ENGINE = None


def _drop_engine() -> None:
    global _ENGINE
    eng, _ENGINE = _ENGINE, None
    if eng is not None:
        try:
            eng.quit()
        except Exception:  # noqa: BLE001 - it may be dead already; closing is best effort
            try:
                eng.close()
            except Exception:  # noqa: BLE001
                pass


def _play_task(task: tuple) -> tuple[int, dict]:
    """Worker entry: (index, white spec, black spec, seed string, max_plies, phase) -> (index, game).

    A crashed or hung engine is restarted and the game replayed from its start (same RNG seed, fresh engine
    game: the same moves), at most ENGINE_RETRIES times; then SynthEngineError."""
    global _ENGINE
    index, wspec, bspec, seed, max_plies, phase = task
    last: Exception | None = None
    for _ in range(ENGINE_RETRIES + 1):
        if _ENGINE is None:
            try:
                _ENGINE = open_engine(str(_STOCKFISH))
            except _ENGINE_ERRORS as e:
                last = e
                continue
        rng = random.Random(f"{seed}-{phase}-{index}")
        try:
            game = play_game(
                player_from_spec(wspec), player_from_spec(bspec), _ENGINE, rng, (phase, index), max_plies
            )
        except _ENGINE_ERRORS as e:
            last = e
            _drop_engine()
            continue
        game.update(white=wspec["name"], black=bspec["name"])
        return index, game
    raise SynthEngineError(
        f"engine {_STOCKFISH} failed {ENGINE_RETRIES + 1} times in {phase} game {index}: "
        f"{type(last).__name__}: {last}"
    )


def _play_chunk(arg: tuple[list[tuple], str]) -> list[tuple[int, dict]]:
    """A backend task: consecutive games on this worker process's own engine (kept for its next chunk)."""
    tasks, stockfish = arg
    if _STOCKFISH != stockfish:
        _drop_engine()
        _init_worker(stockfish)
    return [_play_task(t) for t in tasks]


def play_many(
    tasks: list[tuple], stockfish: str | Path, workers: int = 1, backend: Backend | None = None
) -> Iterator[tuple[int, dict]]:
    """Play tasks (see _play_task) on `workers` processes, each with its own engine; yields in task order.

    With a Ray `backend` the games go out in chunks (about four per worker, at most 16 games each) to the
    cluster, one Stockfish per worker process, checked on a worker before any game.

    The engine is health-checked (UCI handshake, with a timeout and bounded retries) before work fans out;
    workers and their engines die with this process (no orphans after kill -9)."""
    from lab_transcendence.engines import health_check

    global _ENGINE, _STOCKFISH
    if not tasks:
        return
    if backend is not None and backend.is_ray:
        backend.check(health_check, str(stockfish))  # no working Stockfish on the workers: one line
        size = max(1, min(16, len(tasks) // (4 * backend.slots())))
        chunks = [(str(i), (tasks[i : i + size], str(stockfish))) for i in range(0, len(tasks), size)]
        for games in imap_tasks(_play_chunk, chunks, backend):
            yield from games
        return
    health_check(stockfish)
    if workers <= 1 or len(tasks) <= 1:
        prev = _ENGINE, _STOCKFISH
        _init_worker(str(stockfish))
        try:
            for t in tasks:
                yield _play_task(t)
        finally:
            _drop_engine()
            _ENGINE, _STOCKFISH = prev
        return
    # multiprocessing.Pool, not ProcessPoolExecutor: its exit terminates the workers, whose engine threads
    # would otherwise keep them alive (Stockfish itself quits when its stdin closes)
    with multiprocessing.get_context("fork").Pool(
        workers, initializer=_init_worker, initargs=(str(stockfish), os.getpid())
    ) as pool:
        yield from pool.imap(_play_task, tasks, chunksize=1)


# ---------------------------------------------------------------- ratings


@dataclass
class RatingFit:
    ratings: dict[str, float]
    se: dict[str, float]
    crosstable: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # a -> b -> [score, games]


def fit_elo(
    games: list[tuple[str, str, float]],
    fixed: dict[str, float],
    prior_mean: float = 1500.0,
    prior_sd: float = 400.0,
    iters: int = 200,
) -> RatingFit:
    """Maximum a-posteriori Elo ratings of the non-fixed players from (a, b, score of a) records.

    P(a beats b) = 1 / (1 + 10^((Rb - Ra)/400)); draws count as half a win; fixed players keep their
    ratings. Newton's method on the free players; standard errors from the inverse Hessian.
    """
    import numpy as np

    names = sorted({a for a, _, _ in games} | {b for _, b, _ in games})
    free = [n for n in names if n not in fixed]
    idx = {n: i for i, n in enumerate(free)}
    r = np.full(len(free), prior_mean, dtype=float)
    k = math.log(10) / 400
    cross: dict[str, dict[str, list[float]]] = {}
    for a, b, s in games:
        for x, y, sx in ((a, b, s), (b, a, 1 - s)):
            cell = cross.setdefault(x, {}).setdefault(y, [0.0, 0])
            cell[0] += sx
            cell[1] += 1

    def rating(n: str) -> float:
        return fixed[n] if n in fixed else r[idx[n]]

    hess = np.eye(len(free))
    for _ in range(iters):
        grad = -(r - prior_mean) / prior_sd**2
        hess = np.eye(len(free)) / prior_sd**2
        for a, b, s in games:
            p = 1 / (1 + math.exp(-k * (rating(a) - rating(b))))
            w = k * k * p * (1 - p)
            for x, sign in ((a, 1), (b, -1)):
                if x in idx:
                    grad[idx[x]] += sign * k * (s - p)
                    hess[idx[x], idx[x]] += w
            if a in idx and b in idx:
                hess[idx[a], idx[b]] -= w
                hess[idx[b], idx[a]] -= w
        step = np.linalg.solve(hess, grad)
        step = np.clip(step, -200, 200)
        r += step
        if np.abs(step).max() < 1e-3:
            break
    cov = np.linalg.inv(hess)
    return RatingFit(
        ratings={n: float(r[idx[n]]) for n in free},
        se={n: float(math.sqrt(max(cov[idx[n], idx[n]], 0.0))) for n in free},
        crosstable=cross,
    )


def score_of(result: str) -> float:
    return {"1-0": 1.0, "0-1": 0.0}.get(result, 0.5)


def rating_tasks(
    experts: list[Expert], anchors: list[Anchor], games_per_pair: int, seed: int, max_plies: int
) -> list[tuple]:
    """Round robin: every expert pair and every expert-anchor pair, colours alternating."""
    players: list[Expert | Anchor] = [*experts, *anchors]
    tasks = []
    for i, a in enumerate(players):
        for b in players[i + 1 :]:
            if isinstance(a, Anchor) and isinstance(b, Anchor):
                continue
            for g in range(games_per_pair):
                w, bl = (a, b) if g % 2 == 0 else (b, a)
                tasks.append((len(tasks), player_spec(w), player_spec(bl), seed, max_plies, "rating"))
    return tasks


def measure_ratings(
    experts: list[Expert],
    anchors: list[Anchor],
    stockfish: str | Path,
    games_per_pair: int = 10,
    seed: int = 0,
    workers: int = 1,
    max_plies: int = DEFAULT_MAX_PLIES,
    on_game=None,
    backend: Backend | None = None,
) -> RatingFit:
    """Play the round robin and fit ratings; sets each expert's .rating/.rating_se in place."""
    tasks = rating_tasks(experts, anchors, games_per_pair, seed, max_plies)
    records = []
    for _, g in play_many(tasks, stockfish, workers, backend):
        records.append((g["white"], g["black"], score_of(g["result"])))
        if on_game:
            on_game(g)
    fit = fit_elo(records, {a.name: a.rating for a in anchors})
    for e in experts:
        e.rating = round(fit.ratings.get(e.name, 1500.0), 1)
        e.rating_se = round(fit.se.get(e.name, 400.0), 1)
    return fit


def corpus_tasks(experts: list[Expert], start: int, stop: int, seed: int, max_plies: int) -> list[tuple]:
    """Games start..stop-1 of a corpus: game g pairs the (g mod K(K-1))-th ordered pair of experts."""
    pairs = [(a, b) for a in experts for b in experts if a is not b] or [(experts[0], experts[0])]
    return [
        (
            g,
            player_spec(pairs[g % len(pairs)][0]),
            player_spec(pairs[g % len(pairs)][1]),
            seed,
            max_plies,
            "corpus",
        )
        for g in range(start, stop)
    ]


def game_to_pgn(game: dict, index: int, ratings: dict[str, float | None], event: str = "lab synth") -> str:
    """One game as PGN text (headers incl. WhiteElo/BlackElo = measured ratings; 8 moves a line)."""

    def elo(name: str) -> str:
        v = ratings.get(name)
        return "?" if v is None else str(int(round(v)))

    headers = [
        ("Event", event),
        ("Site", "lab"),
        ("Date", "????.??.??"),
        ("Round", str(index + 1)),
        ("White", game["white"]),
        ("Black", game["black"]),
        ("Result", game["result"]),
        ("WhiteElo", elo(game["white"])),
        ("BlackElo", elo(game["black"])),
        ("TimeControl", "-"),
        ("Termination", game["termination"]),
    ]
    lines = [f'[{k} "{v}"]' for k, v in headers]
    moves = []
    for i, san in enumerate(game["sans"]):
        moves.append(f"{i // 2 + 1}. {san}" if i % 2 == 0 else san)
    moves.append(game["result"])
    body = [" ".join(moves[i : i + 16]) for i in range(0, len(moves), 16)]
    return "\n".join(lines) + "\n\n" + "\n".join(body) + "\n\n"


# ---------------------------------------------------------------- the corpus


@dataclass
class SynthSettings:
    players: int = 4
    games: int = 1000
    seed: int = 0
    depth: int = 2
    rating_games: int = 10  # games per pairing in the rating round robin (0 = skip: ratings unknown)
    vote_games: int = 0  # games of the experts' plurality vote (and of each expert) vs the first anchor
    anchors: list[int] = field(default_factory=lambda: [1, 3, 5])
    max_plies: int = DEFAULT_MAX_PLIES
    preset: str = "default"  # default | noisy (presets.py: weak experts whose vote is strong)


def generate_corpus(
    out: str | Path,
    settings: SynthSettings,
    stockfish: str | Path,
    workers: int = 1,
    tokenizer: str = "char",
    chunk_games: int = 200,
    force: bool = False,
    show_progress: bool = True,
    backend: Backend | None = None,
) -> dict:
    """Make DIR with experts.json (measured ratings), games.pgn and token shards + meta.json. Resumable:
    experts.json and finished chunks of games are kept, so a rerun continues where it stopped. With a Ray
    `backend` the games are played on the cluster and written here as they come back, in order."""
    import shutil

    from lab_shared.errors import LabError
    from lab_shared.io import atomic_path, atomic_write_json, read_json
    from lab_shared.progress import progress
    from lab_transcendence.engines import health_check
    from lab_transcendence.lichess import IngestFilters, ingest
    from lab_transcendence.tokenizer import get_tokenizer

    out = Path(out)
    s = settings
    if s.players < 2:
        raise LabError("--players must be at least 2 (games are played between experts)")
    if s.games < 1:
        raise LabError("--games must be at least 1")
    for opt, value, low in (("--depth", s.depth, 1), ("--rating-games", s.rating_games, 0),
                            ("--vote-games", s.vote_games, 0), ("--max-plies", s.max_plies, 1)):  # fmt: skip
        if value < low:
            raise LabError(f"{opt} must be >= {low}, got {value}")
    if s.depth > 30:
        raise LabError(f"--depth must be <= 30 (a search limit per move), got {s.depth}")
    if workers < 1 or chunk_games < 1:
        raise LabError(f"workers and chunk_games must be >= 1, got {workers} and {chunk_games}")
    get_tokenizer(tokenizer)  # an unknown tokenizer fails now, not after every game is played
    if out.exists() and not out.is_dir():
        raise LabError(f"--out {out} exists and is not a folder")
    health_check(stockfish)  # a broken engine: one line before anything is written
    bad = [lv for lv in s.anchors if lv not in ANCHOR_RATINGS]
    if bad:
        raise LabError(
            f"no anchor rating for Stockfish skill level {bad[0]} (choose from {sorted(ANCHOR_RATINGS)})"
        )
    settings_dict = asdict(s)
    if force and out.exists():
        for name in ("experts.json", "games.pgn", "meta.json", "progress.json"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "chunks", ignore_errors=True)
        for p in [*out.glob("shard-*.npy"), *out.glob("blocks-*.npy")]:
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    experts_file = out / "experts.json"
    if (out / "meta.json").is_file() and experts_file.is_file():
        meta = read_json(out / "meta.json")
        if (
            isinstance(meta, dict)
            and meta.get("synth_settings") == settings_dict
            and meta.get("tokenizer") == tokenizer
        ):
            return meta
        raise LabError(
            f"{out} already holds a corpus made with other settings (use --force or another --out)"
        )

    # 1. experts and their measured ratings
    if experts_file.is_file():
        doc = read_json(experts_file)
        if not isinstance(doc, dict) or not isinstance(doc.get("experts"), list):
            raise LabError(f"{experts_file} is not an experts file (use --force to make the corpus again)")
        if doc.get("settings") != settings_dict:
            raise LabError(f"{out}/experts.json was made with other settings (use --force or another --out)")
        experts = [Expert.from_dict(d) for d in doc["experts"]]
    else:
        from lab_transcendence.presets import preset_experts, vote_round_robin

        experts = preset_experts(s.preset, s.players, s.seed, s.depth)
        anchors = default_anchors(s.anchors)
        fit = None
        if s.rating_games > 0:
            n_tasks = len(rating_tasks(experts, anchors, s.rating_games, s.seed, s.max_plies))
            bar = progress(total=n_tasks, desc="rating round robin", enabled=show_progress)
            fit = measure_ratings(experts, anchors, stockfish, s.rating_games, s.seed, workers, s.max_plies,
                                  on_game=lambda g: bar.update(1), backend=backend)  # fmt: skip
            bar.close()
        doc = {
            "settings": settings_dict,
            "experts": [e.to_dict() for e in experts],
            "anchors": [a.to_dict() for a in anchors],
            "rating_method": "max-likelihood Elo (Bradley-Terry, draws = 1/2, prior N(1500, 400^2)) vs fixed anchors",
            "crosstable": fit.crosstable if fit else {},
        }
        if s.vote_games > 0 and s.preset == "noisy":  # the vote vs every expert (anchors are too strong)
            doc["vote_round_robin"] = vote_round_robin(
                experts, stockfish, s.vote_games, s.seed, workers, s.max_plies
            )
        elif s.vote_games > 0:
            doc["vote_check"] = vote_check(
                experts, anchors[0], s.vote_games, stockfish, s.seed, workers, s.max_plies
            )
        atomic_write_json(experts_file, doc)
    ratings = {e.name: e.rating for e in experts}

    # 2. the games, in chunks written atomically (the resume points)
    chunk_dir = out / "chunks"
    chunk_dir.mkdir(exist_ok=True)
    n_chunks = (s.games + chunk_games - 1) // chunk_games
    todo = [c for c in range(n_chunks) if not (chunk_dir / f"games-{c:05d}.pgn").is_file()]
    tasks = [
        t
        for c in todo
        for t in corpus_tasks(
            experts, c * chunk_games, min(s.games, (c + 1) * chunk_games), s.seed, s.max_plies
        )
    ]
    if tasks:
        bar = progress(total=s.games, desc="synth games", enabled=show_progress)
        bar.update(s.games - len(tasks))
        texts: dict[int, list[str]] = {}
        for index, game in play_many(tasks, stockfish, workers, backend):
            c = index // chunk_games
            texts.setdefault(c, []).append(game_to_pgn(game, index, ratings))
            bar.update(1)
            if len(texts[c]) == min(s.games, (c + 1) * chunk_games) - c * chunk_games:
                with atomic_path(chunk_dir / f"games-{c:05d}.pgn") as tmp:
                    tmp.write_text("".join(texts.pop(c)))
        bar.close()

    # 3. games.pgn, then the same ingest as for Lichess data
    with atomic_path(out / "games.pgn") as tmp:
        with open(tmp, "w") as fh:
            for c in range(n_chunks):
                fh.write((chunk_dir / f"games-{c:05d}.pgn").read_text())
    rated = [e.rating for e in experts if e.rating is not None]
    extra = {
        "synthetic": True,
        "synth_settings": settings_dict,
        "experts": [e.to_dict() for e in experts],
        "expert_ratings": ratings,
        "max_rating": max(rated) if rated else None,
    }
    filters = IngestFilters(require_ratings=False)
    meta = ingest(out / "games.pgn", out, filters, tokenizer=tokenizer, workers=1, force=True,
                  show_progress=False, extra_meta=extra)  # fmt: skip
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return meta
