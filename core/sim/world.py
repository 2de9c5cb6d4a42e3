"""In-process simulated ports: a cluster, its workload's metrics, probes, alerts and the rest.

Deterministic for a seed. Metrics are computed per read from the scenario's expected
behaviour plus seeded noise, sized by how much traffic each version got, so a 15-minute
window costs one function call.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from core.clock import Clock
from core.cluster_view import ClusterTree, PodDetail
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
    WorkloadSample,
    WorkloadStatus,
)
from core.ports import ClusterError, Progress, Role
from core.sim.scenarios import Behaviour, Scenario


class TrafficView(Protocol):
    """How much of the traffic the new version gets, whoever runs it (canary or promoted stable)."""

    def new_version_share(self) -> int: ...


class SimCluster:
    """A stable and a canary workload with a traffic weight, revisions, and rollout undo."""

    def __init__(
        self,
        *,
        stable_image: str,
        replicas: int = 10,
        clock: Clock,
        ready_after_s: float = 20.0,
        deployment: str = "checkout",
    ) -> None:
        self.clock = clock
        self.replicas = replicas
        self.ready_after_s = ready_after_s
        self.stable_image = stable_image
        self.canary_image: str | None = None
        self.weight = 0
        self.stable_history: list[str] = [stable_image]
        self.state: dict[str, object] | None = None
        self.calls: list[str] = []
        self.fail_rollbacks = 0  # fault injection: this many rollback calls raise first
        from core.sim.pod_logs import SimTree

        self.view = SimTree(self, deployment)  # the ReplicaSet/pod tree (core.cluster_view)
        self.view.deployed("stable", stable_image)

    # new version share: what the simulated workload routes to the new image
    def new_version_share(self) -> int:
        if self.canary_image and self.canary_image != self.stable_image:
            return self.weight
        if len(self.stable_history) > 1 and self.stable_image == self.stable_history[-1]:
            return 100 if self.stable_image != self.stable_history[0] else 0
        return 0

    async def describe(self) -> WorkloadStatus:
        canary = round(self.replicas * self.weight / 100)
        return WorkloadStatus(
            stable_image=self.stable_image,
            canary_image=self.canary_image,
            stable_ready=self.replicas - canary,
            stable_desired=self.replicas - canary,
            canary_ready=canary,
            canary_desired=canary,
            weight=self.weight,
            revision=len(self.stable_history),
        )

    async def deploy(self, image: str, role: Role) -> None:
        self.calls.append(f"deploy:{role}:{image}")
        self.view.deployed(role, image)
        if role == "canary":
            self.canary_image = image
        else:
            self.stable_image = image
            self.stable_history.append(image)

    async def wait_ready(self, role: Role, timeout_s: float, progress: Progress | None = None) -> None:
        self.calls.append(f"wait_ready:{role}")
        steps = 4
        for i in range(1, steps + 1):
            await self.clock.sleep(min(self.ready_after_s, timeout_s) / steps)
            if progress is not None:
                result = progress(f"{role}: {i * 100 // steps} % of pods ready")
                if isinstance(result, Awaitable):
                    await result

    async def set_canary_weight(self, percent: int) -> TrafficChange:
        self.calls.append(f"weight:{percent}")
        self.weight = percent
        return TrafficChange(requested=percent, effective=percent)

    async def rollback(self) -> RollbackReport:
        self.calls.append("rollback")
        if self.fail_rollbacks > 0:
            self.fail_rollbacks -= 1
            raise ClusterError("PATCH deployments/checkout: 503 Service Unavailable (simulated)")
        self.weight = 0
        restored = False
        if len(self.stable_history) > 1:
            self.stable_history.pop()
            self.stable_image = self.stable_history[-1]
            restored = True
        self.canary_image = None
        return RollbackReport(
            weight_reset=True,
            stable_restored=restored,
            to_revision=len(self.stable_history),
            detail=f"stable runs {self.stable_image}",
        )

    async def tree(self) -> ClusterTree:
        return self.view.tree()

    async def pod_detail(self, pod: str, tail: int = 50) -> PodDetail:
        return self.view.pod_detail(pod, tail)

    async def read_state(self) -> dict[str, object] | None:
        return self.state

    async def write_state(self, state: dict[str, object]) -> None:
        self.state = dict(state)

    async def close(self) -> None:
        return None


class ObservedCluster:
    """A Cluster that tells the workload model the moment traffic moves.

    The model otherwise learns of a change only at its next read, and would count
    the new step's traffic from then instead of from when it really started.
    """

    def __init__(self, inner: Any, on_change: Callable[..., object]) -> None:
        self.inner = inner
        self._on_change = on_change

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def deploy(self, image: str, role: Role) -> None:
        await self.inner.deploy(image, role)
        self._on_change()

    async def set_canary_weight(self, percent: int) -> TrafficChange:
        change = await self.inner.set_canary_weight(percent)
        self._on_change(change.effective)  # the share to expect once the pods settle
        return change

    async def rollback(self) -> RollbackReport:
        report = await self.inner.rollback()
        self._on_change()
        return report


class WorkloadModel:
    """The scenario's behaviour over time: which version gets how much traffic since when."""

    def __init__(self, scenario: Scenario, traffic: TrafficView, clock: Clock) -> None:
        self.scenario = scenario
        self.traffic = traffic
        self.clock = clock
        self._share = 0
        self._share_since: datetime = clock.now()
        self._canary_started: datetime | None = None
        self._asked_at: datetime | None = None
        self._asked_for: int | None = None
        self.health_checks = 0

    def traffic_requested(self, percent: int | None = None) -> None:
        """The engine just set a weight (``percent``: the share the cluster reported; None: a promotion
        or rollback, whose share is not a weight). On a real-ish cluster the share follows once pods are ready, usually before
        the next read; that read attributes the change to this moment, not to itself (issue 14: the
        first read of a step saw 0 canary requests)."""
        self._asked_at = self.clock.now()
        self._asked_for = percent
        self.observe()

    def observe(self) -> tuple[int, float, float]:
        """(new-version share %, seconds at this share or above, seconds since the canary began)."""
        share = self.traffic.new_version_share()
        now = self.clock.now()
        if share != self._share:
            # faults keyed on "weight >= N for T seconds" count from the new step; a change first
            # seen here happened when it was asked for, if that was after the previous change
            asked = self._asked_at
            since = asked if asked is not None and asked >= self._share_since else now
            self._share_since = since
            self._share = share
            # a pod-count split passes through in-between shares while the stable's pods drop out
            # of the endpoints (5 of 25 ready: 20 % on the way to 25 %): the ask is spent only when
            # the share it asked for arrives (±1: the server and the adapter round a half differently),
            # else the step's faults would start a read late
            if self._asked_for is None or abs(share - self._asked_for) <= 1:
                self._asked_at = None
            self.health_checks = 0
            if share > 0 and self._canary_started is None:
                self._canary_started = since
        if share > 0 and self._canary_started is None:
            self._canary_started = now
        since_canary = (now - self._canary_started).total_seconds() if self._canary_started else 0.0
        return share, (now - self._share_since).total_seconds(), since_canary

    def behaviour(self, role: Role) -> tuple[Behaviour, int]:
        share, at_share, _ = self.observe()
        return self.scenario.behaviour(role, share, at_share), share


