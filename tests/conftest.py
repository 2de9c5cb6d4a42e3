"""Shared fixtures. Real-server fixtures (Prometheus, Alertmanager) live in tests/real_servers.py."""

from __future__ import annotations

import os
import shutil

import pytest

pytest_plugins = ["tests.real_servers"]


def require_binary(name: str) -> str:
    """Path of a real binary the test needs; skip without it, fail in CI (DEPLOYDECK_REQUIRE_REAL=1)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("DEPLOYDECK_REQUIRE_REAL") == "1":
            pytest.fail(f"{message} and DEPLOYDECK_REQUIRE_REAL=1", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    # never write the developer's real deployment log from a test
    monkeypatch.setenv("DEPLOYDECK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DEPLOYDECK_ACTOR", "tester")
