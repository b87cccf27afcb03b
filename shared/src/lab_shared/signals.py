"""Preemption: SIGINT, SIGTERM and SIGUSR1 ask a long job to stop at its next safe point.

While `catch_stop_signals()` is active, these signals only set a flag; the job polls `stop_requested()` at
each step boundary, writes an exact checkpoint and raises `Preempted`, which the `lab` CLI turns into one
line (with the resume command) and exit code 128 + signal number: 130 (SIGINT), 143 (SIGTERM), 138
(SIGUSR1) -- the codes a shell reports for a process killed by that signal, so schedulers (Slurm, Kubernetes)
see a signal death, not a failure. A second SIGINT aborts at once (KeyboardInterrupt, nothing more saved).

Use in any loop (the trainer does this for the duration of `fit`):

    with signals.catch_stop_signals():
        for step in ...:
            if signals.stop_requested():
                save_checkpoint(...)
                raise signals.Preempted(step, checkpoint, run_dir)
            ...
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from lab_shared.errors import LabError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
_received: int | None = None
_owner = 0  # pid that installed the handlers; forked children (DataLoader workers) inherit them and ignore


def stop_requested() -> bool:
    """True once a stop signal arrived (it stays set until `clear()`)."""
    return _received is not None


def received() -> int | None:
    """The number of the first stop signal received, or None."""
    return _received


def clear() -> None:
    """Forget a received stop signal (e.g. between independent jobs in one process)."""
    global _received
    _received = None


def exit_code(signum: int | None) -> int:
    """128 + the signal number (130 for SIGINT, 143 for SIGTERM, 138 for SIGUSR1)."""
    return 128 + int(signum if signum is not None else signal.SIGINT)


def _handler(signum: int, frame: object) -> None:
    global _received
    if os.getpid() != _owner:  # a forked worker: its parent decides when to stop, and stops it
        return
    if _received is not None and signum == signal.SIGINT:
        raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait
    if _received is None:
        _received = signum
        name = signal.Signals(signum).name
        # os.write: safe inside a signal handler (print could re-enter a buffered stream)
        os.write(2, f"\n{name} received: stopping at the next step boundary\n".encode())


@contextlib.contextmanager
def catch_stop_signals() -> Iterator[None]:
    """Route the stop signals to the flag while inside; the previous handlers are restored after.

    Outside the main thread (where Python cannot set handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _owner
    _owner = os.getpid()
    previous = {s: signal.signal(s, _handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def resume_command(run_path: str | Path, argv: list[str] | None = None) -> str:
    """The command line that continues this run: this process's arguments with `--resume RUN`."""
    args = list(sys.argv[1:] if argv is None else argv)
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--resume":
            skip = True
            continue
        if a.startswith("--resume="):
            continue
        out.append(a)
    return shlex.join(["lab", *out, "--resume", str(Path(run_path).absolute())])


class Preempted(LabError):
    """A job stopped on a signal at a step boundary; `exit_code` is 128 + the signal number."""

    def __init__(
        self,
        step: int,
        checkpoint: str | Path | None,
        run_path: str | Path | None,
        signum: int | None = None,
        resume: str | None = None,
    ):
        self.signum = signum if signum is not None else received()
        self.exit_code = exit_code(self.signum)
        self.step, self.checkpoint = step, checkpoint
        name = signal.Signals(self.signum).name if self.signum else "a signal"
        if checkpoint is None or run_path is None:
            msg = f"stopped by {name} at step {step}; no run folder, nothing saved"
        else:
            msg = (
                f"stopped by {name} at step {step}; checkpoint {checkpoint}; resume with: "
                f"{resume or resume_command(run_path)}"
            )
        super().__init__(msg)
