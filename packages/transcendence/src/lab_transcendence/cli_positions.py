"""`lab chess data positions CORPUS --out DIR`: corpus games -> (position, move) shards (positions.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lab_shared.backend import AddressOpt, BackendOpt


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
        label_experts: Annotated[
            int,
            typer.Option(
                help="Also sample N positions and label each with every expert's move (synth corpora)."
            ),
        ] = 0,
        label_seed: Annotated[int, typer.Option(help="Seed of the sampled positions and expert moves.")] = 0,
        label_chunk: Annotated[
            int, typer.Option(help="Positions per labelling task (the resume unit).")
        ] = 64,
        stockfish: Annotated[
            str | None,
            typer.Option(help="Stockfish for the labels (default: LAB_STOCKFISH, PATH, /usr/games)."),
        ] = None,
        backend: BackendOpt = "local",
        address: AddressOpt = None,
    ) -> None:
        """Replay every game into memory-mapped (board, move) shards for `lab chess train --model position`
        (--backend ray: a unit of games a task, the shards written here)."""
        from lab_shared.backend import Backend
        from lab_shared.errors import LabError
        from lab_shared.io import read_json
        from lab_transcendence.positions import convert

        if unit_games < 1 or val_every < 2:
            raise LabError("--unit-games must be >= 1 and --val-every >= 2")
        n = workers if workers > 0 else max(1, os.cpu_count() or 1)
        tasks = Backend(backend, address, workers=n)
        if label_experts < 0 or label_chunk < 1:
            raise LabError("--label-experts must be >= 0 and --label-chunk >= 1")
        if label_experts:  # bad input is one line before any work
            from lab_transcendence.engines import resolve_stockfish
            from lab_transcendence.expert_labels import corpus_experts

            cmeta = corpus / "meta.json"
            corpus_experts(read_json(cmeta) if cmeta.is_file() else {}, corpus)
            if not tasks.is_ray:
                stockfish = str(resolve_stockfish(stockfish))
        tasks.start()  # Ray missing or unreachable: one line before anything is written
        meta = convert(corpus, out, workers=n, unit_games=unit_games, val_every=val_every, validate=validate,
                       force=force, backend=tasks)  # fmt: skip
        typer.echo(
            f"{out}: {meta['positions']:,} positions from {meta['games']:,} games in {meta['seconds']}s "
            f"(dropped {meta['games_dropped']}); held out: games with g % {meta['val_every']} == 0"
        )
        if label_experts:
            from lab_transcendence.expert_labels import add_labels

            meta = add_labels(out, label_experts, seed=label_seed, stockfish=stockfish, backend=tasks,
                              chunk=label_chunk, workers=n)  # fmt: skip
            lab = meta["labels"]
            typer.echo(f"{out}: + {lab['pairs']:,} expert labels ({lab['positions']:,} positions x "
                       f"{len(lab['experts'])} experts), {meta['positions']:,} pairs in all")  # fmt: skip
