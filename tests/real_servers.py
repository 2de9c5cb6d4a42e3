"""Real Prometheus and Alertmanager for tests, on loopback with random ports and temp dirs.

Loaded as a pytest plugin (``pytest_plugins = ["tests.real_servers"]``). A missing
binary skips the test, or fails it when ``DEPLOYDECK_REQUIRE_REAL=1`` (CI).
Waits poll with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.sim.monitoring import AlertmanagerServer, PrometheusServer

PROMETHEUS_BIN = "/usr/bin/prometheus"
ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
PROMTOOL_BIN = "/usr/bin/promtool"


def require_binary(path: str) -> str:
    """The binary's path, or skip (fail under DEPLOYDECK_REQUIRE_REAL=1) when it is missing."""
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if found:
        return found
    message = f"{path} is not installed (make real-deps, or apt-get install the package that ships it)"
    if os.environ.get("DEPLOYDECK_REQUIRE_REAL") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def running_prometheus(targets: list[str] | None = None) -> Iterator[PrometheusServer]:
    """A Prometheus of one's own (e.g. to kill mid-test), stopped and cleaned up after."""
    binary = require_binary(PROMETHEUS_BIN)
    with tempfile.TemporaryDirectory(prefix="dd-prom-") as tmp:
        server = PrometheusServer(binary, Path(tmp))
        server.targets = list(targets or [])
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def running_alertmanager() -> Iterator[AlertmanagerServer]:
    binary = require_binary(ALERTMANAGER_BIN)
    with tempfile.TemporaryDirectory(prefix="dd-am-") as tmp:
        server = AlertmanagerServer(binary, Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[PrometheusServer]:
    """One Prometheus for the session; tests add their workload with ``add_target``."""
    with running_prometheus() as server:
        yield server


@pytest.fixture(scope="session")
def alertmanager_server() -> Iterator[AlertmanagerServer]:
    with running_alertmanager() as server:
        yield server


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[[list[str]], PrometheusServer]]:
    """Start private Prometheus servers inside a test; all are stopped when it ends."""
    stack: list[object] = []

    def start(targets: list[str]) -> PrometheusServer:
        cm = running_prometheus(targets)
        server = cm.__enter__()
        stack.append(cm)
        return server

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]
