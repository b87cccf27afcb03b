"""Stockfish as an opponent: settings, one supervised process, and a pool of them.

Engines crash and hang. A supervised `Engine` kills and restarts its process when a move does not arrive
in time or the process dies, then retries the move from the same position (the engine is stateless given
the position, so the game is replayed from where it stood). After `retries` failures the move raises
`EngineFailure`, which the arena records on the game instead of losing it.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import chess
import chess.engine

from lab_shared.errors import LabError
from lab_transcendence.procs import preexec_die_with_parent


class EngineFailure(RuntimeError):
    """A move could not be obtained from the engine even after restarts."""


@dataclass(frozen=True)
class EngineSettings:
    """How strong and how fast a Stockfish player is. One of time/nodes/depth limits a move."""

    skill: int | None = None  # UCI "Skill Level" 0..20; None = full strength
    time: float | None = None  # seconds a move (the paper: 0.1)
    nodes: int | None = None
    depth: int | None = None
    elo: int | None = None  # UCI_LimitStrength + UCI_Elo (1350..2850), instead of a skill level
    threads: int = 1
    hash_mb: int = 16

    def __post_init__(self) -> None:
        if self.time is None and self.nodes is None and self.depth is None:
            raise LabError("engine settings need a move limit: time, nodes or depth")
        if self.skill is not None and not 0 <= self.skill <= 20:
            raise LabError(f"Stockfish skill level must be 0..20, got {self.skill}")
        if self.time is not None and self.time <= 0:
            raise LabError(f"engine time per move must be > 0, got {self.time}")

    def limit(self) -> chess.engine.Limit:
        return chess.engine.Limit(time=self.time, nodes=self.nodes, depth=self.depth)

    def options(self) -> dict[str, object]:
        opts: dict[str, object] = {"Threads": self.threads, "Hash": self.hash_mb}
        if self.elo is not None:
            opts.update({"UCI_LimitStrength": True, "UCI_Elo": self.elo, "Skill Level": 20})
        else:
            opts.update({"UCI_LimitStrength": False, "Skill Level": 20 if self.skill is None else self.skill})
        return opts

    @property
    def name(self) -> str:
        """Short player name used in PGN headers and tables, e.g. `stockfish-l3`."""
        if self.elo is not None:
            return f"stockfish-elo{self.elo}"
        return "stockfish" if self.skill is None else f"stockfish-l{self.skill}"

    def describe(self) -> str:
        parts = [
            p
            for p in (
                f"time={self.time}s" if self.time else "",
                f"nodes={self.nodes}" if self.nodes else "",
                f"depth={self.depth}" if self.depth else "",
            )
            if p
        ]
        return f"{self.name} ({', '.join(parts)})"

    def move_timeout(self, grace: float) -> float:
        """Seconds after which a move is considered hung."""
        return (self.time or 0.0) + grace


class Engine:
    """One Stockfish process, restarted on crash or hang."""

    def __init__(self, path: str | Path, grace: float = 20.0, retries: int = 2):
        self.path = str(path)
        self.grace = grace
        self.retries = retries
        self.restarts = 0
        self._engine: chess.engine.SimpleEngine | None = None
        self._options: dict[str, object] = {}
        self._exec = ThreadPoolExecutor(max_workers=1)  # runs the blocking call we may abandon on a hang

    def _start(self) -> chess.engine.SimpleEngine:
        if self._engine is None:
            try:
                self._engine = popen_engine(self.path, timeout=30.0)
            except (OSError, chess.engine.EngineError, TimeoutError) as e:
                raise EngineFailure(f"cannot start engine {self.path}: {e}") from e
            self._options = {}
        return self._engine

    @property
    def pid(self) -> int | None:
        """The engine process id (tests kill or stop it to simulate crashes and hangs)."""
        if self._engine is None:
            return None
        return self._engine.transport.get_pid()

    def _kill(self) -> None:
        eng, self._engine = self._engine, None
        if eng is None:
            return
        pid = eng.transport.get_pid()
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, TypeError):
            pass
        threading.Thread(target=_quiet_close, args=(eng,), daemon=True).start()

    def call(self, fn, settings: EngineSettings):
        """Run fn(engine) with the settings applied; restart and retry on crash or hang."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.restarts += 1
            try:
                eng = self._start()
                opts = settings.options()
                changed = {k: v for k, v in opts.items() if self._options.get(k) != v}
                if changed:
                    eng.configure(changed)
                    self._options.update(changed)
                fut = self._exec.submit(fn, eng)
                return fut.result(timeout=settings.move_timeout(self.grace))
            except FutureTimeout as e:
                last = TimeoutError(f"engine did not answer within {settings.move_timeout(self.grace):.0f}s")
                self._kill()
                self._exec.shutdown(wait=False)
                self._exec = ThreadPoolExecutor(max_workers=1)
                del e
            except (
                chess.engine.EngineTerminatedError,
                chess.engine.EngineError,
                EngineFailure,
                OSError,
            ) as e:
                last = e
                self._kill()
        raise EngineFailure(f"engine failed {self.retries + 1} times: {last}")

    def play(self, board: chess.Board, settings: EngineSettings, game: object = None) -> chess.Move:
        """The engine's move in `board` under `settings` (`game` keys ucinewgame between games)."""
        result = self.call(lambda e: e.play(board, settings.limit(), game=game), settings)
        if result.move is None or result.move not in board.legal_moves:
            raise EngineFailure(f"engine returned no legal move in {board.fen()}")
        return result.move

    def analyse(self, board: chess.Board, settings: EngineSettings, multipv: int = 1) -> list[dict]:
        """python-chess analysis infos (one per principal variation)."""
        out = self.call(lambda e: e.analyse(board, settings.limit(), multipv=multipv), settings)
        return out if isinstance(out, list) else [out]

    def close(self) -> None:
        eng, self._engine = self._engine, None
        if eng is not None:
            _quiet_close(eng)
        self._exec.shutdown(wait=False)


