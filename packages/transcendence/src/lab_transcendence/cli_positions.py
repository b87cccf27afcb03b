"""`lab chess data positions CORPUS --out DIR`: corpus games -> (position, move) shards (positions.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def register(data_app: typer.Typer) -> None:
    """Add `positions` to the `lab chess data` group."""

    @data_app.command("positions")
    def data_positions(
        corpus: Annotated[Path, typer.Argument(help="A data folder from `lab chess data synth|lichess`.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output positions folder.")],
        workers: Annotated[int, typer.Option("--workers", "-j", help="Processes (default: all cores).")] = 0,
        unit_games: Annotated[int, typer.Option(help="Games per shard (the resume unit).")] = 1000,
        val_every: Annotated[int, typer.Option(help="Game g is held out when g % N == 0.")] = 50,
        validate: Annotated[
            bool,
            typer.Option("--validate", help="Replay with python-chess push_san (legality checked; slower)."),
        ] = False,
        force: Annotated[bool, typer.Option("--force", help="Start over instead of resuming.")] = False,
    ) -> None:
        """Replay every game into memory-mapped (board, move) shards for `lab chess train --model position`."""
        from lab_shared.errors import LabError
        from lab_transcendence.positions import convert

        if unit_games < 1 or val_every < 2:
            raise LabError("--unit-games must be >= 1 and --val-every >= 2")
        n = workers if workers > 0 else max(1, os.cpu_count() or 1)
        meta = convert(corpus, out, workers=n, unit_games=unit_games, val_every=val_every, validate=validate,
                       force=force)  # fmt: skip
        typer.echo(
            f"{out}: {meta['positions']:,} positions from {meta['games']:,} games in {meta['seconds']}s "
            f"(dropped {meta['games_dropped']}); held out: games with g % {meta['val_every']} == 0"
        )
