"""`kill -9` of `lab chess data synth` leaves no pool worker and no Stockfish behind, and the resume is exact.

Pool workers ask the kernel for SIGKILL when their parent dies (prctl PR_SET_PDEATHSIG) and watch
os.getppid(); Stockfish processes ask the same of their worker. The test tracks the whole process tree
through /proc before the kill, kills only the parent, and checks every tracked process is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LAB = Path(sys.executable).parent / "lab"
ARGS = ["chess", "data", "synth", "--players", "2", "--games", "400", "--seed", "5", "--depth", "1",
        "--rating-games", "0", "--max-plies", "12", "-j", "2", "--stockfish", "/usr/games/stockfish"]  # fmt: skip

pytestmark = [
    pytest.mark.stockfish,
    pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc"),
]


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids |= {int(x) for x in (task / "children").read_text().split()}
        except OSError:
            pass
    return kids


def _tree(pid: int) -> dict[int, tuple[str, str]]:
    """Every descendant of pid: pid -> (command name, start time) (the start time guards against reuse)."""
    out: dict[int, tuple[str, str]] = {}
    todo = list(_children(pid))
    while todo:
        p = todo.pop()
        ident = _ident(p)
        if ident is None or p in out:
            continue
        out[p] = ident
        todo.extend(_children(p))
    return out


def _ident(pid: int) -> tuple[str, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return comm, fields[19]  # field 22 of stat: start time


def _alive(pid: int, ident: tuple[str, str]) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat[stat.rindex(")") + 2 :].split()[0]
    now = _ident(pid)  # the same process: same start time (its name may change with an exec)
    return now is not None and now[1] == ident[1] and state not in ("Z", "X")  # a zombie is only unreaped


def test_kill_9_leaves_no_orphans_and_resume_is_exact(tmp_path):
    env = {**os.environ, "LAB_PROGRESS": "0"}
    out = tmp_path / "run"
    proc = subprocess.Popen([str(LAB), *ARGS, "--out", str(out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    tracked: dict[int, tuple[str, str]] = {}
    try:
        deadline = time.monotonic() + 180
        while not (out / "chunks" / "games-00000.pgn").is_file():  # games are being written
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no chunk of games written in time"
            time.sleep(0.05)
        tracked = _tree(proc.pid)
        names = [name for name, _ in tracked.values()]
        assert names.count("stockfish") >= 2 and len(tracked) >= 4, tracked  # 2 workers + their engines
        os.kill(proc.pid, signal.SIGKILL)  # the parent only
        proc.wait(timeout=10)
        gone_by = time.monotonic() + 10
        while any(_alive(p, i) for p, i in tracked.items()) and time.monotonic() < gone_by:
            time.sleep(0.05)
        survivors = {p: i for p, i in tracked.items() if _alive(p, i)}
        assert not survivors, f"orphans after kill -9 of the parent: {survivors}"
    finally:
        for p, ident in tracked.items():  # never leak what this test started, whatever failed above
            if _alive(p, ident):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (out / "meta.json").exists()
    resumed = subprocess.run([str(LAB), *ARGS, "--out", str(out)], env=env, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    ref = subprocess.run([str(LAB), *ARGS, "--out", str(tmp_path / "ref")], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert ref.returncode == 0, ref.stderr
    assert (out / "games.pgn").read_bytes() == (tmp_path / "ref" / "games.pgn").read_bytes()
    assert (out / "games.pgn").read_text().count("[Event ") == 400


def test_arena_engine_dies_with_its_process(tmp_path):
    """The supervised Engine of eval/transcend (engines.py) starts Stockfish so that it dies with its parent.

    Stockfish itself quits when its stdin closes, so the engine here is a wrapper that outlives that (it
    sleeps after Stockfish returns): only the death signal can end it in time."""
    wrapper = tmp_path / "engine"
    wrapper.write_text("#!/bin/sh\n/usr/games/stockfish\nexec sleep 60\n")
    wrapper.chmod(0o755)
    code = (
        "import chess, sys\n"
        "from lab_transcendence.engines import Engine, EngineSettings\n"
        f"e = Engine({str(wrapper)!r})\n"
        "e.play(chess.Board(), EngineSettings(depth=1))\n"
        "print(e.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    engine_pid, ident = None, None
    try:
        engine_pid = int(proc.stdout.readline())
        ident = _ident(engine_pid)
        assert ident is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        gone_by = time.monotonic() + 10
        while _alive(engine_pid, ident) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert not _alive(engine_pid, ident), "the engine outlived its parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if engine_pid is not None and ident is not None and _alive(engine_pid, ident):
            os.kill(engine_pid, signal.SIGKILL)


def test_kill_9_of_lichess_ingest_leaves_no_pool_workers(tmp_path):
    from lab_transcendence.lichess import lichess_style_game

    sans = ["e4", "e5", "Nf3", "Nc6", "Bb5", "a6", "Ba4", "Nf6", "O-O", "Be7", "Re1", "b5", "Bb3", "d6"]
    src = tmp_path / "big.pgn"
    with open(src, "w") as fh:
        for i in range(60_000):
            fh.write(lichess_style_game(sans, "1-0", i, 1200, 1300))
    out = tmp_path / "out"
    proc = subprocess.Popen([str(LAB), "chess", "data", "lichess", str(src), "--out", str(out), "-j", "2",
                             "--block-mb", "1"], env={**os.environ, "LAB_PROGRESS": "0"}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    tracked: dict[int, tuple[str, str]] = {}
    try:
        deadline = time.monotonic() + 120
        while not (out / "progress.json").is_file():  # shards are being written
            assert proc.poll() is None and time.monotonic() < deadline, (
                "the ingest ended before it was killed"
            )
            time.sleep(0.02)
        tracked = _tree(proc.pid)
        assert len(tracked) >= 2, tracked  # the pool's workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        gone_by = time.monotonic() + 10
        while any(_alive(p, i) for p, i in tracked.items()) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert not [p for p, i in tracked.items() if _alive(p, i)], "ingest workers outlived the parent"
    finally:
        for p, ident in tracked.items():
            if _alive(p, ident):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (out / "meta.json").exists()
