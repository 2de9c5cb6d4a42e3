"""`deploydeck demo --prometheus`: judge the simulated workload through a real Prometheus.

The workload serves real `/metrics`; a Prometheus of our own scrapes it every second
and the analysis reads it through the real adapter and real PromQL.

Time (issue 14). Prometheus stamps every scrape with the wall clock; the demo's engine and
workload run on a ScaledClock. They agree when each plan-time window maps onto enough wall-time
scrapes: every analysis interval spans at least one scrape (each read sees new data) and every
read window at least MIN_SCRAPES (rate() and histogram_quantile() over it are stable). The
workload's counters advance per clock second, so rate() over ``lookback / speed`` wall seconds
is the same ratio the in-memory world computes over ``lookback`` clock seconds. The demo
therefore runs at the fastest speed that keeps both (30x for the built-in plan at a 1 s scrape)
and refuses a faster one; a VirtualClock ("as fast as possible") cannot be matched at all.

"Prometheus unreachable" (metrics-outage) is real too: the adapter talks to Prometheus through
a loopback gateway that refuses connections while the scenario's outage lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from core.clock import Clock
from core.plan import Plan, PrometheusSpec
from core.ports import Metrics
from core.sim.scenarios import Scenario

#: the demo's Prometheus scrapes every second (the benchmark's figure is for this interval)
SCRAPE_INTERVAL_S = 1.0


def prometheus_max_speed(plan: Plan, scrape_interval_s: float = SCRAPE_INTERVAL_S) -> float:
    """The fastest demo speed at which Prometheus keeps up with the plan's windows."""
    from core.adapters.prometheus import MIN_SCRAPES

    spec = plan.analysis
    return min(spec.interval / scrape_interval_s, spec.lookback / (MIN_SCRAPES * scrape_interval_s))


def prometheus_demo_speed(
    plan: Plan, requested: float | None, scrape_interval_s: float = SCRAPE_INTERVAL_S
) -> float:
    """The speed to run `demo --prometheus` at; ValueError (bad input) when asked to go faster.

    ``requested`` None or 0 (``--speed max``) means as fast as Prometheus allows.
    """
    fastest = prometheus_max_speed(plan, scrape_interval_s)
    if not requested:
        return fastest
    if requested > fastest:
        raise ValueError(
            f"--speed {requested:g} with --prometheus: the {plan.analysis.interval:g} s analysis interval "
            f"and {plan.analysis.lookback:g} s lookback must span at least 1 and 4 scrapes of "
            f"{scrape_interval_s:g} s; use --speed {fastest:g} or less"
        )
    return requested


class _Gateway:
    """Loopback TCP forwarder in front of Prometheus; refuses connections while ``down()``.

    The adapter then sees a real "connection refused", as with a Prometheus that went away.
    """

    def __init__(self, upstream_port: int, down: Callable[[], bool], clock: Clock, poll_s: float) -> None:
        from core.sim.monitoring import free_port

        self.upstream_port = upstream_port
        self.down = down
        self.clock = clock
        self.poll_s = poll_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._open()
        self._watch = asyncio.create_task(self._follow(), name="prometheus-gateway")

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._pipes):
            writer.close()  # kept-alive connections die with the outage too
        self._pipes.clear()

    async def _follow(self) -> None:
        while True:
            down = self.down()
            if down and self._server is not None:
                await self._close_server()
            elif not down and self._server is None:
                await self._open()
            await self.clock.sleep(self.poll_s)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._pipes.update({writer, up_writer})

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._pipes.difference_update({writer, up_writer})

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._close_server()


class _PrometheusDemo:
    def __init__(
        self, workload: object, server: object, metrics: object, workdir: Path, gateway: _Gateway
    ) -> None:
        self.workload, self.server, self.metrics, self.workdir = workload, server, metrics, workdir
        self.gateway = gateway

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.metrics.close()  # type: ignore[attr-defined]
        await self.gateway.stop()
        await self.workload.stop()  # type: ignore[attr-defined]
        await asyncio.to_thread(self.server.stop)  # type: ignore[attr-defined]
        shutil.rmtree(self.workdir, ignore_errors=True)


