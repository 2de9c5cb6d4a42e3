"""`deploydeck demo --prometheus`: judge the simulated workload through a real Prometheus.

The workload serves real `/metrics`; a Prometheus of our own scrapes it every second
and the analysis reads it through the real adapter and real PromQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from core.clock import Clock
from core.plan import Plan, PrometheusSpec
from core.ports import Metrics
from core.sim.scenarios import Scenario


class _PrometheusDemo:
    def __init__(self, workload: object, server: object, metrics: object, workdir: Path) -> None:
        self.workload, self.server, self.metrics, self.workdir = workload, server, metrics, workdir

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.metrics.close()  # type: ignore[attr-defined]
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
    plan: Plan, scenario: Scenario, traffic: object, clock: Clock
) -> tuple[Metrics | None, str, object | None]:
    """(metrics, note for the person, closer). Without the binary: (None, why, None)."""
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
    )
    await workload.start()
    _sweep_orphaned_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix=f"deploydeck-prom-{os.getpid()}-"))
    server = PrometheusServer(binary, workdir)
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
    metrics = PrometheusMetrics(
        PrometheusSpec(url=server.url, timeout=5.0, retries=1),
        service=plan.service,
        namespace=plan.targets.production.namespace,
        canary_version=plan.version.to,
        baseline_version=plan.version.from_,
        queries=plan.analysis.queries,
        min_requests=plan.analysis.min_requests,
        clock=clock,
        # the server below scrapes every 1 s: windows scaled by the demo speed never go below 4 s
        scrape_interval_s=1.0,
    )
    note = f"real Prometheus at {server.url} scraping the simulated workload at {workload.target} every 1 s"
    return metrics, note, _PrometheusDemo(workload, server, metrics, workdir)
