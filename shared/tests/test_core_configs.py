"""`lab config ls | show | cp`: every installed command's stock config, written as TOML or JSON, loads back
through the same `--config` path (load_config) to exactly the defaults; bad input is one line."""

import json
import subprocess
import sys
import tomllib

import pytest
from typer.testing import CliRunner

from lab_shared import configs
from lab_shared.cli import app
from lab_shared.config import config_to_dict, load_config

runner = CliRunner()
COMMANDS = sorted(configs.registered())


def test_packages_declare_their_configs():
    for key in ("sfa.run", "chess.train", "chess.transcend", "sched.train", "sched.bench"):
        assert key in COMMANDS


@pytest.mark.parametrize("key", COMMANDS)
def test_stock_config_round_trips(tmp_path, key):
    cls = configs.config_class(key)
    for name in ("stock.toml", "stock.json"):
        words = key.split(".")
        out = runner.invoke(app, ["config", "cp", *words, str(tmp_path / name)])
        assert out.exit_code == 0, out.output
        assert load_config(cls, tmp_path / name) == cls()


def test_show_prints_toml_and_json():
    out = runner.invoke(app, ["config", "show", "sfa", "run"])
    assert out.exit_code == 0, out.output
    data = tomllib.loads(out.output)
    assert data["method"]["name"] == "sfa" and "trainer" in data
    js = runner.invoke(app, ["config", "show", "sfa.run", "--format", "json"])
    assert json.loads(js.output) == configs.stock_config("sfa run")
    ls = runner.invoke(app, ["config", "ls", "--json"])
    assert "sfa run" in json.loads(ls.output)


def test_toml_writer_leaves_none_out_and_quotes():
    text = configs.to_toml({"a": None, "b": 'x "y"', "c": [1, 2.5], "t": {"u": {"v": True}}, "e": {}})
    assert tomllib.loads(text) == {"b": 'x "y"', "c": [1, 2.5], "t": {"u": {"v": True}}, "e": {}}


def _lab(*argv):
    code = "import sys; from lab_shared.cli import main; sys.argv = ['lab', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)


def _lab_here(capsys, monkeypatch, *argv):
    """`lab ARGV` through the same entry point (lab_shared.cli.main) in this process: (exit code, stderr)."""
    from lab_shared.cli import main

    monkeypatch.setattr(sys, "argv", ["lab", *argv])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, capsys.readouterr().err


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    target = tmp_path / "x.toml"
    proc = _lab("config", "show", "sfa", "nope")  # once as a real process: its exit code and stderr
    assert proc.returncode == 2 and proc.stderr.startswith("error: no stock config for `lab sfa nope`")
    assert len(proc.stderr.strip().splitlines()) == 1
    for argv in (["show", "sfa", "nope"], ["cp", "nope", str(target)], ["cp", str(target)]):
        code, err = _lab_here(capsys, monkeypatch, "config", *argv)
        assert code == 2, (argv, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not target.exists()
    target.write_text("mine")
    code, err = _lab_here(capsys, monkeypatch, "config", "cp", "sfa", "run", str(target))
    assert code == 2 and "exists" in err
    assert target.read_text() == "mine"  # not overwritten without --force
    assert _lab_here(capsys, monkeypatch, "config", "cp", "sfa", "run", str(target), "--force")[0] == 0
    assert "[method]" in target.read_text()


def test_unset_fields_show_the_default_they_stand_for():
    import dataclasses

    @dataclasses.dataclass
    class Inner:
        beta: float | None = dataclasses.field(
            default=None, metadata={"shown_default": 0.5, "note": "of sfa"}
        )
        mode: str | None = dataclasses.field(default=None, metadata={"shown_default": "online"})
        other: int | None = None

    @dataclasses.dataclass
    class Outer:
        seed: int = 0
        inner: Inner = dataclasses.field(default_factory=Inner)

    notes = configs.unset_notes(Outer())
    assert notes == {"inner.beta": (0.5, "of sfa"), "inner.mode": ("online", "")}
    text = configs.to_toml(config_to_dict(Outer()), notes=notes)
    assert text.splitlines()[2:] == [
        "[inner]",
        "# beta = 0.5  # of sfa",
        '# mode = "online"',
        "# other = (unset)",
    ]
    assert tomllib.loads(text) == {"seed": 0, "inner": {}}  # comments only: the defaults
    assert tomllib.loads(text.replace("# beta", "beta")) == {"seed": 0, "inner": {"beta": 0.5}}