def _quiet_close(eng: chess.engine.SimpleEngine) -> None:
    try:
        eng.close()
    except Exception:  # noqa: BLE001 - the process may already be dead
        pass


class EnginePool:
    """N supervised engines; `play_many` runs one move per request concurrently."""

    def __init__(self, path: str | Path, size: int = 2, grace: float = 20.0, retries: int = 2):
        if size < 1:
            raise LabError(f"engine pool size must be >= 1, got {size}")
        self.engines = [Engine(path, grace=grace, retries=retries) for _ in range(size)]
        self._free: queue.Queue[Engine] = queue.Queue()
        for e in self.engines:
            self._free.put(e)
        self._exec = ThreadPoolExecutor(max_workers=size)

    @property
    def restarts(self) -> int:
        return sum(e.restarts for e in self.engines)

    def _with_engine(self, fn):
        eng = self._free.get()
        try:
            return fn(eng)
        finally:
            self._free.put(eng)

    def play(self, board: chess.Board, settings: EngineSettings, game: object = None) -> chess.Move:
        return self._with_engine(lambda e: e.play(board, settings, game))

    def call(self, fn, settings: EngineSettings):
        """fn(raw python-chess engine) on a free supervised engine configured with `settings`."""
        return self._with_engine(lambda e: e.call(fn, settings))

    def call_many(self, jobs: Sequence[tuple]) -> list:
        """Run (fn, settings) jobs concurrently; a failed job gives its EngineFailure."""
        futs = [self._exec.submit(self.call, fn, s) for fn, s in jobs]
        out = []
        for f in futs:
            try:
                out.append(f.result())
            except EngineFailure as e:
                out.append(e)
        return out

    def play_many(
        self, requests: Sequence[tuple[chess.Board, EngineSettings, object]]
    ) -> list[chess.Move | EngineFailure]:
        """Moves for (board, settings, game key) requests; a failed request gives its EngineFailure."""
        futs = [self._exec.submit(self.play, b.copy(), s, g) for b, s, g in requests]
        out: list[chess.Move | EngineFailure] = []
        for f in futs:
            try:
                out.append(f.result())
            except EngineFailure as e:
                out.append(e)
        return out

    def analyse(self, board: chess.Board, settings: EngineSettings, multipv: int = 1) -> list[dict]:
        return self._with_engine(lambda e: e.analyse(board, settings, multipv))

    def close(self) -> None:
        for e in self.engines:
            e.close()
        self._exec.shutdown(wait=False)

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def popen_engine(path: str | Path, timeout: float = 30.0) -> chess.engine.SimpleEngine:
    """python-chess's popen_uci on an absolute path; the engine process dies with this one (Linux)."""
    return chess.engine.SimpleEngine.popen_uci(str(path), timeout=timeout, preexec_fn=preexec_die_with_parent)


def resolve_stockfish(spec: str | Path | None = None) -> Path:
    """The engine binary as an absolute path, checked to be an executable file.

    A spec with a slash (`./sf`, `bin/sf`, `/usr/games/stockfish`) or a Path is a path relative to the
    current folder, never looked up on PATH; a bare name (`stockfish`) is looked up on PATH, then in the
    current folder. None: $LAB_STOCKFISH, PATH, /usr/games/stockfish (lab_shared.tools.find_stockfish).
    """
    import shutil

    from lab_shared.tools import STOCKFISH_ADVICE, find_stockfish

    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return find_stockfish(None).absolute()
    text = str(spec)
    if isinstance(spec, str) and "/" not in text:
        found = shutil.which(text)
        if found:
            return Path(found).absolute()
    p = Path(text).expanduser()
    if not p.exists():
        where = "on PATH or " if isinstance(spec, str) and "/" not in text else ""
        raise LabError(f"Stockfish not found {where}at {p.absolute()}: {STOCKFISH_ADVICE}")
    if not p.is_file():
        raise LabError(f"--stockfish {text}: not a file ({p.absolute()} is a folder or a device)")
    if not os.access(p, os.X_OK):
        raise LabError(f"--stockfish {text}: {p.absolute()} is not executable (chmod +x it?)")
    return p.absolute()


