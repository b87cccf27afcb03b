"""The arena's games as tasks of a lab_shared.backend (`--backend local|ray` of eval, transcend, calibrate).

Local: `arena.play_games` in this process, as before. Ray: the games not yet in games.jsonl go out in chunks
of consecutive games, one Ray task each; a worker plays its chunk with `play_games` on a Stockfish pool kept
per worker process. The model is either served by one actor that batches the positions of every chunk
in flight into one forward pass per player (`serve=actor`; on a GPU when the cluster has one) or loaded
once in each worker process, which batches the positions of its own chunk (`serve=worker`). `auto` takes
the actor when the cluster has a GPU and the device is not `cpu`, else the worker: on CPU the worker skips
a round trip to the actor per move (benchmarks/scale_ray.py measures both).

Only the driver writes the run folder: each finished chunk's games are appended to games.jsonl as it
comes back (so a resumed run never replays them); a killed worker's chunk is retried by Ray; the progress
bar counts games over all workers. The records come back in the order of the specs whatever the backend,
so ratings and bootstrap intervals do not depend on which game finished first.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from lab_shared.backend import Backend, map_tasks
from lab_shared.errors import LabError
from lab_transcendence.arena import GameLog, GameSpec, play_games

SERVE = ("auto", "actor", "worker")
SERVED_BATCHES: list[
    int
] = []  # positions per forward pass of the last job's ModelServer (benchmarks read it)


def play(
    specs: Sequence[GameSpec],
    players: dict,
    log: GameLog | None,
    backend: Backend | None = None,
    *,
    concurrency: int = 32,
    max_moves: int | None = 89,
    on_game: Callable[[dict], None] | None = None,
    claim_draws: bool = True,
    stockfish: str | None = None,
    engines: int = 1,
    serve: str = "auto",
    device: str = "auto",
) -> list[dict]:
    """Play the specs not yet in `log` where `backend` runs tasks; every record of `specs`, in spec order.

    `players` are the driver's players (on Ray only their `recipe()` travels: what rebuilds them where the
    games run); `stockfish` and `engines` make each Ray worker's engine pool."""
    if serve not in SERVE:
        raise LabError(f"--serve must be auto, actor or worker, got {serve!r}")
    if backend is None or not backend.is_ray:
        recs = play_games(specs, players, log, concurrency=concurrency, max_moves=max_moves, on_game=on_game,
                          claim_draws=claim_draws)  # fmt: skip
        return _in_order(recs, specs)
    done = log.done_ids() if log is not None else set()
    todo = [s for s in specs if s.game_id not in done]
    out: list[dict] = []
    if todo:
        out = _play_ray(todo, players, log, backend, concurrency, max_moves, on_game, claim_draws, stockfish,
                        engines, serve, device)  # fmt: skip
    if log is not None:
        ids = {s.game_id for s in specs}
        out = [r for r in log.latest() if r["game_id"] in ids]
    return _in_order(out, specs)


def _in_order(recs: list[dict], specs: Sequence[GameSpec]) -> list[dict]:
    at = {s.game_id: i for i, s in enumerate(specs)}
    return sorted(recs, key=lambda r: at.get(r["game_id"], len(at)))


def chunk_size(games: int, slots: int, concurrency: int) -> int:
    """Games a task: about four tasks a worker (a straggler costs little), at most `concurrency`."""
    return max(1, min(concurrency, math.ceil(games / (4 * max(1, slots)))))


def check_worker(stockfish: str | None) -> str:
    """On a worker: the Stockfish it will use, resolved and health-checked (LabError, one line, if not)."""
    from lab_transcendence.engines import health_check, resolve_stockfish

    path = resolve_stockfish(stockfish)
    health_check(path)
    return str(path)


def _play_ray(todo, players, log, backend, concurrency, max_moves, on_game, claim_draws, stockfish, engines,
              serve, device) -> list[dict]:  # fmt: skip
    import ray

    names = {n for s in todo for n in (s.white, s.black)}
    recipes = {n: players[n].recipe() for n in names}
    backend.check(check_worker, stockfish)  # no working Stockfish where the games run: one line, no game
    models = {n: r for n, r in recipes.items() if r[0] == "model"}
    server = None
    if models and _use_actor(serve, device):
        gpus = 1 if device != "cpu" and ray.cluster_resources().get("GPU", 0) >= 1 else 0
        actor = ray.remote(ModelServer).options(num_cpus=0 if not gpus else 1, num_gpus=gpus, max_restarts=3,
                                                max_task_retries=3, max_concurrency=256)  # fmt: skip
        server = actor.remote({n: r[2] for n, r in models.items()}, "cuda" if gpus else "cpu")
        ray.get(server.ready.remote())  # the model loads (or fails) before any game
        recipes |= {n: ("served", n, (r[2]["headers"], server)) for n, r in models.items()}
    opts = {"stockfish": stockfish, "engines": engines, "concurrency": concurrency, "max_moves": max_moves,
            "claim_draws": claim_draws}  # fmt: skip
    size = chunk_size(len(todo), backend.slots(), concurrency)
    tasks = []
    for i in range(0, len(todo), size):
        chunk = list(todo[i : i + size])
        used = {n for s in chunk for n in (s.white, s.black)}
        tasks.append((chunk[0].game_id, (chunk, {n: recipes[n] for n in used}, opts)))
    out: list[dict] = []

    def finished(_key: str, recs: list[dict]) -> None:
        for rec in recs:
            if log is not None:
                log.append(rec)
            out.append(rec)
            if on_game is not None:
                on_game(rec)

    try:
        map_tasks(play_chunk, tasks, backend, on_result=finished)
        if server is not None:
            SERVED_BATCHES[:] = ray.get(server.stats.remote())
    finally:
        if server is not None:
            ray.kill(server)
    return out


