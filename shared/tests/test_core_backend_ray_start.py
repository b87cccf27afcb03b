"""The local Ray that lab starts on demand: its workers run at the driver's priority (Ray's default niceness
of 15 lets any other process starve them), unless RAY_worker_niceness says otherwise."""

import os

import pytest

from lab_shared.backend import _ray_connect


def _nice(_=None):
    return os.nice(0)


def test_local_ray_workers_run_at_the_drivers_priority(monkeypatch):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    try:
        ray = _ray_connect(None, 1)
        assert ray.get(ray.remote(_nice).remote()) == os.nice(0)  # not 15
    finally:
        ray.shutdown()
