"""lab_shared.backend: results in key order, a record that makes resume skip finished work, the same results
on a local Ray cluster as in-process, a killed worker's task retried, and one-line errors."""

import os
import sys

import pytest
import torch

from lab_shared.backend import Backend, TaskLog, imap_tasks, map_tasks
from lab_shared.errors import LabError


def _by_value():
    """Ray workers cannot import test modules: ship this module's functions by value."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _work(arg):
    """A seeded computation heavy enough to be worth a task: (seed, n) -> a float."""
    seed, n = arg
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n, generator=g)
    return float((x @ x.T).trace())


def _counted(arg):
    """Leaves a file per execution, so a test can count runs across processes."""
    folder, key, value = arg
    n = len(os.listdir(folder))
    open(os.path.join(folder, f"{key}-{n}"), "w").close()
    return value * 10


def _die_once(arg):
    """Kills its worker process on the first attempt (marker file missing), then succeeds."""
    marker, value = arg
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return value + 1


def _bad(arg):
    if arg == 2:
        raise LabError("no stockfish at /nowhere")
    return arg


TASKS = [(f"t{i}", (i, 24)) for i in (5, 3, 9, 0, 7)]


def test_local_order_on_result_and_record_resume(tmp_path):
    seen = []
    out = map_tasks(_work, TASKS, on_result=lambda k, r: seen.append(k), record=tmp_path / "tasks.jsonl")
    assert out == [_work(a) for _, a in TASKS] and seen == [k for k, _ in TASKS]
    # a torn last line (killed mid-write) is ignored; the logged tasks are not run again
    with open(tmp_path / "tasks.jsonl", "a") as fh:
        fh.write('{"key": "t9", "res')
    runs = tmp_path / "runs"
    runs.mkdir()
    tasks = [(k, (str(runs), k, i)) for i, (k, _) in enumerate(TASKS)] + [("new", (str(runs), "new", 7))]
    again = map_tasks(_counted, tasks, record=tmp_path / "tasks.jsonl")
    assert again[:-1] == out and again[-1] == 70
    assert os.listdir(runs) == ["new-0"]
    assert set(TaskLog(tmp_path / "tasks.jsonl").done()) == {k for k, _ in TASKS} | {"new"}


def test_duplicate_keys_and_bad_backend():
    with pytest.raises(ValueError):
        map_tasks(_work, [("a", (0, 2)), ("a", (1, 2))])
    with pytest.raises(LabError, match="--backend must be local or ray"):
        Backend("spark")
    with pytest.raises(LabError, match="--address is for --backend ray"):
        Backend("local", address="x:1")


def test_ray_missing_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra installed
    with pytest.raises(LabError, match=r"pip install 'lab-shared\[ray\]'"):
        Backend("ray").start()


def test_unreachable_address_is_one_line(monkeypatch):
    pytest.importorskip("ray")
    with pytest.raises(LabError, match="no Ray cluster at 127.0.0.1:9"):
        Backend("ray", address="127.0.0.1:9").start()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    with pytest.raises(LabError, match="no Ray cluster at 127.0.0.1:9"):
        Backend("ray").start()
    with pytest.raises(LabError, match="must be HOST:PORT"):
        Backend("ray", address="nonsense").start()


def test_ray_same_results_as_local_in_key_order(ray_local, tmp_path):
    _by_value()
    seen = []
    ray_out = map_tasks(_work, TASKS, Backend("ray"), on_result=lambda k, r: seen.append(k))
    assert ray_out == map_tasks(_work, TASKS)
    assert list(imap_tasks(_work, TASKS, Backend("ray"))) == ray_out == list(imap_tasks(_work, TASKS))
    assert Backend("ray").slots() == 2 and Backend().slots() == 1
    assert sorted(seen) == sorted(k for k, _ in TASKS)


def test_ray_resume_never_redoes_finished_work(ray_local, tmp_path):
    _by_value()
    runs = tmp_path / "runs"
    runs.mkdir()
    record = tmp_path / "tasks.jsonl"
    first = [(f"k{i}", (str(runs), f"k{i}", i)) for i in range(3)]
    assert map_tasks(_counted, first, Backend("ray"), record=record) == [0, 10, 20]
    more = first + [(f"k{i}", (str(runs), f"k{i}", i)) for i in range(3, 5)]
    assert map_tasks(_counted, more, Backend("ray"), record=record) == [0, 10, 20, 30, 40]
    assert sorted(n.split("-")[0] for n in os.listdir(runs)) == ["k0", "k1", "k2", "k3", "k4"]  # once each


def test_ray_retries_a_killed_worker(ray_local, tmp_path):
    _by_value()
    tasks = [("a", (str(tmp_path / "marker-a"), 1)), ("b", (str(tmp_path / "marker-b"), 2))]
    assert map_tasks(_die_once, tasks, Backend("ray")) == [2, 3]
    assert (tmp_path / "marker-a").exists() and (tmp_path / "marker-b").exists()  # each died once


def test_ray_task_error_is_one_line_and_check_runs_on_a_worker(ray_local):
    _by_value()
    with pytest.raises(LabError, match="no stockfish at /nowhere"):
        map_tasks(_bad, [(str(i), i) for i in range(4)], Backend("ray"))
    with pytest.raises(LabError, match="no stockfish"):
        Backend("ray").check(_bad, 2)
    Backend("ray").check(_bad, 1)
    ref = Backend("ray").put([1, 2, 3])
    from lab_shared.backend import get

    assert get(ref) == [1, 2, 3] and get([4]) == [4]
