"""One UCI search: the `go` command's limits, its time budget, and the thread that answers `bestmove`.

A model move is one forward pass, so the move is computed at once on a search thread (the input loop
keeps answering `isready`, `stop`, `ponderhit`). What the protocol governs is when the answer may and
must be given:

- `go infinite` and `go ponder`: only at `stop`, or, pondering, once `ponderhit` turns the search into a
  normal one under the same limits (counted from the ponderhit);
- otherwise as soon as the move is known, and at the latest at the budget (`movetime`, or a share of the
  clock from `wtime`/`btime`/`winc`/`binc`/`movestogo`): past it, or at a `stop` that comes before the
  forward pass ends, the engine answers a fallback move instead of losing on time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_INT_ARGS = ("wtime", "btime", "winc", "binc", "movestogo", "depth", "nodes", "mate", "movetime")
_KEYWORDS = {*_INT_ARGS, "searchmoves", "ponder", "infinite"}
SUDDEN_DEATH_MOVES = 30  # with no `movestogo`, plan the clock for this many more moves


@dataclass
class GoParams:
    """The limits of one `go` command (times in milliseconds)."""

    infinite: bool = False
    ponder: bool = False
    movetime: int | None = None
    wtime: int | None = None
    btime: int | None = None
    winc: int | None = None
    binc: int | None = None
    movestogo: int | None = None
    depth: int | None = None  # accepted; a model move is depth 1 whatever is asked
    nodes: int | None = None
    mate: int | None = None
    searchmoves: list[str] = field(default_factory=list)


def parse_go(args: list[str]) -> GoParams:
    """`go` arguments -> GoParams; ValueError on a malformed one."""
    go = GoParams()
    i = 0
    while i < len(args):
        word = args[i]
        if word == "infinite":
            go.infinite = True
        elif word == "ponder":
            go.ponder = True
        elif word == "searchmoves":
            while i + 1 < len(args) and args[i + 1] not in _KEYWORDS:
                i += 1
                go.searchmoves.append(args[i])
        elif word in _INT_ARGS:
            if i + 1 >= len(args):
                raise ValueError(f"{word} needs a value")
            i += 1
            value = int(args[i])
            if word not in ("wtime", "btime") and value < 0:  # a clock may run below zero; nothing else
                raise ValueError(f"{word} must be >= 0, got {value}")
            setattr(go, word, value)
        else:
            raise ValueError(f"unknown go argument {word!r}")
        i += 1
    return go


def time_budget(go: GoParams, white: bool, overhead_ms: int = 30) -> float | None:
    """Seconds the engine may think, or None when nothing limits it (answer when the move is known).

    movetime: that time less the move overhead. A clock: the time left shared over `movestogo` (or 30)
    moves plus 3/4 of the increment, never more than the time left less the overhead. At least 1 ms.
    """
    if go.movetime is not None:
        ms = go.movetime - overhead_ms
    else:
        left = go.wtime if white else go.btime
        if left is None:
            return None
        inc = (go.winc if white else go.binc) or 0
        ms = min(left / (go.movestogo or SUDDEN_DEATH_MOVES) + 0.75 * inc, left - overhead_ms)
    return max(ms, 1.0) / 1000.0


class Search:
    """Runs `compute` on a thread and calls `answer(result or None)` exactly once, when the protocol says.

    `answer(None)` means "no move yet: play the fallback". `report(result)` is called when the move is
    known, unless the answer was already given (no `info` after `bestmove`).
    """

    def __init__(
        self,
        go: GoParams,
        budget: float | None,
        compute: Callable[[], object],
        answer: Callable[[object | None], None],
        report: Callable[[object], None] = lambda r: None,
    ):
        self.go = go
        self.budget = budget
        self._compute, self._answer, self._report = compute, answer, report
        self._lock = threading.Lock()
        self.result: object | None = None
        self.answered = threading.Event()
        self.computed = threading.Event()
        self.holding = go.infinite or go.ponder  # the answer waits for stop (or ponderhit)
        self._timer: threading.Timer | None = None
        self._thread = threading.Thread(target=self._run, name="uci-search", daemon=True)

    def start(self) -> Search:
        self._thread.start()
        if not self.holding:
            self._arm(self.budget)
        return self

    def _arm(self, budget: float | None) -> None:
        if budget is not None:
            self._timer = threading.Timer(budget, self._deadline)
            self._timer.daemon = True
            self._timer.start()

    def _run(self) -> None:
        result = self._compute()
        with self._lock:
            self.result = result
            self.computed.set()
            if self.answered.is_set():
                return  # answered with the fallback at a stop or the deadline: this result is stale
            self._report(result)
            if not self.holding:
                self._give(result)

    def _give(self, result: object | None) -> None:
        """Answer (the lock is held)."""
        self.answered.set()
        if self._timer is not None:
            self._timer.cancel()
        self._answer(result)

    def _deadline(self) -> None:
        with self._lock:
            if not self.answered.is_set() and not self.holding:
                self._give(self.result)

    def stop(self) -> None:
        """`stop`: answer now, with the move if it is known."""
        with self._lock:
            if not self.answered.is_set():
                self.holding = False
                self._give(self.result)

    def ponderhit(self) -> None:
        """`ponderhit`: the pondered move was played; the search goes on under its limits from now."""
        with self._lock:
            if self.answered.is_set() or not self.go.ponder or not self.holding:
                return
            self.holding = False
            if self.computed.is_set():
                self._give(self.result)
            else:
                self._arm(self.budget)

    def finish(self) -> None:
        """Let the search end (used at `quit` and end of input): stop a held one, wait for the rest."""
        if self.holding:
            self.stop()
        self.answered.wait()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the move is computed (the model is free again)."""
        self._thread.join(timeout)
