"""Shared pieces for package commands: the --config/--set options, config resolution, and options that take
one of a fixed set (`choice_option`: choices shown in --help and completed in the shell) or show the
effective default of a config field (`config_defaults`, `with_default`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the results as one JSON object on stdout instead of tables.")
]


def echo_json(obj: Any) -> None:
    """`obj` as JSON on stdout (paths as strings, numpy/torch scalars as numbers), for `--json`."""
    from lab_shared.io import to_json

    typer.echo(to_json(obj))


def config_from_cli(cls: type[T], config_file: Path | None, sets: list[str] | None, **typed_values: Any) -> T:
    """Defaults <- --config file <- typed options that were given <- --set overrides."""
    return load_config(cls, config_file, sets or (), typed_values)


# -- options that take one of a fixed set ------------------------------------------------------------------


def with_default(text: str, value: Any) -> str:
    """`text` followed by typer's own `[default: VALUE]` mark, for options whose declared default is None
    (so that a config file is not overridden) but whose effective default is known."""
    return f"{text}  [default: {_shown(value)}]"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "none"
    return "none" if value is None or value == "" else str(value)


def choice_option(
    *decls: str,
    choices: Iterable[str],
    help: str = "",  # noqa: A002 - typer's own name
    default: Any = None,
    separator: str | None = None,
    strict: bool = True,
    **option: Any,
) -> Any:
    """A typer Option that takes one of `choices` (e.g. read from a registry): the choices are the metavar
    in `--help`, the shell completes them, and any other value is a usage error (one line, exit 2).

    `default` is the effective default shown in the help (for options declared `= None`, resolved later from
    a config); an option with a real default shows it anyway. `separator=","` accepts a list of choices in one
    value (`--policies paper,masked`). `strict=False` only lists and completes the usual values and leaves
    checking to the command (`--device cuda:1`). Values stay plain strings.
    """
    values = tuple(dict.fromkeys(str(c) for c in choices))  # empty: nothing installed, every value refused

    def check(value: Any) -> Any:
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None:
                continue
            for part in item.split(separator) if separator else [item]:
                if part.strip() not in values:
                    raise typer.BadParameter(
                        f"{part.strip()!r} is not one of {', '.join(values) or '(none)'}"
                    )
        return value

    def complete(incomplete: str) -> list[str]:
        head, sep, last = incomplete.rpartition(separator) if separator else ("", "", incomplete)
        return [f"{head}{sep}{v}" for v in values if v.startswith(last)]

    metavar = "|".join(values) or "none"
    metavar = f"<{metavar}>[{separator}...]" if separator else f"<{metavar}>"
    if default is not None:
        help = with_default(help, default)
    if strict:
        option["callback"] = check
    return typer.Option(*decls, metavar=metavar, autocompletion=complete, help=help, **option)


def config_defaults(config: type | str, keys: Mapping[str, str], base: type | None = None) -> type:
    """A command class whose `--help` shows, for options declared `= None`, the default of the config field
    each one sets (`keys`: parameter name -> dotted config key). `config` is a dataclass or "module:Class",
    imported only when the help is shown, so `lab --help` stays light."""
    return _defaults_command(lambda: _config_defaults(config, keys), base)


def shown_defaults(
    values: Mapping[str, Any] | Callable[[], Mapping[str, Any]], base: type | None = None
) -> type:
    """A command class whose `--help` shows `values` (parameter name -> effective default) for options
    declared `= None` whose default is not a config field (e.g. "the workload's"). `values` may be a function,
    called only when the help is shown (for defaults that need a heavy import). Classes stack via `base`."""
    return _defaults_command(values if callable(values) else lambda: dict(values), base)


def _defaults_command(get_values: Any, base: type | None) -> type:
    from typer.core import TyperCommand

    parent = base or TyperCommand

    class DefaultsCommand(parent):  # type: ignore[misc, valid-type]
        def format_help(self, ctx: Any, formatter: Any) -> None:
            flag = f"_defaults_shown_{id(get_values)}"  # per class, so that stacked classes each add theirs
            if not getattr(self, flag, False):
                setattr(self, flag, True)
                defaults = get_values()
                for param in self.params:
                    if (
                        param.name not in defaults
                        or param.default is not None
                        or "[default:" in (param.help or "")
                    ):
                        continue
                    value = defaults[param.name]
                    if isinstance(value, bool) and param.secondary_opts:  # a --flag/--no-flag pair
                        value = (param.opts[0] if value else param.secondary_opts[0]).lstrip("-")
                    param.help = with_default(param.help or "", value)
            super().format_help(ctx, formatter)

    return DefaultsCommand


def _config_defaults(config: type | str, keys: Mapping[str, str]) -> dict[str, Any]:
    if isinstance(config, str):
        import importlib

        module, _, name = config.partition(":")
        config = getattr(importlib.import_module(module), name)
    cfg = load_config(config)  # type: ignore[arg-type]
    out = {}
    for param, key in keys.items():
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        out[param] = value
    return out
