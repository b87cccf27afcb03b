"""Where a job's independent tasks run: in this process (`local`, the default) or on a Ray cluster (`ray`).

Packages hand `map_tasks` a function and a list of (stable key, argument) tasks and get the results back in
key order, whichever backend ran them. Results come back to the driver (this process), which is the only one
that writes the run folder: through `on_result` (the package's own record, e.g. one JSON file a sweep point)
or `record` (a JSONL log of finished keys and results kept here). A resumed job skips what is recorded, so
finished work is never redone or lost; Ray retries the task of a worker that died (`max_retries`); the
driver's progress bar counts finished tasks over all workers.

Ray is optional (`pip install 'lab-shared[ray]'`) and imported only when the `ray` backend is chosen.
`--address` (default: RAY_ADDRESS) joins a running cluster (`ray start --head` on one machine, `ray start
--address HEAD:6379` on the others); without one a local Ray is started on demand with `--workers` CPUs,
its workers at niceness 0 (Ray's own default, 15, lets any other process on the machine starve them:
it made a 1-worker sweep 40% slower than in-process on a shared machine).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from lab_shared.cli_utils import choice_option
from lab_shared.errors import LabError

BACKENDS = ("local", "ray")
MAX_RETRIES = 3  # Ray re-runs a task up to this many times when its worker process dies
# A local Ray started here runs its workers at the driver's priority (niceness 0, as a local process pool)
# unless this is set; set it (e.g. 0) for `ray start` too, where Ray's default is 15
WORKER_NICENESS = "RAY_worker_niceness"

BackendOpt = Annotated[
    str,
    choice_option(
        "--backend", choices=BACKENDS, help="Where tasks run: local (this process) or ray (a Ray cluster)."
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster to join (HOST:6379, ray://HOST:10001 or auto); default RAY_ADDRESS, else a local Ray.",
    ),
]


@dataclass
class Backend:
    """`kind` local | ray; `address` of a running Ray cluster (None: RAY_ADDRESS, else start a local one
    with `workers` CPUs, 0 = all cores)."""

    kind: str = "local"
    address: str | None = None
    workers: int = 0

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise LabError(f"--backend must be local or ray, got '{self.kind}'")
        if self.address and self.kind != "ray":
            raise LabError("--address is for --backend ray")

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"

    def start(self) -> None:
        """Connect to (or start) Ray now, so a missing install or a dead address fails before any work."""
        if self.is_ray:
            _ray_connect(self.address, self.workers)

    def check(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` once where the tasks will run (a worker for Ray) before any work: a LabError it
        raises (e.g. no Stockfish there) is reported as one line."""
        if not self.is_ray:
            fn(*args)
            return
        ray = _ray_connect(self.address, self.workers)
        _get(ray, ray.remote(max_retries=0)(fn).remote(*args), "check")

    def slots(self) -> int:
        """How many tasks run at once: 1 locally, the cluster's CPUs on Ray (to size chunks of work)."""
        if not self.is_ray:
            return 1
        ray = _ray_connect(self.address, self.workers)
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def put(self, obj: Any) -> Any:
        """A handle to a large argument shared by many tasks (Ray: stored once in the object store)."""
        if not self.is_ray:
            return obj
        return _ray_connect(self.address, self.workers).put(obj)

    def __str__(self) -> str:
        return (
            self.kind
            if not self.is_ray
            else f"ray ({self.address or os.environ.get('RAY_ADDRESS') or 'local'})"
        )


def get(ref: Any) -> Any:
    """Inside a task: the value behind a `Backend.put` handle (Ray passes nested handles unresolved)."""
    if type(ref).__name__ == "ObjectRef":
        import ray

        return ray.get(ref)
    return ref


