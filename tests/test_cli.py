"""The `lab` CLI: packages plug in, start-up stays light, bad input is one line and a non-zero exit."""

import subprocess
import sys

from typer.testing import CliRunner

from lab_shared.cli import app

runner = CliRunner()


def test_help_lists_every_package():
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for name in ("sfa", "chess", "sched", "doctor", "demo"):
        assert name in out.output


def test_unknown_command_fails():
    out = runner.invoke(app, ["nope"])
    assert out.exit_code != 0


def test_startup_does_not_import_torch():
    code = "import sys, lab_shared.cli; assert 'torch' not in sys.modules, 'torch imported at start-up'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_doctor_reports_components():
    out = runner.invoke(app, ["doctor"])
    assert out.exit_code == 0, out.output
    for name in ("python", "torch", "stockfish", "postgresql"):
        assert name in out.output


def test_lab_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[broken")
    code = (
        "import sys; from lab_shared.cli import main, app\n"
        "from lab_shared.config import load_config\n"
        "from dataclasses import dataclass\n"
        "@dataclass\nclass C:\n    x: int = 1\n"
        "@app.command('try-config')\ndef t(path: str):\n    load_config(C, path)\n"
        "sys.argv = ['lab', 'try-config', sys.argv[1]]\nmain()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().startswith("error: malformed config file")
        and len(proc.stderr.strip().splitlines()) == 1
    )
