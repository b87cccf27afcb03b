"""Options that take one of a fixed set: their choices are the registry's (or the validating module's), shown in
`--help`, completed by the real `lab` program's shell completion; defaults are shown, the effective one for
options declared `= None`; every command's help renders."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from lab_shared.cli import app

LAB = Path(sys.executable).parent / "lab"
runner = CliRunner()


def _families():
    from lab_learnsched.families import FAMILIES

    return tuple(FAMILIES)


def _methods():
    from lab_sfa.methods.registry import method_names

    return tuple(method_names())


def _const(module: str, name: str):
    def get():
        import importlib

        return tuple(getattr(importlib.import_module(module), name))

    return get


def _fixed(*values: str):
    return lambda: values


# (command path, option) -> where its choices come from
CHOICES = {
    ("config", "show", "--format"): _fixed("toml", "json"),
    ("demo", "--only"): lambda: tuple(sorted(e.name for e in entry_points(group="lab.demos"))),
    ("sfa", "run", "--method"): _methods,
    ("sfa", "run", "--head"): _fixed("auto", "shared", "multi"),
    ("sfa", "sweep", "--only"): _methods,
    ("sfa", "sweep", "--backend"): _const("lab_shared.backend", "BACKENDS"),
    ("chess", "train", "--model"): _fixed("transcript", "position"),
    ("chess", "train", "--preset"): _const("lab_transcendence.model", "PRESETS"),
    ("chess", "train", "--device"): _fixed("auto", "cpu", "cuda", "mps"),
    ("chess", "data", "synth", "--preset"): _const("lab_transcendence.presets", "PRESETS"),
    ("chess", "data", "synth", "--tokenizer"): _fixed("char", "move"),
    ("chess", "data", "lichess", "--tokenizer"): _fixed("char", "move"),
    ("chess", "data", "lichess", "--time-control"): _const("lab_transcendence.lichess", "TIME_CONTROLS"),
    ("chess", "eval", "--policy"): _const("lab_transcendence.player", "POLICIES"),
    ("chess", "eval", "--protocol"): _const("lab_transcendence.player", "PROTOCOLS"),
    ("chess", "eval", "--rating-method"): _fixed("period", "sequential"),
    ("chess", "eval", "--backend"): _const("lab_shared.backend", "BACKENDS"),
    ("chess", "eval", "--serve"): _const("lab_transcendence.arena_tasks", "SERVE"),
    ("chess", "transcend", "--design"): _fixed("anchors", "pool"),
    ("chess", "transcend", "--policies"): _const("lab_transcendence.player", "POLICIES"),
    ("chess", "uci", "--policy"): _const("lab_transcendence.player", "POLICIES"),
    ("sched", "train", "--agent"): _fixed("ppo", "dqn", "setnet"),
    ("sched", "bench", "--backend"): _fixed("sim", "postgres", "ray"),
    ("sched", "simulate", "--replacement"): _const("lab_learnsched.bufferpool", "ONLINE_POLICIES"),
    ("sched", "workload", "--family"): _families,
    ("sched", "bench-families", "--families"): _families,
    ("sched", "pg", "load", "--dataset"): _fixed("tpch-like", "tpch"),
    ("sched", "pg", "bench", "--access"): _const("lab_learnsched.pg.bench", "ACCESS"),
}


def _command(path):
    cmd = get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def _option(path):
    *cmd_path, opt = path
    cmd = _command(cmd_path)
    return cmd, next(p for p in cmd.params if opt in p.opts)


def _leaves(cmd, path=()):
    subs = getattr(cmd, "commands", None)
    if not subs:
        yield path
        return
    for name, sub in subs.items():
        yield from _leaves(sub, (*path, name))


@pytest.mark.parametrize("path", sorted(CHOICES), ids=" ".join)
def test_choices_are_the_registry_s_and_complete(path):
    want = CHOICES[path]()
    cmd, param = _option(path)
    ctx = cmd.make_context(path[-2], [], resilient_parsing=True)
    assert tuple(c.value for c in param.shell_complete(ctx, "")) == want
    assert param.metavar.startswith("<" + "|".join(want) + ">")


def test_every_help_renders_with_choices_and_defaults():
    for path in _leaves(get_command(app)):
        out = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert out.exit_code == 0, (path, out.output)
    text = " ".join(runner.invoke(app, ["sfa", "run", "--help"], terminal_width=200).output.split())
    assert "--method <" + "|".join(_methods()) + "> " in text
    for shown in ("[default: sfa]", "[default: auto]", "[default: cnn]", "[default: default]"):
        assert shown in text, shown
    text = " ".join(runner.invoke(app, ["sched", "train", "--help"], terminal_width=200).output.split())
    assert (
        "--agent <ppo|dqn|setnet> Masked PPO, double DQN, or the shape-free agent on families. [default: ppo]"
        in text
    )
    text = " ".join(runner.invoke(app, ["chess", "transcend", "--help"], terminal_width=200).output.split())
    assert (
        "--design <anchors|pool>" in text
        and "[default: anchors]" in text
        and "[default: paper,masked]" in text
    )


@pytest.mark.parametrize(
    ("words", "want"),
    [
        ("lab sfa run --method s", ["seq", "sfa"]),
        ("lab sched train --agent ", ["ppo", "dqn", "setnet"]),
        ("lab chess transcend --policies paper,m", ["paper,masked"]),
    ],
)
def test_the_lab_program_completes_choices(words, want):
    env = {**os.environ, "_LAB_COMPLETE": "complete_bash", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split(" ")) - 1)
    proc = subprocess.run([str(LAB)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == want, proc.stdout + proc.stderr


def test_a_bad_choice_is_one_line():
    proc = subprocess.run(
        [str(LAB), "sched", "simulate", "--replacement", "fifo"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "'fifo' is not one of lru, clock" in proc.stderr


def test_device_lists_the_usual_values_but_takes_cuda_n():
    _, param = _option(("chess", "train", "--device"))
    assert param.callback is None  # checked by the command (lab_shared.device), so cuda:1 passes the parser


def test_bench_json_is_one_object(tmp_path):
    import json

    argv = ["sched", "bench", "-w", "small", "--seeds", "1", "--policies", "fifo,greedy", "--json"]
    sets = ["buffer_sweep=100", "queue_sweep=2", "sweep_seeds=1", "exact_batches=0"]
    env = {**os.environ, "LAB_RUNS": str(tmp_path)}
    proc = subprocess.run(
        [str(LAB), *argv, *[a for s in sets for a in ("--set", s)]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert Path(out["run"]).parent == tmp_path / "sched-bench"
    assert {r["policy"] for r in out["results"]["main"]} >= {"fifo", "greedy"}


def test_building_every_command_imports_nothing_heavy():
    """`lab --help` builds the whole command tree (every option's choices and help): no torch, numpy or
    python-chess for that; the effective defaults that need them are read only when a command's help is shown."""
    code = (
        "import sys; from typer.main import get_command; from lab_shared.cli import app; get_command(app); "
        "print(sorted(m for m in ('torch', 'numpy', 'chess', 'numba', 'psycopg') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
