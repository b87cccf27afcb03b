"""Atomic file writes (temp file + fsync + rename), atomic folder swaps, and safe readers.

A reader of any file written here sees either the old complete file or the new complete one, never a
partial write, even if the process is killed mid-way. Folders (`atomic_dir`, `publish_dir`) get the same
promise on Linux; elsewhere a crash may leave the old folder parked aside, which `recover_dir` (and
`clean_temp_files`, run when a run folder is reopened) puts back.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab_shared.errors import LabError


def current_umask() -> int:
    """The process umask, read without changing it (/proc/self/status), else via a quick set-and-restore."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """Mode of a new file under the current umask (0644 under umask 022)."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """Mode of a new folder under the current umask (0755 under umask 022)."""
    return 0o777 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` on success, delete it on error.

    The temp file (mkstemp makes it 0600) gets the umask's mode before the rename, like any new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or ".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def temp_dir(parent: str | Path, prefix: str = ".tmp-") -> Path:
    """A new hidden temp folder in `parent` with the umask's mode (mkdtemp alone makes it 0700), to fill and
    rename into place; `clean_temp_files` removes leftovers of killed writers."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, dir_mode())
    return tmp


def fsync_dir(path: str | Path) -> None:
    """Make a folder's entries (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the OS or
    the filesystem cannot, so the caller falls back to two renames."""
    fn = _renameat2()
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


_ASIDE = ".lab-old."  # where publish_dir's fallback parks the old folder for a moment


def aside_path(final: Path) -> Path:
    return final.with_name(_ASIDE + final.name)


def recover_dir(final: str | Path) -> Path:
    """Finish a `publish_dir` cut short by a crash: put the old folder back when the new one never arrived,
    drop it when the new one did. Call it (or `clean_temp_files`) while holding the folder's lock."""
    final = Path(final)
    aside = aside_path(final)
    if aside.is_dir():
        if final.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(aside, final)
            fsync_dir(final.parent)
    return final


def publish_dir(tmp: str | Path, final: str | Path) -> Path:
    """Put the filled folder `tmp` in place of `final` (same parent), replacing any old one.

    Crash-safe ordering (a crash between any two steps leaves the old or the new folder whole):
      1. fsync tmp's entries (its files are already fsynced: write them with atomic_path and friends);
      2. final exists: swap tmp and final in one step (renameat2 RENAME_EXCHANGE; tmp now holds the old
         folder, a temp name that `clean_temp_files` removes), or where that is missing:
         2a. rename final aside (.lab-old.<name>)  -- crash here: final is missing, `recover_dir` renames
             the aside back;
         2b. rename tmp to final                     -- crash here: both exist, `recover_dir` drops the aside;
         final missing: rename tmp to final;
      3. fsync the parent, so the swap survives a power cut before the old folder goes;
      4. remove the old folder.
    """
    tmp, final = Path(tmp), Path(final)
    recover_dir(final)  # an earlier publish cut short
    fsync_dir(tmp)
    old = None
    if final.exists():
        if exchange_paths(tmp, final):
            old = tmp
        else:
            old = aside_path(final)
            os.replace(final, old)
            os.replace(tmp, final)
    else:
        os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


@contextlib.contextmanager
def atomic_dir(final: str | Path, prefix: str = ".tmp-") -> Iterator[Path]:
    """Yield a new temp folder beside `final` to fill; `publish_dir` it onto `final` on success, delete it on
    error (the old `final`, if any, stays as it was)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(final.parent, prefix)
    try:
        yield tmp
        publish_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_ATOMIC_TMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp")  # what atomic_path's mkstemp names look like


def is_temp_name(name: str) -> bool:
    """Names of this module's temp files and folders: `.tmp-*` and `.<name>.<random>.tmp*`."""
    return name.startswith(".tmp-") or _ATOMIC_TMP.match(name) is not None


def clean_temp_files(root: str | Path) -> list[Path]:
    """Delete leftover temp files/folders (from killed writers) anywhere under `root`, and finish folder
    swaps a crash cut short (`recover_dir`); returns what went.

    Only call this while holding the folder's lock: a live writer's temp files look the same.
    """
    removed = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            if name.startswith(_ASIDE):
                final = Path(dirpath) / name[len(_ASIDE) :]
                if final.exists():
                    removed.append(Path(dirpath) / name)
                recover_dir(final)
        dirnames[:] = [d for d in dirnames if not d.startswith(_ASIDE)]
        for name in [*filenames, *dirnames]:
            if is_temp_name(name):
                p = Path(dirpath) / name
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p)
        dirnames[:] = [d for d in dirnames if not is_temp_name(d)]
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(obj, indent=indent, default=_json_default, allow_nan=True)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, to_json(obj, indent) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or corrupt file is a LabError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabError(f"file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LabError(f"corrupt JSON in {path}: {e}") from None


def save_tensors(tensors: dict, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write a dict of tensors as safetensors, atomically (contiguous copies are made as needed)."""
    from safetensors.torch import save_file

    flat, seen = {}, set()
    for k, v in tensors.items():
        t = v.detach().contiguous().cpu()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:  # tied weights (e.g. an LM's lm_head = embeddings): safetensors wants own storage
            t = t.clone()
        seen.add(ptr)
        flat[k] = t
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)
    return Path(path)


def load_tensors(path: str | Path, device: str = "cpu") -> dict:
    """Read a safetensors file; a missing or corrupt file is a LabError naming it."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise LabError(f"file not found: {path}")
    try:
        return load_file(str(path), device=device)
    except Exception as e:  # safetensors raises several types for truncated/garbage files
        raise LabError(f"corrupt safetensors file {path}: {e}") from None
