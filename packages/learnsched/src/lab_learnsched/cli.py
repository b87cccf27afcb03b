"""Buffer-pool-aware query scheduling with deep RL.

Each cli_* module adds its commands through register(app); heavy imports stay inside the commands.
"""

import typer

from lab_learnsched import cli_pg, cli_sim

app = typer.Typer(help="Buffer-pool-aware query scheduling with deep RL.", no_args_is_help=True)
cli_sim.register(app)
cli_pg.register(app)
