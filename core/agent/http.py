"""The agent's plain-HTTP endpoints: ``/healthz``, ``/readyz`` and Prometheus ``/metrics``.

Liveness says the process answers and its watch loop has not died; readiness says the agent has
listed DeployRuns and its watch is current, so a Service sends nobody to a replica that knows
nothing yet. Nothing here acts on a DeployRun: commands (signoff, proceed, rollback...) will come
over an authenticated HTTPS API, not this port.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from core.domain import Phase


class AgentMetrics:
    """The agent's Prometheus series, in a registry of its own (not the process-global one, so two
    agents in one test process do not share counts)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs_in_flight = Gauge(
            "deploydeck_runs_in_flight",
            "DeployRuns not yet finished, by phase (pending: no status written yet)",
            ["phase"],
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "deploydeck_rollbacks",
            "Rollbacks this agent triggered, by the rule that fired",
            ["rule"],
            registry=self.registry,
        )
        self.lease_transitions = Counter(
            "deploydeck_lease_transitions",
            "Lease changes seen by this agent: acquired, lost, released",
            ["transition"],
            registry=self.registry,
        )
        self.analysis_read_seconds = Histogram(
            "deploydeck_analysis_read_seconds",
            "Time to read one analysis interval's metrics",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.watch_events = Counter(
            "deploydeck_deployrun_watch_events",
            "DeployRun changes received from the API server, by type",
            ["type"],
            registry=self.registry,
        )
        # every phase is present from the start, so a dashboard shows 0 rather than no data
        for phase in (*IN_FLIGHT, "pending"):
            self.runs_in_flight.labels(phase=phase).set(0)

    def set_in_flight(self, counts: dict[str, int]) -> None:
        for phase in (*IN_FLIGHT, "pending"):
            self.runs_in_flight.labels(phase=phase).set(counts.get(phase, 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


#: phases a run can be in while it is not finished
IN_FLIGHT = tuple(
    p.value
    for p in (
        Phase.PREFLIGHT,
        Phase.MIGRATIONS,
        Phase.STAGING,
        Phase.CANARY,
        Phase.VERIFY,
        Phase.PAUSED,
        Phase.ROLLING_BACK,
    )
)


@dataclass
class Health:
    """What the probes ask. Each callable returns "" when fine, else the reason (shown in the body)."""

    live: Callable[[], str] = lambda: ""
    ready: Callable[[], str] = lambda: "starting"
    details: dict[str, str] = field(default_factory=dict)


def make_app(health: Health, metrics: AgentMetrics) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        problem = health.live()
        return web.Response(status=503 if problem else 200, text=(problem or "ok") + "\n")

    async def readyz(_: web.Request) -> web.Response:
        problem = health.ready()
        return web.Response(status=503 if problem else 200, text=(problem or "ready") + "\n")

    async def metrics_handler(_: web.Request) -> web.Response:
        body = metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app


async def serve(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 5.0
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (``await runner.cleanup()`` to stop) and the bound port.

    ``shutdown_timeout``: how long cleanup waits for open requests; aiohttp's 60 s default is
    longer than a Pod's termination grace period, and a scrape is never worth that wait."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []  # port 0: the one the OS chose
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


class ApiMetrics:
    """The API server's series (core.agent.api), registered next to the agent's own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "deploydeck_api_requests",
            "API requests answered, by endpoint and HTTP status",
            ["endpoint", "code"],
            registry=registry,
        )
        self.commands = Counter(
            "deploydeck_api_commands",
            "Commands received, by verb and result: ok, refused (by the engine), forbidden (by RBAC)",
            ["verb", "result"],
            registry=registry,
        )
        self.forwarded = Counter(
            "deploydeck_api_forwarded",
            "Requests forwarded to the replica driving the run, by endpoint",
            ["endpoint"],
            registry=registry,
        )
        self.stream_clients = Gauge(
            "deploydeck_api_stream_clients",
            "Event streams open on this replica",
            registry=registry,
        )
        self.reviews = Histogram(
            "deploydeck_api_review_seconds",
            "TokenReview and SubjectAccessReview calls to the API server (cache misses), by kind",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.review_cache_hits = Counter(
            "deploydeck_api_review_cache_hits",
            "TokenReview and SubjectAccessReview answers served from the short cache, by kind",
            ["kind"],
            registry=registry,
        )

    def observe_review(self, kind: str, seconds: float, cached: bool) -> None:
        if cached:
            self.review_cache_hits.labels(kind=kind).inc()
        else:
            self.reviews.labels(kind=kind).observe(seconds)
