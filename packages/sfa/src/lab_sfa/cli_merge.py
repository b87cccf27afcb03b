"""Commands of lab_sfa (being written)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the package's Typer app."""
