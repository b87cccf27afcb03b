"""Shared pieces for package commands: the --config/--set options and config resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lab_shared.config import load_config

T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML or JSON config file (typed options override it).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override one config field: key=value (dotted keys for nested; repeatable)."
    ),
]

ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Resume even though the config or inputs differ from the run's record (recorded in provenance.json).",
    ),
]


def config_from_cli(cls: type[T], config_file: Path | None, sets: list[str] | None, **typed_values: Any) -> T:
    """Defaults <- --config file <- typed options that were given <- --set overrides."""
    return load_config(cls, config_file, sets or (), typed_values)
