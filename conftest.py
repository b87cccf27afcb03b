"""Fixtures shared by every package's tests."""

import os

import pytest


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """A local Ray cluster with 2 CPUs, one per test module that asks for it (a start takes ~2-15 s), shut down
    after the module so later tests never fork a process that holds Ray's threads. Its workers keep what they
    write under $LAB_RUNS (caches) in a temporary folder."""
    ray = pytest.importorskip("ray")
    os.environ.pop("RAY_ADDRESS", None)
    if not ray.is_initialized():
        runs = str(tmp_path_factory.mktemp("ray-runs"))
        env = {"env_vars": {"LAB_RUNS": runs, "HF_HUB_OFFLINE": "1"}}
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, logging_level="warning", runtime_env=env
        )
    yield ray
    ray.shutdown()
