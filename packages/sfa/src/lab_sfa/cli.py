"""Continual fine-tuning with averaging (SFA) and its baselines.

Each CLI module (cli_run, merge.cli) adds its commands through register(app); heavy imports stay inside
the commands.
"""

import typer

from lab_sfa import cli_run
from lab_sfa.merge import cli as merge_cli

app = typer.Typer(help="Continual fine-tuning with averaging (SFA) and its baselines.", no_args_is_help=True)
cli_run.register(app)
merge_cli.register(app)