def _sweep_orphaned_workdirs() -> None:
    """Remove the Prometheus folders of demos that were killed outright (their Prometheus died
    with them, see monitoring.die_with_parent; a SIGKILL leaves no chance to clean up)."""
    for folder in Path(tempfile.gettempdir()).glob("deploydeck-prom-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and sys.platform.startswith("linux"):
            shutil.rmtree(folder, ignore_errors=True)


async def start_prometheus_metrics(
    plan: Plan,
    scenario: Scenario,
    traffic: object,
    clock: Clock,
    scrape_interval_s: float = SCRAPE_INTERVAL_S,
) -> tuple[Metrics | None, str, object | None]:
    """(metrics, note for the person, closer). Without the binary: (None, why, None).

    ValueError when ``clock`` runs faster than Prometheus can follow (see the module docstring).
    """
    from core.clock import VirtualClock

    speed = float(getattr(clock, "speed", 1.0))  # the system clock runs at 1x
    if isinstance(clock, VirtualClock):
        raise ValueError(
            "a real Prometheus scrapes on the wall clock: run the demo on a scaled clock "
            f"(at most --speed {prometheus_max_speed(plan, scrape_interval_s):g}), not in virtual time"
        )
    prometheus_demo_speed(plan, speed, scrape_interval_s)
    binary = shutil.which("prometheus")
    if binary is None:
        return (
            None,
            "prometheus is not installed (make real-deps): judging on in-process simulated metrics",
            None,
        )
    from core.adapters.prometheus import PrometheusMetrics
    from core.sim.monitoring import PrometheusServer
    from core.sim.workload import SimWorkload

    workload = SimWorkload(
        scenario,
        service=plan.service,
        namespace=plan.targets.production.namespace,
        stable_version=plan.version.from_,
        canary_version=plan.version.to,
        weight=traffic.new_version_share,  # type: ignore[attr-defined]
        clock=clock,
        seed=plan.seed,
        tick_s=scrape_interval_s * speed / 10,  # ten ticks a scrape: no lumpy steps, few wake-ups
    )
    await workload.start()
    _sweep_orphaned_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix=f"deploydeck-prom-{os.getpid()}-"))
    server = PrometheusServer(binary, workdir, scrape_interval_s=scrape_interval_s)
    server.targets = [workload.target]
    try:
        await asyncio.to_thread(server.start)
        # rate() needs a few scrapes before the first gate asks for it
        await asyncio.to_thread(server.wait_for_scrapes, workload.target, 3)
    except (RuntimeError, TimeoutError) as exc:
        await workload.stop()
        await asyncio.to_thread(server.stop)
        shutil.rmtree(workdir, ignore_errors=True)
        return None, f"Prometheus did not start ({exc}); judging on in-process simulated metrics", None
    gateway = _Gateway(server.port, workload.metrics_down, clock, poll_s=scrape_interval_s * speed / 4)
    await gateway.start()
    metrics = PrometheusMetrics(
        PrometheusSpec(url=gateway.url, timeout=5.0, retries=1),
        service=plan.service,
        namespace=plan.targets.production.namespace,
        canary_version=plan.version.to,
        baseline_version=plan.version.from_,
        queries=plan.analysis.queries,
        min_requests=plan.analysis.min_requests,
        clock=clock,
        # windows scaled by the demo speed never go below MIN_SCRAPES scrapes
        scrape_interval_s=scrape_interval_s,
    )
    note = (
        f"real Prometheus at {server.url} scraping the simulated workload at {workload.target} every "
        f"{scrape_interval_s:g} s; demo at {speed:g}x so each {plan.analysis.interval:g} s interval spans "
        f"{plan.analysis.interval / speed / scrape_interval_s:g} scrape(s)"
    )
    return metrics, note, _PrometheusDemo(workload, server, metrics, workdir, gateway)
