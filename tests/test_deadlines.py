"""Every outside call has a total deadline (issue 11, item 5): a peer dribbling 1 byte/s is an error in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from core.adapters.webhook import WebhookNotifier
from core.clock import SystemClock
from core.domain import Notification
from core.plan import WebhookSpec


@pytest.fixture
async def dribbling_url() -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 that answers 200 one byte a second (30 bytes)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=200, headers={"Content-Length": "30"})
        await response.prepare(request)
        for _ in range(30):
            await response.write(b"x")
            await asyncio.sleep(1.0)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


async def test_a_webhook_dribbling_one_byte_a_second_fails_within_its_deadline(dribbling_url: str) -> None:
    notifier = WebhookNotifier(
        [WebhookSpec(url=dribbling_url, kind="json", name="team")],
        clock=SystemClock(),
        timeout_s=1.5,
        retries=0,
    )
    started = time.monotonic()
    results = await asyncio.wait_for(notifier.notify(Notification(title="t", text="x")), 10)
    elapsed = time.monotonic() - started
    assert len(results) == 1 and not results[0].delivered
    assert "timed out after 1.5s" in results[0].detail
    assert elapsed < 3.0  # the total deadline, not 30 s of per-read timeouts


async def test_a_prometheus_dribbling_one_byte_a_second_is_no_data_within_its_deadline(
    dribbling_url: str,
) -> None:
    from core.adapters.prometheus import PrometheusMetrics
    from core.plan import PrometheusSpec, QueriesSpec

    metrics = PrometheusMetrics(
        PrometheusSpec(url=dribbling_url.removesuffix("/hook"), timeout=1.5, retries=0),
        service="web",
        namespace="prod",
        canary_version="1.1",
        baseline_version="1.0",
        queries=QueriesSpec(),
        min_requests=10,
        clock=SystemClock(),
    )
    started = time.monotonic()
    reading = await asyncio.wait_for(metrics.canary_metrics(60.0), 10)
    elapsed = time.monotonic() - started
    assert reading.reason is not None and "timed out after 1.5s" in reading.reason
    assert reading.canary.reason is not None  # no data, never a healthy zero
    assert elapsed < 3.0
    await metrics.close()


async def test_a_health_probe_and_alertmanager_dribbling_one_byte_a_second_fail_in_time(
    dribbling_url: str,
) -> None:
    from core.adapters.alertmanager import AlertmanagerAlerts
    from core.adapters.http_probe import HttpProbe
    from core.plan import AlertmanagerSpec
    from core.ports import PortError

    probe = HttpProbe()
    started = time.monotonic()
    result = await asyncio.wait_for(probe.check(dribbling_url, timeout_s=1.5), 10)
    assert not result.ok and "timed out after 1.5s" in result.detail
    assert time.monotonic() - started < 3.0
    await probe.close()

    alerts = AlertmanagerAlerts(AlertmanagerSpec(url=dribbling_url.removesuffix("/hook"), timeout=1.5))
    started = time.monotonic()
    with pytest.raises(PortError, match=r"timed out after 1.5s"):
        await asyncio.wait_for(alerts.active_alerts(), 10)
    assert time.monotonic() - started < 3.0
    await alerts.close()


async def test_github_dribbling_one_byte_a_second_fails_in_time(dribbling_url: str) -> None:
    from core.adapters.github import GitHubCodeHost
    from core.ports import PortError

    host = GitHubCodeHost(dribbling_url.removesuffix("/hook"), "tok", timeout_s=1.5)
    started = time.monotonic()
    with pytest.raises(PortError, match=r"timed out after 1.5s"):
        await asyncio.wait_for(host.checks("shop/web", "abc123"), 10)
    assert time.monotonic() - started < 3.0
    await host.close()