class SimMetrics:
    """Canary vs baseline reads for the in-process world."""

    def __init__(self, model: WorkloadModel, *, min_requests: int, seed: int, staging: bool = False) -> None:
        self.model = model
        self.min_requests = min_requests
        self.rng = random.Random(seed)
        self.staging = staging
        self.reads = 0

    def _sample(self, behaviour: Behaviour, requests: float) -> WorkloadSample:
        if requests < 1:
            return WorkloadSample(requests=requests, reason="no requests in the window")
        # binomial errors, normal approximation; clamp at zero
        mean = requests * behaviour.error_rate
        sd = math.sqrt(max(mean * (1 - behaviour.error_rate), 1e-9))
        errors = max(0.0, round(self.rng.gauss(mean, sd)))
        jitter = 1 + self.rng.gauss(0, 0.04 / math.sqrt(max(requests / 200, 1)))
        return WorkloadSample(
            requests=requests,
            error_rate=errors / requests,
            p50=behaviour.p50_s * jitter,
            p95=behaviour.p95_s * jitter,
            p99=behaviour.p99_s * jitter,
        )

    def _averaged(self, role: Role, share: int, at_share: float, window_s: float) -> Behaviour:
        """The scenario's behaviour averaged over the read window, so a fault ramps in as it would in rate()."""
        points = 6
        span = min(window_s, at_share) if role == "canary" else window_s
        seen = [
            self.model.scenario.behaviour(role, share, max(0.0, at_share - span * (i + 0.5) / points))
            for i in range(points)
        ]
        return Behaviour(
            error_rate=sum(b.error_rate for b in seen) / points,
            p50_s=sum(b.p50_s for b in seen) / points,
            p95_s=sum(b.p95_s for b in seen) / points,
            p99_s=max(
                b.p99_s for b in seen[: points // 2]
            ),  # a p99 over the window is dominated by its worst part
        )

    async def canary_metrics(self, window_s: float) -> CanaryMetrics:
        self.reads += 1
        share, at_share, since_canary = self.model.observe()
        now = self.model.clock.now()
        if not self.staging and self.model.scenario.metrics_down(share, since_canary):
            return CanaryMetrics(
                canary=WorkloadSample(reason="unreachable"),
                baseline=WorkloadSample(reason="unreachable"),
                at=now,
                reason="prometheus unreachable: connection refused (simulated outage)",
            )
        rps = self.model.scenario.requests_per_second
        if self.staging:
            # staging sees the new version on all of its (smaller) traffic, before any canary fault
            new = self.model.scenario.behaviour("canary", 0, 0.0)
            stable = self.model.scenario.behaviour("stable", 0, 0.0)
            return CanaryMetrics(
                canary=self._sample(new, rps * 0.25 * window_s),
                baseline=self._sample(stable, rps * window_s),
                at=now,
            )
        # the canary has served since it started, whatever the step: a share that wobbles while
        # pods come and go must not read as a window with no requests (issue 14)
        canary_span = min(window_s, since_canary) if share > 0 else 0.0
        new = self._averaged("canary", share, at_share, window_s)
        stable = self._averaged("stable", share, at_share, window_s)
        return CanaryMetrics(
            canary=self._sample(new, rps * canary_span * share / 100),
            baseline=self._sample(stable, rps * window_s * (100 - share) / 100),
            at=now,
        )

    async def query(self, promql: str) -> QueryResult:
        share, _, since_canary = self.model.observe()
        if self.model.scenario.metrics_down(share, since_canary):
            return QueryResult(value=None, reason="no data: prometheus unreachable (simulated outage)")
        # The simulated world answers the gates' usual questions with healthy figures.
        if "5.." in promql and "/" in promql:
            # an error ratio, e.g. over the SLO window: the stable version's
            return QueryResult(value=self.model.scenario.behaviour("stable", 0, 0.0).error_rate)
        return QueryResult(value=0.0)

    async def close(self) -> None:
        return None


class SimProbe:
    """Health endpoints of the simulated workload. URLs look like sim://<role>/health/<kind>."""

    def __init__(self, model: WorkloadModel) -> None:
        self.model = model

    async def check(
        self,
        url: str,
        *,
        expect_status: int = 200,
        expect_body: str | None = None,
        timeout_s: float = 5.0,
    ) -> ProbeResult:
        ok = True
        if "canary" in url:
            share, _, _ = self.model.observe()
            self.model.health_checks += 1
            ok = self.model.scenario.health_ok(share, self.model.health_checks)
        status = 200 if ok else 503
        deps = {"postgres": True, "redis": ok}
        return ProbeResult(
            url=url,
            ok=ok and status == expect_status,
            status=status,
            latency_ms=12.0,
            detail="ok" if ok else "dependency redis: connection timed out",
            dependencies=deps,
        )


class SimAlerts:
    def __init__(self, alerts: list[Alert] | None = None) -> None:
        self.alerts = list(alerts or [])

    async def active_alerts(self, matchers: list[str] | None = None) -> list[Alert]:
        return list(self.alerts)


class SimNotifier:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def notify(self, message: Notification) -> list[NotifyResult]:
        self.sent.append(message)
        return [NotifyResult(channel="#deploys (simulated)", delivered=True)]


class SimCodeHost:
    async def checks(self, repo: str, commit: str) -> list[CheckRun]:
        return [
            CheckRun(name=name, state="success")
            for name in ("lint", "tests", "sast", "dependency-scan", "coverage")
        ]

    async def reviews(self, repo: str, pull_request: int) -> list[Review]:
        return [
            Review(reviewer="bob", state="APPROVED", commit="sim"),
            Review(reviewer="carol", state="APPROVED", commit="sim"),
        ]


class SimRunner:
    """E2E suites and migrations of the simulated world: a few lines of output, exit 0."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.commands: list[str] = []

    async def run(
        self,
        command: str,
        *,
        timeout_s: float,
        on_line: Callable[[str], Awaitable[None] | None] | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandOutcome:
        self.commands.append(command)
        lines = [f"$ {command}", "running 42 checks", "42 passed in 38.2s"]
        for line in lines:
            await self.clock.sleep(5)
            if on_line is not None:
                result = on_line(line)
                if isinstance(result, Awaitable):
                    await result
        return CommandOutcome(command=command, exit_code=0, output="\n".join(lines), duration_s=15.0)
