"""The trained model as a UCI engine, for chess GUIs, cutechess-cli, PolyGlot or lichess-bot.

Options: `Temperature` (string, > 0), `Policy` (masked | paper), `Seed`, `Move Overhead` (ms kept off
every budget) and `Ponder` (when on, `bestmove` names the model's guess of the reply, so a GUI can
ponder on it). The input loop answers at once (`isready` while thinking included); the move is computed
on a search thread and answered when the protocol allows (uci_search.py: `go infinite` / `go ponder`
wait for `stop` / `ponderhit`; `movetime` and the clock set a budget). `searchmoves` restricts the
candidates: the policy's distribution is renormalised over them.

Positions: `position startpos moves ...` gives a transcript model the whole game; a `position fen`
start is prompted from the FEN's move number and side to move (`;23...Nf6 24.` for a FEN with Black to
move at move 23: the history before the FEN is unknown); a move-vocabulary model sees the moves since
the FEN. A position model needs only the board. The model's prompt cache is kept across moves: when the
new position extends the previous game (as a GUI sends it, `startpos moves` + one more each turn) only
the new tokens go through the model. A UCI engine must always answer: when the paper policy forfeits
(5 illegal samples) the engine says so in an `info string` and plays the masked policy's choice.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

import chess
import numpy as np

from lab_transcendence.uci_search import GoParams, Search, parse_go, time_budget

NAME = "lab-chess-gpt"


@dataclass
class Choice:
    """What one search found: the move, the model's guess of the reply, and lines for the GUI."""

    move: chess.Move | None
    ponder: chess.Move | None
    info: list[str]
    notes: list[str]