class TaskLog:
    """Finished tasks of a job as JSON lines {"key", "result"}: appended and fsynced one at a time by the
    driver, so a killed job loses at most the task in flight (a torn last line is ignored on reading)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def done(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not self.path.is_file():
            return out
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the torn last line of a killed run
            if isinstance(row, dict) and "key" in row:
                out[str(row["key"])] = row.get("result")
        return out

    def add(self, key: str, result: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "result": result}, default=str) + "\n"
        with open(self.path, "ab+") as fh:
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # after a torn line, start a new one
                    line = "\n" + line
            fh.write(line.encode())
            fh.flush()
            os.fsync(fh.fileno())


def map_tasks(
    fn: Callable[[Any], Any],
    tasks: Iterable[tuple[str, Any]],
    backend: Backend | None = None,
    *,
    on_result: Callable[[str, Any], None] | None = None,
    record: str | Path | None = None,
    desc: str | None = None,
    show_progress: bool = True,
) -> list[Any]:
    """`fn(arg)` for every (key, arg) task; the results in the order of `tasks`.

    Local: one after another in this process (what the packages did before). Ray: one Ray task each, as
    many at once as the cluster has CPUs. `on_result(key, result)` runs in this process as each task
    finishes (completion order); with `record`, finished results are logged there and a rerun with the same
    keys returns the logged ones without running them again. A task's exception is re-raised here (a
    LabError stays one line); tasks not yet finished are cancelled.
    """
    from lab_shared.progress import progress

    backend = backend or Backend()
    tasks = list(tasks)
    keys = [str(k) for k, _ in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("map_tasks: task keys must be unique")
    log = TaskLog(record) if record is not None else None
    results: dict[str, Any] = {}
    if log is not None:
        logged = log.done()
        results = {k: logged[k] for k in keys if k in logged}
    todo = [(str(k), a) for k, a in tasks if str(k) not in results]
    bar = progress(total=len(keys), desc=desc or "tasks", enabled=show_progress and desc is not None)
    bar.update(len(results))

    def finished(key: str, res: Any) -> None:
        if log is not None:
            log.add(key, res)
        results[key] = res
        if on_result is not None:
            on_result(key, res)
        bar.update(1)

    try:
        for key, res in _run(fn, todo, backend):
            finished(key, res)
    finally:
        bar.close()
    return [results[k] for k in keys]


def imap_tasks(
    fn: Callable[[Any], Any], tasks: Iterable[tuple[str, Any]], backend: Backend | None = None
) -> Iterator[Any]:
    """Like map_tasks, but a generator: yields each result in the order of `tasks` as soon as it and every
    task before it have finished (Ray runs them all at once), so the caller can write results as it goes."""
    tasks = [(str(k), a) for k, a in tasks]
    order = [k for k, _ in tasks]
    if len(set(order)) != len(order):
        raise ValueError("imap_tasks: task keys must be unique")
    ready: dict[str, Any] = {}
    nxt = 0
    for key, res in _run(fn, tasks, backend or Backend()):
        ready[key] = res
        while nxt < len(order) and order[nxt] in ready:
            yield ready.pop(order[nxt])
            nxt += 1


def _run(fn: Callable, todo: Sequence[tuple[str, Any]], backend: Backend) -> Iterator[tuple[str, Any]]:
    """(key, result) in completion order: here one after another, or on Ray all at once."""
    if backend.is_ray and todo:
        yield from _ray_map(fn, todo, backend)
    else:
        for key, arg in todo:
            yield key, fn(arg)


# ---------------------------------------------------------------- Ray


def _call_pickled(fn: Callable, blob: bytes) -> bytes:
    """A Ray task: arguments and result travel as pickles, so the task gets private, writable copies (Ray
    would hand over numpy arrays zero-copy and read-only), exactly as in-process."""
    from ray import cloudpickle

    return cloudpickle.dumps(fn(cloudpickle.loads(blob)))


def _ray_map(fn: Callable, todo: Sequence[tuple[str, Any]], backend: Backend) -> Iterator[tuple[str, Any]]:
    ray = _ray_connect(backend.address, backend.workers)
    from ray import cloudpickle

    remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(_call_pickled)
    fn_ref = ray.put(fn)
    pending = {remote.remote(fn_ref, cloudpickle.dumps(arg)): key for key, arg in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                key = pending.pop(ref)
                yield key, cloudpickle.loads(_get(ray, ref, key))
    finally:
        for ref in pending:  # an error, Ctrl-C or a closed generator: stop what has not finished
            ray.cancel(ref, force=True)


def _get(ray: Any, ref: Any, key: str) -> Any:
    """ray.get, with a task's own exception re-raised as itself and a dead worker as one line."""
    from ray import exceptions as rex

    try:
        return ray.get(ref)
    except rex.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, LabError):
            raise LabError(str(cause)) from None
        if isinstance(cause, BaseException):
            raise cause from None
        raise
    except (rex.WorkerCrashedError, rex.NodeDiedError, rex.OutOfMemoryError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LabError(f"task {key} failed on Ray after {MAX_RETRIES} retries: {first}") from None


def _reachable(address: str) -> bool:
    """Whether HOST:PORT (or ray://HOST:PORT) accepts a TCP connection within a few seconds."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise LabError(f"--address must be HOST:PORT, ray://HOST:PORT or auto, got '{address}'")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return True
    except OSError:
        return False


def _ray_connect(address: str | None, workers: int = 0) -> Any:
    """The `ray` module, connected: the running session, the cluster at `address`/RAY_ADDRESS, or a new
    local Ray with `workers` CPUs (0 = all). One line and no traceback when that is not possible."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address not in ("auto", "local") and not _reachable(address):
        raise LabError(f"no Ray cluster at {address} (start one with `ray start --head`, or check --address)")
    token = os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").is_file()
    if address not in (None, "local") and token and "RAY_AUTH_MODE" not in os.environ:
        # `ray start` clusters use token auth by default, but Ray sends the token (RAY_AUTH_TOKEN or
        # ~/.ray/auth_token, copied from the head) only to a cluster it found itself, not to an --address;
        # Ray reads the mode when it is imported
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError:
        raise LabError(
            "--backend ray needs Ray: pip install 'lab-shared[ray]' (make setup installs it)"
        ) from None
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "warning", "log_to_driver": True}
    if address:
        kwargs["address"] = address
    else:
        kwargs["address"] = "local"  # a new cluster for this command, even if `ray start` runs here
        kwargs["num_cpus"] = workers or os.cpu_count() or 1
        if WORKER_NICENESS not in os.environ:  # Ray's default, 15, starves tasks beside any other load
            kwargs["_system_config"] = {"worker_niceness": 0}
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = address or "a local Ray"
        raise LabError(f"cannot start or join {where}: {first}") from None
    return ray
