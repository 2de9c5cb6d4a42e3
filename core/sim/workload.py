"""The simulated workload as a real HTTP service a real Prometheus can scrape.

Stable and canary each serve ``/<role>/health/live`` and ``/<role>/health/ready``;
one ``/metrics`` endpoint exports both versions' request counters and latency
histograms from a private CollectorRegistry. A background generator turns the
scenario's expected behaviour into individual requests (seeded, so runs repeat)
at ``requests_per_second`` per *clock* second, split by the current canary weight.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from core.clock import Clock
from core.sim.scenarios import BASELINE, Behaviour, Role, Scenario

if TYPE_CHECKING:
    from aiohttp import web

#: bucket edges (seconds) dense around the scenarios' quantiles so that
#: histogram_quantile lands close to the injected p50/p95/p99.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.02, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.13,
    0.14, 0.15, 0.16, 0.17, 0.18, 0.19, 0.2, 0.22, 0.25, 0.27, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7,
    0.8, 1.0, 1.5, 2.0, 3.0, 5.0,
)  # fmt: skip

#: generator tick in clock seconds; small enough that a scrape never sees a lumpy step
TICK_S = 0.1


def sample_latency(behaviour: Behaviour, u: float) -> float:
    """Inverse CDF through (0, p50/4), (.5, p50), (.95, p95), (.99, p99), (1, 1.5·p99).

    Piecewise linear, so the injected quantiles are the distribution's exact quantiles.
    """
    points = (
        (0.0, behaviour.p50_s / 4),
        (0.5, behaviour.p50_s),
        (0.95, behaviour.p95_s),
        (0.99, behaviour.p99_s),
        (1.0, behaviour.p99_s * 1.5),
    )
    for (q0, v0), (q1, v1) in itertools.pairwise(points):
        if u <= q1:
            return v0 + (v1 - v0) * (u - q0) / (q1 - q0)
    return points[-1][1]


class SimWorkload:
    def __init__(
        self,
        scenario: Scenario,
        *,
        service: str,
        namespace: str,
        stable_version: str,
        canary_version: str,
        weight: Callable[[], int],
        clock: Clock,
        seed: int = 7,
        tick_s: float = TICK_S,
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.scenario = scenario
        #: clock seconds between generator ticks; the Prometheus demo sets ~1/10 of a scrape
        self.tick_s = tick_s
        self.service = service
        self.namespace = namespace
        self.versions: dict[Role, str] = {"stable": stable_version, "canary": canary_version}
        self.weight = weight
        self.clock = clock
        self.rng = random.Random(seed)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests served",
            ["service", "namespace", "version", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["service", "namespace", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.base_url = ""
        #: clock time the canary first behaved differently from the baseline (benchmarks read it)
        self.first_fault_at: datetime | None = None
        #: wall time (time.monotonic) of the first /metrics answer that held faulty requests:
        #: the first bad scrape, from which the benchmark measures detection latency
        self.first_bad_scrape_wall: float | None = None
        self.served: dict[Role, int] = {"stable": 0, "canary": 0}
        self.errors: dict[Role, int] = {"stable": 0, "canary": 0}
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_weight: int | None = None
        self._weight_since: datetime = clock.now()
        self._canary_started: datetime | None = None
        self._checks: dict[str, int] = {}
        self._carry: dict[Role, float] = {"stable": 0.0, "canary": 0.0}
        for role in ("stable", "canary"):
            self._init_series(role)

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> str:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/{role}/health/live", self._live)
        app.router.add_get("/{role}/health/ready", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._observe_weight()
        self._task = asyncio.create_task(self._generate(), name="sim-workload-traffic")
        return self.base_url

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def urls(self) -> dict[str, str]:
        b = self.base_url
        return {
            "metrics": f"{b}/metrics",
            "stable_live": f"{b}/stable/health/live",
            "stable_ready": f"{b}/stable/health/ready",
            "canary_live": f"{b}/canary/health/live",
            "canary_ready": f"{b}/canary/health/ready",
        }

    @property
    def target(self) -> str:
        """host:port for a Prometheus static_configs target."""
        return self.base_url.removeprefix("http://")

    def set_canary_version(self, version: str) -> None:
        self.versions["canary"] = version
        self._init_series("canary")

    # --- behaviour -------------------------------------------------------------

    def _observe_weight(self) -> int:
        weight = max(0, min(100, int(self.weight())))
        if weight != self._last_weight:
            self._last_weight = weight
            self._weight_since = self.clock.now()
            self._checks.clear()
            if weight > 0 and self._canary_started is None:
                self._canary_started = self._weight_since
        return weight

    def seconds_at_weight(self) -> float:
        return max(0.0, (self.clock.now() - self._weight_since).total_seconds())

    def behaviour(self, role: Role) -> Behaviour:
        weight = self._observe_weight()
        return self.scenario.behaviour(role, weight, self.seconds_at_weight())

    def metrics_down(self) -> bool:
        weight = self._observe_weight()
        if self._canary_started is None:
            return False
        since = (self.clock.now() - self._canary_started).total_seconds()
        return self.scenario.metrics_down(weight, since)

    def _init_series(self, role: Role) -> None:
        # Export zeros up front so a version with no errors yet reads 0 %, not "absent".
        labels = {"service": self.service, "namespace": self.namespace, "version": self.versions[role]}
        for code in ("200", "500"):
            self.requests.labels(code=code, **labels)
        self.latency.labels(**labels)

    async def _generate(self) -> None:
        last = self.clock.now()
        while True:
            await self.clock.sleep(self.tick_s)
            now = self.clock.now()
            elapsed = max(0.0, (now - last).total_seconds())
            last = now
            self.tick(elapsed)

    def tick(self, elapsed_s: float) -> None:
        """Serve ``elapsed_s`` clock seconds worth of requests (public so tests can drive it)."""
        weight = self._observe_weight()
        total = self.scenario.requests_per_second * elapsed_s
        shares: dict[Role, float] = {
            "canary": total * weight / 100.0,
            "stable": total * (100 - weight) / 100.0,
        }
        for role, share in shares.items():
            due = share + self._carry[role]
            count = int(due)
            self._carry[role] = due - count
            if count:
                self._serve(role, count)

    def _serve(self, role: Role, count: int) -> None:
        behaviour = self.behaviour(role)
        if role == "canary" and self.first_fault_at is None and behaviour != BASELINE:
            self.first_fault_at = self.clock.now()
        labels = {"service": self.service, "namespace": self.namespace, "version": self.versions[role]}
        ok = self.requests.labels(code="200", **labels)
        failed = self.requests.labels(code="500", **labels)
        histogram = self.latency.labels(**labels)
        rng = self.rng
        errors = 0
        for _ in range(count):
            if rng.random() < behaviour.error_rate:
                errors += 1
            histogram.observe(sample_latency(behaviour, rng.random()))
        ok.inc(count - errors)
        if errors:
            failed.inc(errors)
        self.served[role] += count
        self.errors[role] += errors

    # --- HTTP ------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.metrics_down():
            return web.Response(status=503, text="metrics outage (scenario)\n")
        body = generate_latest(self.registry)
        if self.first_fault_at is not None and self.first_bad_scrape_wall is None:
            import time

            self.first_bad_scrape_wall = time.monotonic()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _health(self, request: web.Request, kind: str) -> tuple[Role | None, bool]:
        role = request.match_info["role"]
        if role not in ("stable", "canary"):
            return None, False
        if role == "stable":
            return "stable", self.behaviour("stable").healthy
        weight = self._observe_weight()  # first: a new step restarts the check count
        key = f"canary/{kind}"
        self._checks[key] = self._checks.get(key, 0) + 1
        ok = self.behaviour("canary").healthy and self.scenario.health_ok(weight, self._checks[key])
        return "canary", ok

    async def _live(self, request: web.Request) -> web.Response:
        from aiohttp import web

        role, ok = self._health(request, "live")
        if role is None:
            return web.json_response({"error": "unknown role; use stable or canary"}, status=404)
        body = {"status": "ok" if ok else "failing", "version": self.versions[role]}
        return web.json_response(body, status=200 if ok else 503)

    async def _ready(self, request: web.Request) -> web.Response:
        from aiohttp import web

        role, ok = self._health(request, "ready")
        if role is None:
            return web.json_response({"error": "unknown role; use stable or canary"}, status=404)
        dependencies = {"database": True, "cache": True, "queue": ok}
        body = {
            "status": "ready" if ok else "not ready",
            "version": self.versions[role],
            "dependencies": {k: "ok" if v else "failing" for k, v in dependencies.items()},
        }
        return web.json_response(body, status=200 if ok else 503)
