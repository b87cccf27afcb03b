"""The arena: many games at once between players that pick moves in batches.

Every round, the live games are grouped by the player to move and each player answers all of its
positions in one `select` call (the model batches them into one forward pass; Stockfish spreads them
over its process pool), the players running side by side in threads. Finished games are appended to
`games.jsonl` (one fsynced line each) the moment they end, so an interrupted run resumes by skipping the
games already recorded; `games.pgn` is rewritten atomically from that record with the settings in the
headers. A game whose engine keeps failing is recorded with result `*` and its error (never lost) and is
replayed on the next resume.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import chess
import chess.pgn

from lab_shared.io import atomic_write_text


@dataclass
class MoveRequest:
    """A position a player must answer: the board plus the SAN moves that led to it."""

    game_id: str
    board: chess.Board
    sans: list[str]
    seed: int


@dataclass
class MoveDecision:
    """A player's answer: a legal move, or None with the reason (forfeit or engine failure)."""

    move: chess.Move | None
    illegal: int = 0  # illegal samples drawn before this move (paper policy)
    forfeit: bool = False  # True: the player loses the game (e.g. 5 illegal samples)
    error: str | None = None  # infrastructure failure: the game is marked, not scored
    san: str | None = None  # the move as the player wrote it (paper protocol: `+` stripped), else board.san
    resign: bool = False  # with forfeit: the player resigned (paper protocol: it wrote 1-0 or 0-1)


class Player(Protocol):
    name: str

    def headers(self) -> dict[str, str]: ...

    def select(self, requests: Sequence[MoveRequest]) -> list[MoveDecision]: ...


@dataclass(frozen=True)
class GameSpec:
    """One game to play: ids of the players in the `players` dict given to `play_games`."""

    game_id: str
    white: str
    black: str
    round: int = 1
    seed: int = 0


@dataclass
class _Live:
    spec: GameSpec
    board: chess.Board = field(default_factory=chess.Board)
    sans: list[str] = field(default_factory=list)
    illegal: dict[str, int] = field(default_factory=lambda: {"white": 0, "black": 0})


