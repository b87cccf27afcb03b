"""Child processes that die with their parent: no orphan pool workers or Stockfish after `kill -9`.

Linux delivers a chosen signal to a process when its parent dies if the child asked for it with
prctl(PR_SET_PDEATHSIG). Pool workers ask in their initializer (`die_with_parent`) and also start a watchdog
thread that exits when os.getppid() changes (the parent died before the prctl, or a platform without prctl);
engine subprocesses ask between fork and exec (`preexec_die_with_parent`, passed as preexec_fn).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
_prctl = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
        _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _prctl.restype = ctypes.c_int
    except (OSError, AttributeError):  # no usable libc: the watchdog alone
        _prctl = None


def set_pdeathsig(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux); False where unsupported."""
    if _prctl is None:
        return False
    return _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def preexec_die_with_parent() -> None:
    """preexec_fn for subprocesses (runs in the child between fork and exec): die with the parent."""
    set_pdeathsig(signal.SIGKILL)


def die_with_parent(parent: int | None = None, poll_s: float = 0.5) -> None:
    """Call first in a pool worker: SIGKILL when the parent dies, plus a watchdog thread on os.getppid().

    `parent` is the pid the parent passed down (os.getpid() before the pool starts); without it the parent
    at the time of the call is watched."""
    parent = os.getppid() if parent is None else parent
    # A forked worker inherits the parent's Python signal handlers (Ray's driver, the trainer's stop flag):
    # it must die on the pool's SIGTERM (or the pool's join waits forever) and leave Ctrl-C to the parent.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            threading.Event().wait(poll_s)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
