"""Choice options and effective defaults (lab_shared.cli_utils): choices in --help, shell completion, a bad
value refused, the default a config would use shown for options declared `= None`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from lab_shared.cli_utils import choice_option, config_defaults


@dataclass
class _Trainer:
    lr: float = 0.003
    head: str = "shared"


@dataclass
class _Cfg:
    trainer: _Trainer = field(default_factory=_Trainer)
    steps: int = 120
    curves: bool = True
    levels: tuple[int, ...] = (1, 3, 5)


KEYS = {"lr": "trainer.lr", "head": "trainer.head", "steps": "steps", "curves": "curves", "levels": "levels"}
app = typer.Typer(rich_markup_mode=None)
seen: dict = {}


@app.command(cls=config_defaults(_Cfg, KEYS))
def run(
    method: Annotated[
        str | None, choice_option(choices=["seq", "sfa", "replay"], help="The method.", default="sfa")
    ] = None,
    head: Annotated[str | None, choice_option("--head", choices=("shared", "multi"), help="Heads.")] = None,
    policies: Annotated[
        str, choice_option(choices=["paper", "masked"], separator=",", help="Policies.")
    ] = "paper,masked",
    kind: Annotated[list[str] | None, choice_option(choices=["a", "b"], help="Repeatable.")] = None,
    device: Annotated[
        str | None, choice_option(choices=["cpu", "cuda"], strict=False, help="Device (or cuda:N).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps.")] = None,
    curves: Annotated[bool | None, typer.Option(help="Curves.")] = None,
    levels: Annotated[str | None, typer.Option(help="Levels.")] = None,
) -> None:
    seen.update(method=method, head=head, policies=policies, kind=kind, steps=steps, device=device)


@app.command()
def other() -> None:
    pass


runner = CliRunner()


def _help() -> str:
    out = runner.invoke(app, ["run", "--help"], terminal_width=200)
    assert out.exit_code == 0, out.output
    return " ".join(out.output.split())


def test_help_lists_choices_and_effective_defaults():
    text = _help()
    assert "--method <seq|sfa|replay> The method. [default: sfa]" in text
    assert "--head <shared|multi> Heads. [default: shared]" in text  # from the config
    assert "--policies <paper|masked>[,...] Policies. [default: paper,masked]" in text
    assert "--lr <float> Learning rate. [default: 0.003]" in text
    assert "--steps <int> Steps. [default: 120]" in text
    assert "--curves / --no-curves Curves. [default: curves]" in text
    assert "--levels <str> Levels. [default: 1,3,5]" in text
    assert _help() == text  # shown once, not appended again


def test_values_pass_as_plain_strings_and_bad_ones_are_refused():
    out = runner.invoke(
        app, ["run", "--method", "replay", "--policies", "masked", "--kind", "a", "--kind", "b"]
    )
    assert out.exit_code == 0, out.output
    assert seen["method"] == "replay" and type(seen["method"]) is str
    assert seen["kind"] == ["a", "b"] and seen["head"] is None and seen["steps"] is None
    out = runner.invoke(app, ["run", "--device", "cuda:1"])  # not strict: the command checks the value
    assert out.exit_code == 0 and seen["device"] == "cuda:1", out.output
    for args, bad in [
        (["--method", "sfx"], "'sfx' is not one of seq, sfa, replay"),
        (["--policies", "paper,maskd"], "'maskd' is not one of paper, masked"),
        (["--kind", "a", "--kind", "c"], "'c' is not one of a, b"),
    ]:
        out = runner.invoke(app, ["run", *args])
        assert out.exit_code == 2 and bad in out.output, out.output


@pytest.mark.parametrize(
    ("option", "incomplete", "want"),
    [
        ("method", "s", ["seq", "sfa"]),
        ("method", "", ["seq", "sfa", "replay"]),
        ("method", "x", []),
        ("policies", "paper,m", ["paper,masked"]),
        ("head", "mu", ["multi"]),
    ],
)
def test_shell_completion_offers_the_choices(option, incomplete, want):
    command = get_command(app).commands["run"]
    param = next(p for p in command.params if p.name == option)
    ctx = command.make_context("run", [], resilient_parsing=True)
    assert [item.value for item in param.shell_complete(ctx, incomplete)] == want


def test_no_choices_installed_refuses_every_value():
    empty = typer.Typer(rich_markup_mode=None)

    @empty.command()
    def only(part: Annotated[str | None, choice_option(choices=[], help="Parts.")] = None) -> None:
        pass

    out = runner.invoke(empty, ["--part", "sfa"])
    assert out.exit_code == 2 and "'sfa' is not one of (none)" in out.output
    assert "<none>" in runner.invoke(empty, ["--help"]).output


def test_echo_json_prints_one_object(capsys):
    import json
    from pathlib import Path

    import numpy as np

    from lab_shared.cli_utils import echo_json

    echo_json({"run": Path("runs/x"), "reads": np.int64(7), "ratio": np.float32(0.5), "rows": [{"a": 1}]})
    assert json.loads(capsys.readouterr().out) == {
        "run": "runs/x",
        "reads": 7,
        "ratio": 0.5,
        "rows": [{"a": 1}],
    }


def test_shown_defaults_names_a_default_that_is_not_a_config_field():
    from lab_shared.cli_utils import shown_defaults

    small = typer.Typer(rich_markup_mode=None)  # as lab: rich markup would read [default: ...] as a tag

    @small.command(cls=shown_defaults({"pages": "the workload's"}))
    def sim(pages: Annotated[int | None, typer.Option(help="Pool size.")] = None) -> None:
        pass

    out = runner.invoke(small, ["--help"], terminal_width=200)
    assert "Pool size. [default: the workload's]" in " ".join(out.output.split())
