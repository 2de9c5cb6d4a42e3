"""Shared fixtures. Real-server fixtures (Prometheus, Alertmanager) live in tests/real_servers.py."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.real_servers"]


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    # never write the developer's real deployment log from a test
    monkeypatch.setenv("DEPLOYDECK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DEPLOYDECK_ACTOR", "tester")
