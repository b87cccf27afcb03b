"""Run the real `lab` CLI on one bad input and check how it failed (used by test_fuzz_cli.py).

`run_lab` calls `lab_shared.cli.main` in this process with sys.argv patched: the same code path as the
`lab` console script (main() is where LabError becomes `error: ...` and exit code 2), without the ~0.6 s
start of a new interpreter per case. stdout, stderr and the logging handlers (bound to the stderr of the
time they were made) are captured; an exception escaping main() is what a real process would print as a
traceback, so it is recorded as one. SIGALRM bounds every case (a hang is a failure, not a stuck suite).
`run_lab_subprocess` runs the installed console script for the cases that need a real process.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = Path(sys.executable).parent / "lab"


class CaseTimeout(BaseException):
    """Raised by SIGALRM inside a case: the command ran past its limit (BaseException: not caught by
    the `except Exception` blocks of the code under test)."""


@dataclass
class Outcome:
    code: int | str  # exit status; "timeout" when the case ran past its limit
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    return [
        h
        for lg in loggers
        for h in lg.handlers
        if type(h) is logging.StreamHandler  # not FileHandler & co.
    ]


def run_lab(argv: list[str], timeout: int = 60) -> Outcome:
    """`lab ARGV` in this process (cwd and environment as the caller set them)."""
    from lab_shared.cli import main

    out, err = io.StringIO(), io.StringIO()
    handlers = _stream_handlers()
    old_streams = [h.stream for h in handlers]
    old_argv = sys.argv

    def _alarm(signum, frame):
        raise CaseTimeout()

    old_alarm = signal.signal(signal.SIGALRM, _alarm)
    code: int | str = 0
    try:
        for h in handlers:  # not setStream: it flushes the old stream, which may be a closed capture
            h.stream = err
        sys.argv = ["lab", *argv]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            signal.alarm(timeout)
            try:
                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except CaseTimeout:
                code = "timeout"
            except BaseException:  # what the interpreter would print and exit 1 with
                err.write(traceback.format_exc())
                code = 1
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old_alarm)
        sys.argv = old_argv
        for h, s in zip(handlers, old_streams):
            h.stream = s
        # handlers made during the case point at our buffer: send them back to the real stderr
        for h in _stream_handlers():
            if h.stream is err:
                h.stream = sys.stderr
    return Outcome(code, out.getvalue(), err.getvalue())


def run_lab_subprocess(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 60, user: str | None = None
) -> Outcome:
    """`lab ARGV` as a real process (optionally as another local user through runuser)."""
    cmd = [str(LAB), *argv]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", "env", *[f"{k}={v}" for k, v in env.items()], *cmd]
    try:
        p = subprocess.run(
            cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        return Outcome("timeout", str(e.stdout or ""), str(e.stderr or ""))
    return Outcome(p.returncode, p.stdout, p.stderr)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every regular file under root, by relative path."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def leftovers(root: Path) -> list[str]:
    """Temp files or folders of atomic writes left under root (`.name.XXXX.tmp`, `.tmp-*`, `*.tmp`)."""
    bad = []
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            if ".tmp" in name or name.startswith("tmp-"):
                bad.append(str((Path(dirpath) / name).relative_to(root)))
    return bad


def check_failure(o: Outcome, usage: bool = False, match: str | None = None) -> None:
    """Exit 2 and one `error: ...` line, never a traceback; a malformed command line (`usage`) also points
    at the command's --help."""
    assert o.code != "timeout", f"hung (ran past its limit); stderr so far:\n{o.err[-2000:]}"
    assert "Traceback" not in o.err and "Traceback" not in o.out, o.err[-4000:]
    assert o.code == 2, f"exit {o.code}, expected 2\nstdout: {o.out[-1000:]}\nstderr: {o.err[-2000:]}"
    lines = o.err_lines
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{o.err[-3000:]}"
    assert lines[0].startswith("error: "), lines[0]
    if usage:
        assert "--help" in lines[0], lines[0]
    if match is not None:
        assert match.lower() in lines[0].lower(), f"{match!r} not in {lines[0]!r}"
