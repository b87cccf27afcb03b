"""Transcendence in chess: data, training, games against Stockfish, ratings.

Each cli_* module adds its commands through register(app); heavy imports stay inside the commands.
"""

import typer

from lab_transcendence import cli_data, cli_eval

app = typer.Typer(
    help="Transcendence in chess: data, training, games against Stockfish, ratings.", no_args_is_help=True
)
cli_data.register(app)
cli_eval.register(app)
