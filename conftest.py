"""Fixtures shared by every package's tests."""

import os

import pytest


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray cluster with 2 CPUs, one per test module that asks for it (a start takes ~2-15 s), shut down
    after the module so later tests never fork a process that holds Ray's threads."""
    ray = pytest.importorskip("ray")
    os.environ.pop("RAY_ADDRESS", None)
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray
    ray.shutdown()