class UciEngine:
    def __init__(self, model, tokenizer, temperature: float = 0.001, policy: str = "masked", seed: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.policy = policy
        self.seed = seed
        self.overhead_ms = 30
        self.ponder = False
        self.board = chess.Board()
        self.sans: list[str] = []
        self.games = 0
        self.out: TextIO = sys.stdout
        self.model_lock = threading.Lock()  # the model and its caches: one computation at a time
        self.search: Search | None = None
        self._players: dict[str, object] = {}
        self._forget: list[str] = []  # game ids whose cached prompts go at the next computation
        self._warm = False

    # -- players, kept across moves so their prompt caches are too -------------------------------------

    def _player(self, policy: str):
        key = "position" if self.tokenizer is None else policy
        if key not in self._players:
            if self.tokenizer is None:  # a position model (illegal moves masked; the Policy option is moot)
                from lab_transcendence.position_player import PositionPlayer

                self._players[key] = PositionPlayer(self.model, self.temperature, name=NAME)
            else:
                from lab_transcendence.player import ModelPlayer

                self._players[key] = ModelPlayer(
                    self.model, self.tokenizer, self.temperature, policy, name=NAME
                )
        return self._players[key]

    def warm_up(self) -> None:
        """One computation on the start position at the first idle `isready` (the protocol's moment for
        initialisation), so that the first real move does not pay for imports and first-call set-up."""
        self._warm = True
        settings = (self.temperature, self.policy, False, self.seed, "warm-up")
        self.think(chess.Board(), [], None, settings, time.monotonic())
        self._forget.append("uci-warm-up")

    def game_id(self) -> str:
        return f"uci-{self.games}"

    # -- the command loop ---------------------------------------------------------------------------

    def handle(self, line: str, out: TextIO) -> bool:
        """Answer one UCI command; False on `quit`. A `go` returns at once (see `wait`)."""
        self.out = out
        parts = line.strip().split()
        if not parts:
            return True
        cmd, args = parts[0], parts[1:]
        if cmd == "uci":
            say(out, f"id name {NAME}")
            say(out, "id author lab (transcendence)")
            say(out, f"option name Temperature type string default {self.temperature:g}")
            say(out, f"option name Policy type combo default {self.policy} var masked var paper")
            say(out, f"option name Seed type spin default {self.seed} min 0 max 2147483647")
            say(out, f"option name Move Overhead type spin default {self.overhead_ms} min 0 max 5000")
            say(out, f"option name Ponder type check default {'true' if self.ponder else 'false'}")
            say(out, "uciok")
        elif cmd == "isready":
            if not self._warm and (self.search is None or self.search.answered.is_set()):
                self.warm_up()
            say(out, "readyok")
        elif cmd == "ucinewgame":
            self._forget.append(self.game_id())
            self.games += 1
            self.board, self.sans = chess.Board(), []
        elif cmd == "setoption":
            self._setoption(args, out)
        elif cmd == "position":
            self._position(args, out)
        elif cmd == "go":
            self._go(args, out)
        elif cmd == "stop":
            if self.search is not None:
                self.search.stop()
        elif cmd == "ponderhit":
            if self.search is not None:
                self.search.ponderhit()
        elif cmd == "quit":
            self.finish()
            return False
        elif cmd in ("debug", "register"):
            pass
        else:
            say(out, f"info string unknown command: {cmd}")
        return True

    def wait(self) -> None:
        """Until the current search has answered and its computation ended (tests, `quit`)."""
        if self.search is not None:
            self.search.answered.wait()
            self.search.join()

    def finish(self) -> None:
        """End of input or `quit`: a held search is stopped, a running one answers first."""
        if self.search is not None:
            self.search.finish()
            self.search.join()

    def _setoption(self, args: list[str], out: TextIO) -> None:
        text = " ".join(args)
        if not text.startswith("name "):
            say(out, f"info string bad setoption: {text}")
            return
        name, _, value = text[5:].partition(" value ")
        name, value = name.strip().lower(), value.strip()
        try:
            if name == "temperature":
                t = float(value)
                if not t > 0:
                    raise ValueError("temperature must be > 0")
                self.temperature = t
            elif name == "policy":
                if value not in ("masked", "paper"):
                    raise ValueError("policy must be masked or paper")
                self.policy = value
            elif name == "seed":
                self.seed = int(value)
            elif name == "move overhead":
                ms = int(value)
                if not 0 <= ms <= 5000:
                    raise ValueError("move overhead must be 0..5000 ms")
                self.overhead_ms = ms
            elif name == "ponder":
                if value not in ("true", "false"):
                    raise ValueError("ponder must be true or false")
                self.ponder = value == "true"
            else:
                raise ValueError(f"unknown option {name}")
        except ValueError as e:
            say(out, f"info string bad option value: {e}")

    def _position(self, args: list[str], out: TextIO) -> None:
        try:
            if "moves" in args:
                i = args.index("moves")
                head, moves = args[:i], args[i + 1 :]
            else:
                head, moves = args, []
            if head[:1] == ["startpos"]:
                board = chess.Board()
            elif head[:1] == ["fen"]:
                board = chess.Board(" ".join(head[1:]))
                if not board.is_valid():
                    raise ValueError(f"impossible position {board.fen()}")
            else:
                raise ValueError("expected startpos or fen")
            sans = []
            for uci in moves:
                move = chess.Move.from_uci(uci)
                if move not in board.legal_moves:
                    raise ValueError(f"illegal move {uci} in {board.fen()}")
                sans.append(board.san(move))
                board.push(move)
        except (ValueError, IndexError) as e:
            say(out, f"info string bad position: {e}")
            return
        self.board, self.sans = board, sans

    # -- go -----------------------------------------------------------------------------------------

    def _go(self, args: list[str], out: TextIO) -> None:
        try:
            go = parse_go(args)
        except ValueError as e:
            say(out, f"info string bad go: {e}")
            go = GoParams()
        if self.search is not None and not self.search.answered.is_set():
            self.search.stop()  # a `go` during a search (a GUI's slip): answer the old one first
        board, sans = self.board.copy(), list(self.sans)
        allowed = _searchmoves(board, go.searchmoves, out)
        budget = time_budget(go, board.turn == chess.WHITE, self.overhead_ms)
        settings = (self.temperature, self.policy, self.ponder, self.seed, self.games)
        t0 = time.monotonic()

        def compute() -> Choice:
            return self.think(board, sans, allowed, settings, t0)

        def answer(choice: Choice | None) -> None:
            for note in choice.notes if choice is not None else []:
                say(out, f"info string {note}")
            if choice is None or choice.move is None:
                move = _fallback(board, allowed)
                if move is not None and choice is None:
                    say(out, "info string no model move within the limit; playing a fallback move")
                say(out, f"bestmove {move.uci() if move is not None else '0000'}")
                return
            tail = f" ponder {choice.ponder.uci()}" if choice.ponder is not None else ""
            say(out, f"bestmove {choice.move.uci()}{tail}")

        def report(choice: Choice) -> None:
            for line in choice.info:
                say(out, line)

        self.search = Search(go, budget, compute, answer, report).start()

    def think(self, board: chess.Board, sans: list[str], allowed, settings, t0: float) -> Choice:
        """The model's move for `board` among `allowed` (None: all legal moves), on the search thread."""
        temperature, policy, ponder, seed, games = settings
        with self.model_lock:
            try:
                return self._think(board, sans, allowed, temperature, policy, ponder, seed, games, t0)
            except Exception as e:  # an engine must answer: the fallback move, and why
                return Choice(None, None, [], [f"model error: {type(e).__name__}: {e}"])

    def _think(self, board, sans, allowed, temperature, policy, ponder, seed, games, t0) -> Choice:
        from lab_transcendence.arena import game_seed

        for gid in self._forget:
            for player in self._players.values():
                end = getattr(player, "end_game", None)
                if end is not None:
                    end(gid)
        self._forget.clear()
        if board.is_game_over():
            return Choice(None, None, [], ["the game is over"])
        notes: list[str] = []
        gseed, game_id = game_seed(seed, str(games)), f"uci-{games}"
        move, p = self._pick(board, sans, allowed, temperature, policy, gseed, game_id, notes)
        guess = None
        if ponder and move is not None:
            after = board.copy()
            after.push(move)
            if not after.is_game_over():
                moves, lp = self._candidates(after, [*sans, board.san(move)], "masked", game_id)
                guess = moves[int(np.argmax(lp))] if moves else None
        ms = int((time.monotonic() - t0) * 1000)
        n = board.legal_moves.count() if allowed is None else len(allowed)
        info = [f"info depth 1 seldepth 1 multipv 1 nodes {n} time {ms} pv {move.uci()}"] if move else []
        cache = getattr(self._player(policy), "cache", None)
        if cache is not None and cache.last_reuse:
            reused, total = cache.last_reuse[0]
            notes.append(f"prompt cache reused {reused} of {total} tokens")
        if p is not None:
            notes.append(f"p {p:.3f}")
        return Choice(move, guess, info, notes)

    def _request(self, board: chess.Board, sans: list[str], game_id: str):
        from lab_transcendence.arena import MoveRequest

        return MoveRequest(game_id, board.copy(), list(sans), 0)

    def _candidates(self, board, sans, policy, game_id) -> tuple[list[chess.Move], np.ndarray]:
        """Legal moves and the policy's log p_T of each (masked scoring, or the position model)."""
        player = self._player(policy)
        if self.tokenizer is None:
            return player.legal_logprobs([board])[0]
        return player.legal_logprobs([self._request(board, sans, game_id)])[0]

    def _pick(self, board, sans, allowed, temperature, policy, gseed, game_id, notes):
        """(move, its probability or None) under the policy, restricted to `allowed`."""
        from lab_transcendence.player import _rng, sample_index

        player = self._player(policy)
        player.temperature = float(temperature)
        if self.tokenizer is not None and policy == "paper":
            from lab_transcendence.arena import MoveRequest

            dec = player.select([MoveRequest(game_id, board.copy(), list(sans), gseed)])[0]
            if dec.illegal:
                notes.append(f"{dec.illegal} illegal sample(s)")
            if dec.move is not None and (allowed is None or dec.move in allowed):
                return dec.move, None
            why = "forfeits" if dec.move is None else "chose a move outside searchmoves"
            notes.append(f"paper policy {why}; playing the masked policy's move")
            player = self._player("masked")
            player.temperature = float(temperature)
            policy = "masked"
        moves, lp = self._candidates(board, sans, policy, game_id)
        if allowed is not None:
            keep = [i for i, m in enumerate(moves) if m in allowed]
            moves, lp = [moves[i] for i in keep], lp[keep]
            lp = lp - np.logaddexp.reduce(lp) if len(lp) else lp
        if not moves:
            return None, None
        k = sample_index(lp, _rng(gseed, len(sans), 0))
        return moves[k], float(np.exp(lp[k]))


def _searchmoves(board: chess.Board, ucis: list[str], out: TextIO) -> set[chess.Move] | None:
    """The legal moves among `go searchmoves ...` (None: no restriction)."""
    if not ucis:
        return None
    allowed = set()
    for u in ucis:
        try:
            m = chess.Move.from_uci(u)
        except ValueError:
            m = None
        if m is None or m not in board.legal_moves:
            say(out, f"info string searchmoves: {u} is not a legal move here; ignored")
        else:
            allowed.add(m)
    if not allowed:
        say(out, "info string searchmoves: no legal move given; searching all moves")
        return None
    return allowed


def _fallback(board: chess.Board, allowed: set[chess.Move] | None) -> chess.Move | None:
    """The move played when the model has not answered in time: the first candidate in UCI order."""
    moves = sorted(allowed if allowed is not None else board.legal_moves, key=chess.Move.uci)
    return moves[0] if moves else None


_SAY = threading.Lock()


def say(out: TextIO, text: str) -> None:
    with _SAY:
        out.write(text + "\n")
        out.flush()


def serve(engine: UciEngine, inp: TextIO | None = None, out: TextIO | None = None) -> None:
    """The UCI loop: read commands until `quit` or end of input (a running search answers first).

    Serving the process's own stdin (the CLI), the process then ends at once: torch's interpreter
    teardown takes over a second here, and GUIs such as PolyGlot kill an engine that lingers 0.5 s.
    """
    own = inp is None
    inp, out = inp or sys.stdin, out or sys.stdout
    engine.out = out
    for line in inp:
        if not engine.handle(line, out):
            break
    else:
        engine.finish()
    if own:
        out.flush()
        os._exit(0)
