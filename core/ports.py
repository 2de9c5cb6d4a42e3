"""What the engine may ask of the world. Every port has a real adapter and a simulated one.

Adapters raise :class:`PortError` (or a subclass) with a message fit for a person:
it names the endpoint and status, never a secret.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, runtime_checkable

from core.clock import Clock
from core.domain import (
    Alert,
    CanaryMetrics,
    CheckRun,
    CommandOutcome,
    Notification,
    NotifyResult,
    ProbeResult,
    QueryResult,
    Review,
    RollbackReport,
    TrafficChange,
    WorkloadStatus,
)

Role = Literal["stable", "canary"]
Progress = Callable[[str], Awaitable[None] | None]


class PortError(Exception):
    """An outside system could not answer. The message is shown to people as is."""


class ClusterError(PortError):
    pass


@runtime_checkable
class Cluster(Protocol):
    """One deploy target (staging or production), already bound to its namespace and workload."""

    async def describe(self) -> WorkloadStatus: ...

    async def deploy(self, image: str, role: Role) -> None:
        """Set the image of the stable or canary workload (a new Deployment revision)."""

    async def wait_ready(self, role: Role, timeout_s: float, progress: Progress | None = None) -> None:
        """Return when the role's rollout is complete; raise ClusterError on deadline or failure."""

    async def set_canary_weight(self, percent: int) -> TrafficChange: ...

    async def rollback(self) -> RollbackReport:
        """Canary weight to 0 (fast path), then `rollout undo` of stable if it was changed."""

    async def read_state(self) -> dict[str, object] | None: ...

    async def write_state(self, state: dict[str, object]) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class Metrics(Protocol):
    async def canary_metrics(self, window_s: float) -> CanaryMetrics:
        """Canary and baseline over the last window; failures are reported in the result, not raised."""

    async def query(self, promql: str) -> QueryResult: ...

    async def close(self) -> None: ...


@runtime_checkable
class Alerts(Protocol):
    async def active_alerts(self, matchers: list[str] | None = None) -> list[Alert]:
        """Firing, unsilenced alerts matching Alertmanager-style matchers; raises PortError."""


@runtime_checkable
class Probe(Protocol):
    async def check(
        self,
        url: str,
        *,
        expect_status: int = 200,
        expect_body: str | None = None,
        timeout_s: float = 5.0,
    ) -> ProbeResult: ...


@runtime_checkable
class Notifier(Protocol):
    async def notify(self, message: Notification) -> list[NotifyResult]: ...


@runtime_checkable
class CodeHost(Protocol):
    """GitHub or compatible: CI checks and reviews for the change."""

    async def checks(self, repo: str, commit: str) -> list[CheckRun]: ...

    async def reviews(self, repo: str, pull_request: int) -> list[Review]: ...


@runtime_checkable
class CommandRunner(Protocol):
    """Runs E2E suites, migrations and smoke commands, streaming output lines."""

    async def run(
        self,
        command: str,
        *,
        timeout_s: float,
        on_line: Callable[[str], Awaitable[None] | None] | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandOutcome: ...


@runtime_checkable
class Journal(Protocol):
    async def append(self, record: dict[str, object], *, durable: bool = True) -> None:
        """Append one record; durable records are on disk when this returns."""


__all__ = [
    "Alerts",
    "Clock",
    "Cluster",
    "ClusterError",
    "CodeHost",
    "CommandRunner",
    "Journal",
    "Metrics",
    "Notifier",
    "PortError",
    "Probe",
    "Progress",
    "Role",
]
