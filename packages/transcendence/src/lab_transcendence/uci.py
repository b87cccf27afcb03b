"""The trained model as a UCI engine, for chess GUIs, cutechess-cli or lichess-bot.

Options: `Temperature` (string, > 0), `Policy` (masked | paper) and `Seed`. The model sees the moves since
the `position` command's start position as its transcript (a FEN start loses the earlier history; the
transcript's move numbers then restart at 1). A UCI engine must always answer: when the paper policy
forfeits (5 illegal samples) the engine says so in an `info string` and plays the masked policy's choice.
"""

from __future__ import annotations

import sys
from typing import TextIO

import chess

NAME = "lab-chess-gpt"


class UciEngine:
    def __init__(self, model, tokenizer, temperature: float = 0.001, policy: str = "masked", seed: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.policy = policy
        self.seed = seed
        self.board = chess.Board()
        self.sans: list[str] = []
        self.games = 0

    def _player(self, policy: str):
        if self.tokenizer is None:  # a position model (illegal moves masked; the Policy option is moot)
            from lab_transcendence.position_player import PositionPlayer

            return PositionPlayer(self.model, self.temperature, name=NAME)
        from lab_transcendence.player import ModelPlayer

        return ModelPlayer(self.model, self.tokenizer, self.temperature, policy, name=NAME)

    def handle(self, line: str, out: TextIO) -> bool:
        """Answer one UCI command; False on `quit`."""
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
            say(out, "uciok")
        elif cmd == "isready":
            say(out, "readyok")
        elif cmd == "ucinewgame":
            self.games += 1
            self.board, self.sans = chess.Board(), []
        elif cmd == "setoption":
            self._setoption(args, out)
        elif cmd == "position":
            self._position(args, out)
        elif cmd == "go":
            say(out, f"bestmove {self.best_move(out)}")
        elif cmd == "quit":
            return False
        elif cmd in ("stop", "ponderhit", "debug", "register"):
            pass  # `go` answers at once, so there is nothing to stop
        else:
            say(out, f"info string unknown command: {cmd}")
        return True

    def _setoption(self, args: list[str], out: TextIO) -> None:
        text = " ".join(args)
        if not text.startswith("name ") or " value " not in text:
            say(out, f"info string bad setoption: {text}")
            return
        name, value = text[5:].split(" value ", 1)
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

    def best_move(self, out: TextIO) -> str:
        from lab_transcendence.arena import MoveRequest, game_seed

        if self.board.is_game_over():
            return "0000"
        req = MoveRequest(
            f"uci-{self.games}", self.board.copy(), list(self.sans), game_seed(self.seed, str(self.games))
        )
        dec = self._player(self.policy).select([req])[0]
        if dec.illegal:
            say(out, f"info string {dec.illegal} illegal sample(s)")
        if dec.move is None:
            say(out, "info string paper policy forfeits; playing the masked policy's move")
            dec = self._player("masked").select([req])[0]
        return dec.move.uci() if dec.move is not None else "0000"


def say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def serve(engine: UciEngine, inp: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
    """The UCI loop: read commands until `quit` or end of input."""
    for line in inp:
        if not engine.handle(line, out):
            break
