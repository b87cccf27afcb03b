"""atomic_dir / publish_dir: a crash between any two steps of a folder swap leaves the old or the new one."""

import os
import shutil

import pytest

from lab_shared import io
from lab_shared.io import atomic_dir, atomic_write_json, clean_temp_files, publish_dir, read_json, recover_dir


class Crash(BaseException):
    """A kill at this point: nothing after it runs, not even `finally` cleanup of the caller."""


def _fill(folder, version):
    atomic_write_json(folder / "state.json", {"v": version})
    (folder / f"only-in-{version}").write_text(version)


def _version(folder):
    """Which whole folder is there: 'old', 'new', or None; a mix fails."""
    if not folder.is_dir():
        return None
    v = read_json(folder / "state.json")["v"]
    assert sorted(p.name for p in folder.iterdir()) == [f"only-in-{v}", "state.json"]
    return v


def _crash_at(monkeypatch, n):
    """Make the n-th call of a step publish_dir takes (fsync, rename, swap, remove) raise Crash."""
    calls = [0]

    def wrap(fn):
        def step(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                raise Crash
            return fn(*args, **kwargs)

        return step

    monkeypatch.setattr(io, "fsync_dir", wrap(io.fsync_dir))
    monkeypatch.setattr(io, "exchange_paths", wrap(io.exchange_paths))
    monkeypatch.setattr(io.os, "replace", wrap(os.replace))
    monkeypatch.setattr(io.shutil, "rmtree", wrap(shutil.rmtree))
    return calls


@pytest.mark.parametrize("swap", [True, False], ids=["rename-exchange", "two-renames"])
def test_crash_between_steps_leaves_old_or_new(tmp_path, monkeypatch, swap):
    if swap and not io.exchange_paths(tmp_path, tmp_path):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here")
    seen = set()
    for n in range(1, 20):
        root = tmp_path / str(n)
        final = root / "state"
        final.mkdir(parents=True)
        _fill(final, "old")
        tmp = io.temp_dir(root)
        _fill(tmp, "new")
        with monkeypatch.context() as m:
            if not swap:  # a filesystem without RENAME_EXCHANGE
                m.setattr(io, "exchange_paths", lambda a, b: False)
            calls = _crash_at(m, n)
            try:
                publish_dir(tmp, final)
                finished = True
            except Crash:
                finished = False
        # right after the crash, a whole folder is at `final` or parked beside it
        now = _version(final) or _version(io.aside_path(final))
        assert now in ("old", "new")
        # reopening the run folder (clean_temp_files under its lock) restores `final` and leaves nothing else
        clean_temp_files(root)
        assert _version(final) == now and [p.name for p in root.iterdir()] == ["state"]
        seen.add(now)
        if finished:
            assert now == "new" and calls[0] < n
            break
    assert seen == {"old", "new"}  # both outcomes were reached: the crash points covered every step


def test_recover_dir_after_each_fallback_crash(tmp_path):
    final = tmp_path / "after-task-001"
    aside = io.aside_path(final)
    aside.mkdir()
    _fill(aside, "old")  # crashed after renaming the old folder aside
    assert recover_dir(final) == final and _version(final) == "old" and not aside.exists()
    aside.mkdir()
    _fill(aside, "old")  # crashed after renaming the new one in
    shutil.rmtree(final)
    final.mkdir()
    _fill(final, "new")
    recover_dir(final)
    assert _version(final) == "new" and not aside.exists()
    # the next publish finishes an earlier cut-short one before it starts
    aside.mkdir()
    _fill(aside, "old")
    shutil.rmtree(final)
    with atomic_dir(final) as tmp:
        _fill(tmp, "new")
    assert _version(final) == "new" and sorted(p.name for p in tmp_path.iterdir()) == [final.name]


def test_atomic_dir_error_keeps_old_and_new_dir_mode(tmp_path):
    final = tmp_path / "ckpt"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        _fill(tmp, "new")
        raise RuntimeError("bad input while filling")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        _fill(tmp, "old")
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        _fill(tmp, "new")
        raise RuntimeError("bad input while filling")
    assert _version(final) == "old" and [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert final.stat().st_mode & 0o777 == io.dir_mode()  # not mkdtemp's 0700
