"""Shared fixtures: run the real `lab` entry point in this process (fast) or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest


@pytest.fixture
def lab_inproc(capsys, monkeypatch):
    """Call `lab ARGS` through lab_shared.cli.main (LabError -> one line, exit 2); returns code/stdout/stderr."""
    from lab_shared.cli import main

    def run(*args: str) -> SimpleNamespace:
        monkeypatch.setattr(sys, "argv", ["lab", *args])
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return run


@pytest.fixture
def lab_subprocess():
    """Run `lab ARGS` in a fresh interpreter (extra environment variables via env=)."""

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lab_shared.cli", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )

    return run
