"""The `lab` command: packages plug their sub-apps in through the `lab.commands` entry-point group.

Start-up stays light (no torch import): package CLI modules import heavy code inside their commands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from lab_shared import __version__
from lab_shared.cli_utils import choice_option
from lab_shared.errors import LabError

app = typer.Typer(
    help="lab: SFA continual learning, chess transcendence and learned query scheduling on one core.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # `lab --install-completion` (bash, zsh, fish, PowerShell)
    rich_markup_mode=None,  # help is plain text: rich markup would eat `[[grid]]` and `[default: ...]`-like text
)


def _demo_names() -> list[str]:
    """The installed packages' demos (entry-point group `lab.demos`), the choices of `lab demo --only`."""
    return sorted(ep.name for ep in entry_points(group="lab.demos"))


def _version(value: bool) -> None:
    if value:
        print(f"lab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """lab: three papers, one core."""


@app.command()
def doctor(
    json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Report Python, torch, CUDA, Stockfish, PostgreSQL, data sets and optional parts, with advice."""
    from lab_shared.doctor import run_doctor

    raise typer.Exit(run_doctor(as_json=json))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder of the results page.")] = Path("runs/demo"),
    only: Annotated[
        list[str] | None,
        choice_option(
            choices=_demo_names(), help="Run only these parts (repeatable, e.g. --only sfa).", default="all"
        ),
    ] = None,
) -> None:
    """Run every installed package's quick demo and write one results page (OUT/index.html)."""
    from lab_shared.demo import run_all

    failed = run_all(out, only)
    raise typer.Exit(1 if failed else 0)


@app.command()
def report(
    run: Annotated[list[str], typer.Argument(help="Run folders, or folders holding runs (e.g. runs/demo).")],
    out: Annotated[
        Path | None, typer.Option(help="The page to write (default: $LAB_RUNS/report/index.html).")
    ] = None,
    title: Annotated[str, typer.Option(help="The page's title.")] = "lab report",
) -> None:
    """A results page of run folders: headline verdicts, figures, tables, provenance and links per part."""
    from lab_shared.report_html import build_report, headline
    from lab_shared.rundir import runs_root

    outcome = build_report(run, out or runs_root() / "report" / "index.html", title=title)
    print(headline(outcome))
    raise typer.Exit(1 if outcome.problems else 0)


