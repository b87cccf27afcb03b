"""The `lab` command's help and completion: completion is installable and completes sub-commands; help is
plain text, so literal brackets such as `[[grid]]` survive (rich markup used to eat them)."""

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from lab_shared.cli import app

runner = CliRunner()
LAB = Path(sys.executable).parent / "lab"


def test_completion_is_offered_and_completes():
    out = runner.invoke(app, ["--help"])
    assert "--install-completion" in out.output
    env = {**os.environ, "_LAB_COMPLETE": "complete_bash", "COMP_WORDS": "lab runs ", "COMP_CWORD": "2"}
    proc = subprocess.run([str(LAB)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["ls", "show", "compare"], proc.stdout + proc.stderr
    env.update(COMP_WORDS="lab sf", COMP_CWORD="1")
    proc = subprocess.run([str(LAB)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["sfa"]


def test_help_keeps_brackets():
    out = runner.invoke(app, ["sfa", "sweep", "--help"])
    assert out.exit_code == 0, out.output
    assert "[[grid]]" in out.output
    assert "[default: sweep]" in out.output
