"""Shared fixtures. Real-server fixtures (Prometheus, Alertmanager) live in tests/real_servers.py."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

pytest_plugins = ["tests.real_servers"]

# Property tests are reproducible by default: the same examples every run, so a failure in CI is a
# failure on every machine. `make bench` (HYPOTHESIS_PROFILE=bench) explores wider with fresh seeds.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("bench", derandomize=False, deadline=None, max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=["memory", pytest.param("kube", marks=pytest.mark.slow)])
async def world(request, tmp_path):
    """Open sessions on one backend: the in-memory world, or the simulated Kubernetes API server through
    the real adapter. An engine test taking this fixture proves its property on both paths."""
    from tests.engine_helpers import sim_session

    opened = []

    async def open_world(scenario: str = "healthy", **kwargs):
        session = await sim_session(tmp_path / f"w{len(opened)}", scenario, backend=request.param, **kwargs)
        opened.append(session)
        return session

    open_world.backend = request.param
    yield open_world
    for session in opened:
        await session.close()


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    # never write the developer's real deployment log from a test
    monkeypatch.setenv("DEPLOYDECK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DEPLOYDECK_ACTOR", "tester")
