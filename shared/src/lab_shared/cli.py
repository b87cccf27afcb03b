"""The `lab` command (being written)."""

import typer

app = typer.Typer()


def main() -> None:
    app()