def _use_actor(serve: str, device: str) -> bool:
    if serve != "auto":
        return serve == "actor"
    import ray

    return device != "cpu" and ray.cluster_resources().get("GPU", 0) >= 1


# ---------------------------------------------------------------- on a worker

_POOL: dict[str, Any] = {}  # this worker process's engine pool, kept between chunks
_MODELS: dict[str, tuple] = {}  # model folder -> (kind, model, tokenizer), loaded once a process


def _worker_pool(stockfish: str | None, engines: int):
    from lab_transcendence.engines import EnginePool, resolve_stockfish

    path = str(resolve_stockfish(stockfish))
    key = f"{path}:{engines}"
    if key not in _POOL:
        for old in _POOL.values():
            old.close()
        _POOL.clear()
        _POOL[key] = EnginePool(path, size=engines)
    return _POOL[key]


def _load(path: str, device: str) -> tuple:
    if path not in _MODELS:
        from lab_transcendence.loading import load_any

        kind, model, tok, _meta = load_any(path, device)
        _MODELS[path] = (kind, model, tok)
    return _MODELS[path]


def build_model_player(r: dict, device: str = "cpu"):
    """A model player from its recipe (see transcend.make_model_player), the model loaded once a process."""
    from lab_transcendence.transcend import model_player

    kind, model, tok = _load(r["path"], device)
    return model_player(kind, model, tok, r["temperature"], r["policy"], r["name"], r["attempts"],
                        r["protocol"], r["base_headers"])  # fmt: skip


def _build(recipe: tuple, pool):
    from lab_transcendence.arena import EnginePlayer, ExpertPlayer

    kind, name, payload = recipe
    if kind == "engine":
        return EnginePlayer(pool, payload, name=name)
    if kind == "expert":
        return ExpertPlayer(pool, payload, name=name)
    if kind == "model":
        return build_model_player(payload)
    if kind == "served":
        return ServedPlayer(name, *payload)
    raise ValueError(f"unknown player recipe {kind!r}")


def play_chunk(arg: tuple) -> list[dict]:
    """A backend task: play a chunk of games here, on this process's engine pool; their records."""
    import torch

    specs, recipes, opts = arg
    torch.set_num_threads(1)  # one CPU a task
    pool = _worker_pool(opts["stockfish"], opts["engines"])
    players = {n: _build(r, pool) for n, r in recipes.items()}
    return play_games(specs, players, None, concurrency=opts["concurrency"], max_moves=opts["max_moves"],
                      claim_draws=opts["claim_draws"])  # fmt: skip


class ServedPlayer:
    """A model player whose moves come from a ModelServer actor (batched with other workers' games)."""

    def __init__(self, name: str, headers: dict, server):
        self.name = name
        self._headers = dict(headers)
        self.server = server

    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    def select(self, requests):
        import ray

        return ray.get(self.server.select.remote(self.name, list(requests)))

    def end_game(self, game_id: str) -> None:
        self.server.end_game.remote(self.name, game_id)


class ModelServer:
    """A Ray actor holding the model players of a job. Calls from every worker queue up; one thread takes
    all that are waiting, merges those of the same player into one `select` (one forward pass) and answers
    each caller its own moves. Nothing waits on purpose: while a pass runs the next batch gathers."""

    def __init__(self, recipes: dict[str, dict], device: str = "cpu"):
        self.players = {n: build_model_player(r, device) for n, r in recipes.items()}
        for p in self.players.values():  # a batch holds many workers' games: keep all their prompts
            p.max_batch = max(p.max_batch, 256)
            if hasattr(p, "cache"):
                p.cache.max_games = max(p.cache.max_games, 1024)
        self.queue: queue.Queue = queue.Queue()
        self.batches: list[int] = []  # positions per merged call (for the benchmark)
        threading.Thread(target=self._loop, name="model-server", daemon=True).start()

    def ready(self) -> int:
        return os.getpid()

    def select(self, name: str, requests: list) -> list:
        fut: Future = Future()
        self.queue.put(("select", name, requests, fut))
        return fut.result()

    def end_game(self, name: str, game_id: str) -> None:
        self.queue.put(("end", name, game_id, None))

    def stats(self) -> list[int]:
        return list(self.batches)

    def _loop(self) -> None:
        while True:
            items = [self.queue.get()]
            while True:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            by_name: dict[str, list] = {}
            for kind, name, payload, fut in items:
                if kind == "end":
                    end = getattr(self.players[name], "end_game", None)
                    if end is not None:
                        end(payload)
                else:
                    by_name.setdefault(name, []).append((payload, fut))
            for name, calls in by_name.items():
                reqs = [r for payload, _ in calls for r in payload]
                try:
                    moves = self.players[name].select(reqs)
                except BaseException as e:  # noqa: BLE001 - handed to every caller of this batch
                    for _, fut in calls:
                        fut.set_exception(e)
                    continue
                self.batches.append(len(reqs))
                at = 0
                for payload, fut in calls:
                    fut.set_result(moves[at : at + len(payload)])
                    at += len(payload)