HEALTHY_FOR_S = 60.0
_HEALTHY: dict[tuple, tuple[float, str]] = {}  # (path, mtime, size) -> (when it passed, engine name)


def health_check(path: str | Path, timeout: float = 10.0, tries: int = 3) -> str:
    """Start the engine and require the UCI handshake (`uci` -> `uciok`, `isready` -> `readyok`) within
    `timeout` seconds; up to `tries` attempts. Returns the engine's `id name`; LabError (one line) otherwise.

    Run before work fans out to pool workers, so that a broken binary is one clear error instead of workers
    failing (and being respawned) one after another.
    """
    import time

    try:
        st = os.stat(path)
        stamp = (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    seen = _HEALTHY.get(stamp) if stamp else None
    if seen is not None and time.monotonic() - seen[0] < HEALTHY_FOR_S:
        return seen[1]  # passed a moment ago (e.g. the corpus after the round robin): no second start
    last = ""
    for attempt in range(max(1, tries)):
        try:
            name = _handshake(Path(path), timeout)
            if stamp:
                _HEALTHY[stamp] = (time.monotonic(), name)
            return name
        except _HandshakeError as e:
            last = str(e)
            if e.final:
                break
        if attempt + 1 < tries:
            threading.Event().wait(0.2 * (attempt + 1))
    raise LabError(f"engine {path} failed its health check ({attempt + 1} tries): {last}")


class _HandshakeError(Exception):
    def __init__(self, message: str, final: bool = False):
        super().__init__(message)
        self.final = final  # retrying cannot help (e.g. the file cannot be executed at all)


def _handshake(path: Path, timeout: float) -> str:
    import selectors
    import subprocess
    import time

    try:
        proc = subprocess.Popen(
            [str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            preexec_fn=preexec_die_with_parent,
        )  # fmt: skip
    except OSError as e:
        raise _HandshakeError(f"cannot run it: {e.strerror or e}", final=True) from None
    name = ""
    try:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(b"uci\n")
            proc.stdin.flush()
        except OSError:
            pass  # it exited already: reported below
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        want, sent_ready = b"uciok", False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _HandshakeError(f"no {want.decode()} within {timeout:g}s")
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                code = proc.wait(timeout=5)
                raise _HandshakeError(f"exited with status {code} before answering {want.decode()}")
            buf += chunk
            if len(buf) > 1 << 20:
                raise _HandshakeError("over 1 MB of output without completing the UCI handshake")
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.strip()
                if line.startswith(b"id name ") and not name:
                    name = line[8:].decode("utf-8", "replace")[:100]
                if line == want == b"uciok" and not sent_ready:
                    proc.stdin.write(b"isready\n")
                    proc.stdin.flush()
                    want, sent_ready = b"readyok", True
                elif line == want == b"readyok":
                    return name or path.name
    except OSError as e:
        raise _HandshakeError(f"broken pipe during the handshake ({e})") from None
    finally:
        try:
            if proc.stdin is not None:
                proc.stdin.write(b"quit\n")
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def open_pool(stockfish: str | Path | None = None, size: int = 2, grace: float = 20.0) -> EnginePool:
    """A pool on the located Stockfish binary (LabError with install advice when missing), health-checked."""
    path = resolve_stockfish(stockfish)
    health_check(path)
    pool = EnginePool(path, size=size, grace=grace)
    try:  # fail early with one clear line if the binary is not a UCI engine
        pool.engines[0]._start()
    except EngineFailure as e:
        pool.close()
        raise LabError(f"cannot start Stockfish at {path}: {e}") from e
    return pool


def parse_limit(spec: str) -> tuple[str, float | str]:
    """A move limit `time:0.1`, `nodes:2000`, `depth:3` or `depth:level+1` (Skill Level k at depth k+1)."""
    kind, _, value = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in ("time", "nodes", "depth") or not value:
        raise LabError(f"bad engine limit {spec!r}: use time:SECONDS, nodes:N, depth:N or depth:level+1")
    if kind == "depth" and value.replace(" ", "") == "level+1":
        return kind, "level+1"
    try:
        num = float(value) if kind == "time" else int(value)
    except ValueError:
        raise LabError(f"bad engine limit {spec!r}: {value!r} is not a number") from None
    if num <= 0:
        raise LabError(f"bad engine limit {spec!r}: must be > 0")
    return kind, num


def level_settings(level: int, limit: str = "time:0.1") -> EngineSettings:
    """Stockfish at UCI Skill Level `level` under the move limit `limit` (see parse_limit)."""
    kind, value = parse_limit(limit)
    if value == "level+1":
        value = level + 1
    return EngineSettings(skill=level, **{kind: value})
