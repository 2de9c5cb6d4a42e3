"""The ports one deploy talks to, bundled. The engine cannot tell real from simulated."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.clock import Clock
from core.ports import Alerts, Cluster, CodeHost, CommandRunner, Metrics, Notifier, Probe


@dataclass
class World:
    clock: Clock
    staging: Cluster
    production: Cluster
    metrics: Metrics | None  # production canary vs baseline
    staging_metrics: Metrics | None  # staging (new version) for the soak
    alerts: Alerts | None
    probe: Probe
    notifier: Notifier
    runner: CommandRunner
    codehost: CodeHost | None = None
    closers: list[object] = field(default_factory=list)

    async def close(self) -> None:
        for port in (self.staging, self.production, self.metrics, self.staging_metrics, *self.closers):
            close = getattr(port, "close", None) if port is not None else None
            if close is not None:
                result = close()
                if hasattr(result, "__await__"):
                    await result
