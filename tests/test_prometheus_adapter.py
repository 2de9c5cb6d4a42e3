"""Prometheus adapter: PromQL rendering, transport failures, and real reads from a real Prometheus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from core.adapters.prometheus import PrometheusMetrics, redact_url
from core.clock import ScaledClock, SystemClock, VirtualClock
from core.plan import PrometheusSpec, QueriesSpec
from core.ports import Metrics
from core.sim.monitoring import PrometheusServer, free_port
from core.sim.scenarios import get_scenario
from core.sim.workload import SimWorkload
from tests.tolerances import error_rate_tolerance


def _adapter(url: str, *, clock: Any = None, min_requests: int = 50, **spec: Any) -> PrometheusMetrics:
    return PrometheusMetrics(
        PrometheusSpec(url=url, **spec),
        service="shop",
        namespace="prod",
        canary_version="1.5.0",
        baseline_version="1.4.2",
        queries=QueriesSpec(),
        min_requests=min_requests,
        clock=clock or VirtualClock(),
    )


# --- PromQL rendering ----------------------------------------------------------------------


def test_one_query_carries_every_metric_for_both_versions() -> None:
    m = _adapter("http://prom:9090")
    assert isinstance(m, Metrics)
    q = m.batched_query(60)
    for name in ("requests", "error_rate", "p50", "p95", "p99"):
        assert f'"dd_metric", "{name}"' in q
    assert 'version=~"1\\\\.5\\\\.0|1\\\\.4\\\\.2"' in q
    assert "[60000ms]" in q
    assert "histogram_quantile(0.99," in q and "histogram_quantile(0.5," in q
    assert "$" not in q


def test_custom_templates_keep_one_round_trip_and_fix_version_matchers() -> None:
    m = _adapter("http://prom:9090")
    m.queries = QueriesSpec(
        requests='sum(increase(req_total{app="$service",version="$version"}[$window]))',
        error_rate='sum by (version) (rate(errs{app="$service",version="$version"}[$window]))',
    )
    q = m.batched_query(30)
    # not grouped by version: evaluated per version, the label put back
    assert (
        'label_replace(sum(increase(req_total{app="shop",version=~"1\\\\.5\\\\.0"}[30000ms])), "version", "1.5.0"'
        in q
    )
    # grouped: one selector for both versions, with =~ instead of the template's =
    assert 'errs{app="shop",version=~"1\\\\.5\\\\.0|1\\\\.4\\\\.2"}' in q


def test_window_follows_the_scaled_clock_and_labels_are_escaped() -> None:
    m = _adapter("http://prom:9090", clock=ScaledClock(10))
    assert "[6000ms]" in m.batched_query(60)
    m.service = 'we"ird'
    assert 'service="we\\"ird"' in m.batched_query(60)


def test_redact_url_keeps_scheme_and_host_only() -> None:
    assert redact_url("https://user:tok@prom.example.com:9443/prefix?x=1") == "https://prom.example.com:9443"


# --- transport, auth and failure reasons against a local fake --------------------------------


class FakePrometheus:
    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.status = 200
        self.body: Any = {"status": "success", "data": {"resultType": "vector", "result": []}}
        self.delay_s = 0.0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if isinstance(self.body, str):
            return web.Response(status=self.status, text=self.body)
        return web.json_response(self.body, status=self.status)


@pytest.fixture
async def fake_prometheus() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus()
    app = web.Application()
    app.router.add_route("*", "/api/v1/query", fake.handle)
    app.router.add_route("*", "/api/v1/query_range", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield fake
    await runner.cleanup()


async def test_bearer_token_is_sent_and_never_reported(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.status = 503
    fake_prometheus.body = "upstream down"
    m = _adapter(fake_prometheus.url, token="t0ken-xyz", retries=2)
    result = await m.canary_metrics(60)
    assert result.reason == (
        f"no data: Prometheus at {fake_prometheus.url} answered HTTP 503: upstream down (after 3 attempts)"
    )
    assert result.canary.error_rate is None and result.baseline.p99 is None
    assert "t0ken" not in result.model_dump_json()
    assert m.round_trips == 3
    assert [r.headers["Authorization"] for r in fake_prometheus.requests] == ["Bearer t0ken-xyz"] * 3
    await m.close()


async def test_basic_auth_and_single_request_per_interval(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"version": v, "dd_metric": k}, "value": [1, str(val)]}
                for v, vals in {
                    "1.5.0": {"requests": 400, "error_rate": 0.03, "p50": 0.04, "p95": 0.1, "p99": 0.3},
                    "1.4.2": {"requests": 1200, "error_rate": 0.004, "p50": 0.04, "p95": 0.1, "p99": 0.18},
                }.items()
                for k, val in vals.items()
            ],
        },
    }
    m = _adapter(fake_prometheus.url, username="ops", password="pw")
    result = await m.canary_metrics(30)
    assert len(fake_prometheus.requests) == 1
    assert fake_prometheus.requests[0].headers["Authorization"].startswith("Basic ")
    assert result.reason is None
    assert result.canary.error_rate == 0.03 and result.canary.p99 == 0.3 and result.canary.requests == 400
    assert result.baseline.p99 == 0.18 and result.baseline.reason is None
    await m.close()


async def test_promql_error_returns_prometheus_message_without_retrying(
    fake_prometheus: FakePrometheus,
) -> None:
    fake_prometheus.status = 400
    fake_prometheus.body = {
        "status": "error",
        "errorType": "bad_data",
        "error": "1:5: parse error: unexpected",
    }
    m = _adapter(fake_prometheus.url, retries=3)
    result = await m.query("sum(")
    assert result.value is None
    assert result.reason == (
        f"no data: PromQL error from Prometheus at {fake_prometheus.url}: bad_data: 1:5: parse error: unexpected"
    )
    assert len(fake_prometheus.requests) == 1
    await m.close()


async def test_non_prometheus_answer_and_timeout_are_distinct(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.body = "<html>please log in</html>"
    m = _adapter(fake_prometheus.url, retries=0)
    assert (await m.query("up")).reason == (
        f"no data: Prometheus at {fake_prometheus.url} answered without a Prometheus API response"
    )
    fake_prometheus.delay_s = 1.0
    slow = _adapter(fake_prometheus.url, retries=0, timeout=0.2)
    assert (
        await slow.query("up")
    ).reason == f"no data: Prometheus at {fake_prometheus.url} timed out after 0.2s"
    await m.close()
    await slow.close()


async def test_too_few_requests_and_missing_version_are_no_data(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"version": "1.5.0", "dd_metric": "requests"}, "value": [1, "12"]},
                {"metric": {"version": "1.5.0", "dd_metric": "error_rate"}, "value": [1, "0"]},
            ],
        },
    }
    m = _adapter(fake_prometheus.url, min_requests=50)
    result = await m.canary_metrics(30)
    assert result.canary.requests == 12 and result.canary.error_rate is None
    assert result.canary.reason == (
        "no data: 1.5.0 served 12 requests in the window, fewer than the minimum 50"
    )
    assert (
        result.baseline.reason
        == "no data: empty result for version 1.4.2 (service shop, namespace prod, window 30000ms)"
    )
    await m.close()


async def test_connection_refused_is_unreachable() -> None:
    m = _adapter(f"http://127.0.0.1:{free_port()}", retries=1)
    result = await m.canary_metrics(30)
    assert result.reason is not None
    assert "unreachable (Connection refused) (after 2 attempts)" in result.reason
    assert result.canary.error_rate is None
    await m.close()


# --- a real Prometheus scraping the simulated workload ----------------------------------------


def _workload(service: str, scenario: str, weight: int, clock: Any) -> SimWorkload:
    return SimWorkload(
        get_scenario(scenario),
        service=service,
        namespace="prod",
        stable_version="1.4.2",
        canary_version="1.5.0",
        weight=lambda: weight,
        clock=clock,
        seed=11,
    )


async def _poll(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


@pytest.mark.real
async def test_real_prometheus_reads_match_the_workload(prometheus_server: PrometheusServer) -> None:
    speed = 5.0
    clock = ScaledClock(speed)
    busy = _workload("shop", "healthy", 25, clock)
    idle = _workload("idle", "healthy", 0, clock)
    await busy.start()
    await idle.start()
    try:
        prometheus_server.add_target(busy.target)
        prometheus_server.add_target(idle.target)
        await asyncio.to_thread(prometheus_server.wait_for_up, busy.target)
        await asyncio.to_thread(prometheus_server.wait_for_up, idle.target)
        m = _adapter(prometheus_server.url, clock=clock)
        window = 4 * speed  # 4 real seconds
        per_second = get_scenario("healthy").requests_per_second * speed

        # a full window of scrapes (plus one) before reading
        await asyncio.to_thread(prometheus_server.wait_for_scrapes, busy.target, 6)
        r = await m.canary_metrics(window)
        # 25 % of the traffic over 4 s
        assert r.canary.requests == pytest.approx(per_second, rel=0.15)
        assert r.baseline.requests == pytest.approx(3 * per_second, rel=0.15)
        for version, side in (("1.5.0", r.canary), ("1.4.2", r.baseline)):
            # the tolerance rests on the requests the ratio was computed from: the counters' growth
            # between the first and last scrape in the window. `requests` is rate() extrapolated to
            # the whole window, more than that when a loaded box scrapes late (then fewer land in it)
            series = f'http_requests_total{{service="shop",version="{version}"}}[{window / speed:g}s]'
            grown = await m.query(f"sum(max_over_time({series}) - min_over_time({series}))")
            trials = min(side.requests or 0.0, grown.value or 0.0)
            assert side.error_rate == pytest.approx(0.004, abs=error_rate_tolerance(0.004, trials)), (
                version,
                side.requests,
                grown.value,
            )
            assert side.p50 == pytest.approx(0.040, rel=0.2)
            assert side.p99 == pytest.approx(0.180, rel=0.2)

        history = await m.range_history(
            datetime.now(UTC) - timedelta(seconds=5), datetime.now(UTC), 1.0, window_s=3.0
        )
        assert len(history) >= 4
        assert [h.at for h in history] == sorted(h.at for h in history)
        p99s = [h.canary.p99 for h in history if h.canary.p99 is not None]
        assert len(p99s) >= 3
        assert sorted(p99s)[len(p99s) // 2] == pytest.approx(0.18, rel=0.3)

        # NaN: a version whose series exist but served nothing
        nan = _adapter(prometheus_server.url, clock=clock, min_requests=0)
        nan.service = "idle"
        r_idle = await nan.canary_metrics(window)
        assert r_idle.canary.requests == 0
        assert r_idle.canary.error_rate is None
        assert r_idle.canary.reason == "no data: 1.5.0: error_rate is NaN, p50 is NaN, p95 is NaN, p99 is NaN"
        assert (await nan.query("0/0")).reason == "no data: the result is NaN"

        # empty: nothing carries these labels
        ghost = _adapter(prometheus_server.url, clock=clock)
        ghost.service = "ghost"
        r_ghost = await ghost.canary_metrics(window)
        assert (
            r_ghost.canary.reason
            == "no data: empty result for version 1.5.0 (service ghost, namespace prod, window 4000ms)"
        )
        assert (await ghost.query('up{job="nope"}')).reason == "no data: the query returned no series"

        # a PromQL mistake in a plan template names the template
        broken = _adapter(prometheus_server.url, clock=clock)
        broken.queries = QueriesSpec(error_rate="sum by (version) (rate(x[$window])")
        r_broken = await broken.canary_metrics(window)
        assert r_broken.reason is not None
        assert r_broken.reason.startswith(f"no data: PromQL error from Prometheus at {prometheus_server.url}")
        assert "parse error" in r_broken.reason
        assert r_broken.reason.endswith("(in the 'error_rate' query)")

        assert (await m.query(f'up{{instance="{busy.target}"}}')).value == 1.0
        for adapter in (m, nan, ghost, broken):
            await adapter.close()
    finally:
        prometheus_server.remove_target(busy.target)
        prometheus_server.remove_target(idle.target)
        await busy.stop()
        await idle.stop()


def test_system_clock_window_is_not_rescaled() -> None:
    m = _adapter("http://prom:9090", clock=SystemClock())
    assert "[30000ms]" in m.batched_query(30)
