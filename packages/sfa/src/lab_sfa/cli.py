"""Continual fine-tuning with averaging (SFA) and its baselines.

Each cli_* module adds its commands through register(app); heavy imports stay inside the commands.
"""

import typer

from lab_sfa import cli_merge, cli_run

app = typer.Typer(help="Continual fine-tuning with averaging (SFA) and its baselines.", no_args_is_help=True)
cli_run.register(app)
cli_merge.register(app)