def game_seed(base: int, game_id: str) -> int:
    """A per-game seed that does not depend on batch composition or order (stable across resumes)."""
    h = 1469598103934665603
    for ch in f"{base}:{game_id}".encode():
        h = ((h ^ ch) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFF


def _outcome(board: chess.Board, max_moves: int | None, claim_draws: bool = True) -> tuple[str, str] | None:
    """(result, termination) if the game is over, applying the max-full-moves draw rule.

    claim_draws: threefold repetition and the 50-move rule end the game (lab); False: only the automatic
    draws (fivefold, 75 moves, stalemate, insufficient material), as the paper's code."""
    out = board.outcome(claim_draw=claim_draws)
    if out is not None:
        return out.result(), out.termination.name.lower()
    if max_moves is not None and board.fullmove_number > max_moves:
        return "1/2-1/2", f"max_moves_{max_moves}"
    return None


def read_records(path: Path) -> list[dict]:
    """Game records from games.jsonl (a truncated last line from a crash is ignored)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def record_to_pgn(rec: dict, event: str = "lab chess eval") -> str:
    """PGN text of one record with the game's settings in its headers."""
    game = chess.pgn.Game()
    game.headers["Event"] = event
    game.headers["Site"] = "local"
    game.headers["Date"] = rec.get("date", "????.??.??")
    game.headers["Round"] = str(rec.get("round", 1))
    game.headers["White"] = rec["white"]
    game.headers["Black"] = rec["black"]
    game.headers["Result"] = rec["result"]
    game.headers["Termination"] = rec["termination"]
    game.headers["GameId"] = rec["game_id"]
    for side in ("white", "black"):
        for k, v in rec.get("settings", {}).get(side, {}).items():
            game.headers[f"{side.capitalize()}{k}"] = str(v)
    game.headers["IllegalWhite"] = str(rec["illegal"]["white"])
    game.headers["IllegalBlack"] = str(rec["illegal"]["black"])
    if rec.get("error"):
        game.headers["Error"] = rec["error"]
    node = game
    board = chess.Board()
    for uci in rec["moves"]:
        move = chess.Move.from_uci(uci)
        node = node.add_variation(move)
        board.push(move)
    exporter = chess.pgn.StringExporter(headers=True, variations=False, comments=False)
    return game.accept(exporter)


def write_pgn(records: Sequence[dict], path: Path, event: str = "lab chess eval") -> Path:
    """All records as one PGN file, written atomically."""
    return atomic_write_text(path, "\n\n".join(record_to_pgn(r, event) for r in records) + "\n")


class GameLog:
    """games.jsonl: append-only, one fsynced JSON line per finished (or failed) game."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        records = read_records(self.path)
        if self.path.exists() and self.path.read_bytes()[-1:] not in (b"", b"\n"):
            # drop a torn last line left by a kill mid-write
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))
        self.records = records

    def done_ids(self) -> set[str]:
        return {r["game_id"] for r in self.records if r["result"] != "*"}

    def append(self, rec: dict) -> None:
        self.records = [r for r in self.records if r["game_id"] != rec["game_id"]] + [rec]
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def latest(self) -> list[dict]:
        """One record per game id (the last one written wins, so replays replace marked failures)."""
        seen: dict[str, dict] = {}
        for r in read_records(self.path):
            seen[r["game_id"]] = r
        return list(seen.values())


@dataclass
class ArenaStats:
    """Time each player spent in `select` and how many moves it made (benchmarks read this)."""

    seconds: dict[str, float] = field(default_factory=dict)
    moves: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, secs: float, n: int) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + secs
        self.moves[name] = self.moves.get(name, 0) + n
        self.calls[name] = self.calls.get(name, 0) + 1


def play_games(
    specs: Sequence[GameSpec],
    players: dict[str, Player],
    log: GameLog | None = None,
    *,
    concurrency: int = 32,
    max_moves: int | None = 89,
    on_game: Callable[[dict], None] | None = None,
    stats: ArenaStats | None = None,
    claim_draws: bool = True,
) -> list[dict]:
    """Play the specs not yet in `log` (resume), `concurrency` at a time; return all records of `specs`."""
    done = log.done_ids() if log is not None else set()
    todo = [s for s in specs if s.game_id not in done]
    stats = stats if stats is not None else ArenaStats()
    queue = list(reversed(todo))
    live: list[_Live] = []
    results: list[dict] = []
    pool = ThreadPoolExecutor(max_workers=max(1, len(players)))
    try:
        while queue or live:
            while queue and len(live) < concurrency:
                live.append(_Live(queue.pop()))
            by_player: dict[str, list[_Live]] = {}
            for g in live:
                key = g.spec.white if g.board.turn == chess.WHITE else g.spec.black
                by_player.setdefault(key, []).append(g)

            def run(key: str, games: list[_Live]) -> list[MoveDecision]:
                reqs = [MoveRequest(g.spec.game_id, g.board.copy(), list(g.sans), g.spec.seed) for g in games]
                t0 = time.perf_counter()
                out = players[key].select(reqs)
                stats.add(key, time.perf_counter() - t0, len(reqs))
                return out

            futures = {k: pool.submit(run, k, gs) for k, gs in by_player.items()}
            finished: list[tuple[_Live, str, str, str | None]] = []
            for key, fut in futures.items():
                for g, dec in zip(by_player[key], fut.result(), strict=True):
                    side = "white" if g.board.turn == chess.WHITE else "black"
                    g.illegal[side] += dec.illegal
                    if dec.error is not None:
                        finished.append((g, "*", "error", dec.error))
                    elif dec.forfeit or dec.move is None:
                        res = "0-1" if side == "white" else "1-0"
                        finished.append((g, res, "resignation" if dec.resign else "forfeit", None))
                    else:
                        g.sans.append(dec.san or g.board.san(dec.move))
                        g.board.push(dec.move)
                        end = _outcome(g.board, max_moves, claim_draws)
                        if end is not None:
                            finished.append((g, end[0], end[1], None))
            for g, res, term, err in finished:
                rec = _record(g, res, term, err, players)
                if log is not None:
                    log.append(rec)
                results.append(rec)
                live.remove(g)
                for key in (g.spec.white, g.spec.black):
                    end = getattr(players[key], "end_game", None)
                    if end is not None:
                        end(g.spec.game_id)
                if on_game is not None:
                    on_game(rec)
    finally:
        pool.shutdown(wait=True)
    if log is not None:
        ids = {s.game_id for s in specs}
        return [r for r in log.latest() if r["game_id"] in ids]
    return results


def _record(g: _Live, result: str, termination: str, error: str | None, players: dict[str, Player]) -> dict:
    s = g.spec
    return {
        "game_id": s.game_id,
        "round": s.round,
        "white": s.white,
        "black": s.black,
        "result": result,
        "termination": termination,
        "error": error,
        "moves": [m.uci() for m in g.board.move_stack],
        "sans": g.sans,
        "plies": len(g.board.move_stack),
        "illegal": g.illegal,
        "date": time.strftime("%Y.%m.%d"),
        "settings": {"white": players[s.white].headers(), "black": players[s.black].headers()},
    }


def score_for(rec: dict, player: str) -> float | None:
    """The game's score (1/0.5/0) for `player`, None if unscored (error) or not a participant."""
    res = rec["result"]
    if res == "*" or player not in (rec["white"], rec["black"]):
        return None
    if res == "1/2-1/2":
        return 0.5
    white_won = res == "1-0"
    return 1.0 if white_won == (rec["white"] == player) else 0.0


CLEAR_HASH_EACH_MOVE = (
    True  # False: one engine game a game (the hash kept between its moves; not reproducible)
)


def move_key(r: MoveRequest) -> tuple[str, int] | str:
    """The engine's game key for one move: a new key each move sends `ucinewgame`, which clears the hash, so
    a fixed-depth search gives the same move whichever engine, and after whichever game, it runs on (local
    pool or Ray worker alike). Costs a hash clear a move (a few ms at depth 1)."""
    return (r.game_id, len(r.sans)) if CLEAR_HASH_EACH_MOVE else r.game_id


def fresh_hash(s) -> bool:
    """Whether the settings search deterministically (depth/node limit, full strength), so that clearing the
    hash each move makes their games reproducible; time limits and skill levels are random anyway."""
    return s.time is None and s.elo is None and s.skill in (None, 20)


class EnginePlayer:
    """Stockfish under fixed settings, answering all its positions concurrently from a pool."""

    def __init__(self, pool, settings, name: str | None = None):
        self.pool = pool
        self.settings = settings
        self.name = name or settings.name

    def recipe(self) -> tuple:
        """What rebuilds this player where a backend task runs (arena_tasks)."""
        return ("engine", self.name, self.settings)

    def headers(self) -> dict[str, str]:
        s = self.settings
        h = {"Engine": "Stockfish", "Skill": "" if s.skill is None else str(s.skill)}
        for k, v in (
            ("TimeLimit", s.time),
            ("NodeLimit", s.nodes),
            ("DepthLimit", s.depth),
            ("UCIElo", s.elo),
        ):
            if v is not None:
                h[k] = str(v)
        return h

    def select(self, requests: Sequence[MoveRequest]) -> list[MoveDecision]:
        from lab_transcendence.engines import EngineFailure

        fresh = fresh_hash(self.settings)
        moves = self.pool.play_many(
            [(r.board, self.settings, move_key(r) if fresh else r.game_id) for r in requests]
        )
        return [
            MoveDecision(None, error=str(m)) if isinstance(m, EngineFailure) else MoveDecision(m)
            for m in moves
        ]


class ExpertPlayer:
    """A synthetic expert (lab_transcendence.synth.Expert) playing from the engine pool."""

    def __init__(self, pool, expert, name: str | None = None):
        from lab_transcendence.engines import EngineSettings

        self.pool = pool
        self.expert = expert
        self.name = name or expert.name
        self.settings = EngineSettings(depth=expert.depth, nodes=expert.nodes)

    def recipe(self) -> tuple:
        """What rebuilds this player where a backend task runs (arena_tasks)."""
        return ("expert", self.name, self.expert)

    def headers(self) -> dict[str, str]:
        e = self.expert
        return {
            "Expert": e.name,
            "RandomRate": str(e.random_rate),
            "BlindSpot": str(e.blind_spot),
            "DepthLimit": str(e.depth),
        }

    def select(self, requests: Sequence[MoveRequest]) -> list[MoveDecision]:
        import random

        from lab_transcendence.engines import EngineFailure

        def job(r: MoveRequest):
            rng = random.Random(f"{r.seed}-{len(r.sans)}")
            return lambda eng: self.expert.move(r.board, eng, rng, game=move_key(r))

        moves = self.pool.call_many([(job(r), self.settings) for r in requests])
        return [
            MoveDecision(None, error=str(m)) if isinstance(m, EngineFailure) else MoveDecision(m)
            for m in moves
        ]