runs_app = typer.Typer(
    help="List, show and compare the run folders under $LAB_RUNS (default runs/).", no_args_is_help=True
)
app.add_typer(runs_app, name="runs")
RootOpt = Annotated[Path | None, typer.Option("--root", help="Runs folder (default: $LAB_RUNS or runs/).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_json(obj: object) -> None:
    from lab_shared.io import to_json

    print(to_json(obj))


@runs_app.command("ls")
def runs_ls(root: RootOpt = None, json: JsonOpt = False) -> None:
    """One line per run: command, name, status (finished | running | stopped), start time, key metrics."""
    from lab_shared import runs

    found = runs.list_runs(root)
    if json:
        _print_json([r.summary() for r in found])
    else:
        print(runs.format_ls(found, runs.runs_root(root)))


@runs_app.command("show")
def runs_show(
    run: Annotated[
        str, typer.Argument(help="Run folder, its path under the root, or its name (or a prefix).")
    ],
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """A run's config, provenance (times, git, argv, inputs) and results."""
    from lab_shared import runs

    r = runs.load_run(runs.resolve_run(run, root), runs.runs_root(root))
    if json:
        _print_json(runs.show_data(r))
    else:
        print(runs.format_show(r))


@runs_app.command("compare")
def runs_compare(
    run: Annotated[list[str], typer.Argument(help="Two or more runs (folder, path under the root or name).")],
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """The config keys that differ between runs and their scalar results, side by side."""
    from lab_shared import runs

    if len(run) < 2:
        raise LabError("compare needs at least two runs")
    base = runs.runs_root(root)
    found = [runs.load_run(runs.resolve_run(s, root), base) for s in run]
    if json:
        _print_json(runs.compare_data(found))
    else:
        print(runs.format_compare(found))


config_app = typer.Typer(
    help="Print or copy a command's stock config (TOML or JSON) to edit and pass to --config.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
CommandArg = Annotated[list[str], typer.Argument(help="The command, e.g. `sfa run` (see `lab config ls`).")]
FormatOpt = Annotated[
    str | None,
    choice_option(
        "--format", choices=("toml", "json"), help="Output format (default: toml; cp: FILE's suffix)."
    ),
]


@config_app.command("ls")
def config_ls(json: JsonOpt = False) -> None:
    """The commands that have a stock config, and the dataclass each builds."""
    from lab_shared.configs import registered

    eps = {k.replace(".", " "): ep.value for k, ep in sorted(registered().items())}
    if json:
        _print_json(eps)
    else:
        for k, v in eps.items():
            print(f"{k:<24} {v}")


@config_app.command("show")
def config_show(command: CommandArg, fmt: FormatOpt = None) -> None:
    """Print the stock config of COMMAND (all defaults), e.g. `lab config show sfa run`."""
    from lab_shared.configs import render

    print(render(command, fmt or "toml"), end="")


@config_app.command("cp")
def config_cp(
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="COMMAND... FILE", help="The command words, then FILE (e.g. `sfa run my.toml`)."
        ),
    ],
    fmt: FormatOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE.")] = False,
) -> None:
    """Write the stock config of a command to FILE (.toml or .json) to edit and pass with --config FILE."""
    from lab_shared.configs import copy_config

    if len(args) < 2:
        raise LabError("usage: lab config cp COMMAND... FILE")
    out = copy_config(args[:-1], Path(args[-1]), fmt, force)
    print(f"wrote {out}")


def _plug_in_packages() -> None:
    for ep in sorted(entry_points(group="lab.commands"), key=lambda e: e.name):
        try:
            sub = ep.load()
        except Exception as e:  # a broken package must not take the whole CLI down
            print(f"warning: could not load `lab {ep.name}` ({ep.value}): {e}", file=sys.stderr)
            continue
        app.add_typer(sub, name=ep.name)


_plug_in_packages()


def os_error_line(e: OSError) -> str:
    """`<strerror>: <path>` of an OSError (read-only folder, full disk, permissions, missing file)."""
    what = e.strerror or str(e) or type(e).__name__
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{what}: {' -> '.join(str(p) for p in paths)}" if paths else what


def run_cli(entry: Callable[[], object]) -> None:
    """Run `entry` as a command: LabError and OSError become one line on stderr and exit code 2; a job
    stopped by a signal (signals.Preempted) prints how to resume and exits 128 + the signal number;
    Ctrl-C outside a job exits 130 with one line."""
    from lab_shared.signals import Preempted

    try:
        entry()
    except Preempted as e:
        print(str(e), file=sys.stderr)
        sys.exit(e.exit_code)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as e:
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        sys.exit(2)


def _run_app() -> None:
    """Run the Typer app without click's standalone mode, so a usage error (bad type, unknown option,
    missing argument) is one line like every other error instead of a usage box. Click's exceptions are
    matched by shape: typer 0.2x vendors its own click, older typer uses click itself."""
    try:
        code = app(standalone_mode=False, prog_name="lab")
    except typer.Abort:
        raise KeyboardInterrupt from None
    except Exception as e:
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        if type(e).__name__ == "NoArgsIsHelpError":  # `lab sched` alone: its help, as before
            e.show()
            sys.exit(e.exit_code)
        ctx = getattr(e, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        raise LabError(" ".join(e.format_message().split()) + where) from None
    if isinstance(code, int) and code:
        sys.exit(code)


def main() -> None:
    """Entry point of `lab`."""
    run_cli(_run_app)


if __name__ == "__main__":
    main()
