"""The simulated workload: traffic split, injected faults, health endpoints and /metrics text."""

from __future__ import annotations

import itertools
import random

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.clock import VirtualClock
from core.sim.scenarios import BASELINE, Fault, Scenario, get_scenario
from core.sim.workload import SimWorkload, sample_latency


def _workload(scenario: Scenario, weight: dict[str, int], clock: VirtualClock, seed: int = 7) -> SimWorkload:
    return SimWorkload(
        scenario,
        service="shop",
        namespace="prod",
        stable_version="1.4.2",
        canary_version="1.5.0",
        weight=lambda: weight["w"],
        clock=clock,
        seed=seed,
    )


def _families(text: str) -> dict[tuple[str, str, str], float]:
    """(sample name, version, code or le) -> value."""
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.labels.get("code") or s.labels.get("le") or ""
            out[(s.name, s.labels.get("version", ""), key)] = s.value
    return out


def test_latency_sampler_reproduces_the_injected_quantiles() -> None:
    rng = random.Random(1)
    values = sorted(sample_latency(BASELINE, rng.random()) for _ in range(100_000))
    assert values[50_000] == pytest.approx(BASELINE.p50_s, rel=0.02)
    assert values[95_000] == pytest.approx(BASELINE.p95_s, rel=0.02)
    assert values[99_000] == pytest.approx(BASELINE.p99_s, rel=0.02)


def test_traffic_split_follows_weight_and_rate_per_clock_second() -> None:
    clock = VirtualClock()
    weight = {"w": 25}
    scenario = get_scenario("healthy").model_copy(update={"requests_per_second": 40.0})
    wl = _workload(scenario, weight, clock)
    for _ in range(1000):
        wl.tick(0.1)  # 100 clock seconds at 40 rps
    assert wl.served["canary"] + wl.served["stable"] == pytest.approx(4000, abs=2)
    assert wl.served["canary"] == pytest.approx(1000, abs=2)
    weight["w"] = 0
    before = wl.served["canary"]
    wl.tick(10.0)
    assert wl.served["canary"] == before


async def test_fault_starts_after_time_at_weight_and_is_recorded() -> None:
    clock = VirtualClock(auto_advance=False)
    weight = {"w": 5}
    scenario = Scenario(
        name="t",
        title="t",
        expected="rolled_back",
        faults=(Fault(from_weight=25, after_s=60.0, error_rate=0.2),),
        requests_per_second=1000,
    )
    wl = _workload(scenario, weight, clock)
    wl.tick(10.0)
    assert wl.first_fault_at is None
    weight["w"] = 25
    wl.tick(1.0)  # notices the new weight: the 60 s start counting now
    await clock.advance(59)
    wl.tick(1.0)
    assert wl.first_fault_at is None
    canary_errors_before = wl.errors["canary"]
    await clock.advance(2)
    wl.tick(10.0)
    assert wl.first_fault_at == clock.now()
    errors = wl.errors["canary"] - canary_errors_before
    assert errors / 2500 == pytest.approx(0.2, abs=0.03)
    assert wl.errors["stable"] / wl.served["stable"] < 0.02


async def test_endpoints_serve_health_and_metrics_for_both_versions() -> None:
    clock = VirtualClock(auto_advance=False)
    weight = {"w": 50}
    wl = _workload(get_scenario("healthy").model_copy(update={"requests_per_second": 40.0}), weight, clock)
    base = await wl.start()
    try:
        assert base.startswith("http://127.0.0.1:")
        wl.tick(5.0)
        async with httpx.AsyncClient() as client:
            for role in ("stable", "canary"):
                live = await client.get(wl.urls[f"{role}_live"])
                ready = await client.get(wl.urls[f"{role}_ready"])
                assert live.status_code == 200
                assert ready.status_code == 200
                assert ready.json()["dependencies"] == {"database": "ok", "cache": "ok", "queue": "ok"}
            assert (await client.get(f"{base}/nope/health/live")).status_code == 404
            text = (await client.get(wl.urls["metrics"])).text
        samples = _families(text)
        for version in ("1.4.2", "1.5.0"):
            total = (
                samples[("http_requests_total", version, "200")]
                + samples[("http_requests_total", version, "500")]
            )
            assert total == pytest.approx(100, abs=1)
            assert samples[("http_request_duration_seconds_count", version, "")] == pytest.approx(100, abs=1)
            assert ("http_request_duration_seconds_bucket", version, "0.18") in samples
        assert 'service="shop"' in text and 'namespace="prod"' in text
    finally:
        await wl.stop()


async def test_flaky_health_follows_the_scenario_and_restarts_per_step() -> None:
    clock = VirtualClock(auto_advance=False)
    weight = {"w": 50}
    scenario = get_scenario("flaky-health")
    wl = _workload(scenario, weight, clock)
    await wl.start()
    try:
        async with httpx.AsyncClient() as client:
            codes = [(await client.get(wl.urls["canary_ready"])).status_code for _ in range(8)]
            stable = [(await client.get(wl.urls["stable_ready"])).status_code for _ in range(4)]
            weight["w"] = 5  # a new step restarts the check count
            bodies = [await client.get(wl.urls["canary_ready"]) for _ in range(3)]
        expected = [200 if scenario.health_ok(50, n) else 503 for n in range(1, 9)]
        assert codes == expected
        assert any(a == b == 503 for a, b in itertools.pairwise(codes)), "two failures in a row"
        assert stable == [200] * 4
        assert [b.status_code for b in bodies] == [
            200 if scenario.health_ok(5, n) else 503 for n in (1, 2, 3)
        ]
        failing = [b.json() for b in bodies if b.status_code == 503]
        assert failing and failing[0]["dependencies"]["queue"] == "failing"
    finally:
        await wl.stop()


async def test_metrics_outage_answers_503_during_the_outage_window() -> None:
    clock = VirtualClock(auto_advance=False)
    weight = {"w": 5}
    wl = _workload(get_scenario("metrics-outage"), weight, clock)
    await wl.start()
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(wl.urls["metrics"])).status_code == 200
            await clock.advance(421)
            assert (await client.get(wl.urls["metrics"])).status_code == 503
    finally:
        await wl.stop()


async def test_new_canary_version_gets_its_own_series() -> None:
    clock = VirtualClock(auto_advance=False)
    wl = _workload(get_scenario("healthy"), {"w": 100}, clock)
    wl.set_canary_version("1.6.0")
    wl.tick(1.0)
    await wl.start()
    try:
        async with httpx.AsyncClient() as client:
            samples = _families((await client.get(wl.urls["metrics"])).text)
        assert samples[("http_requests_total", "1.6.0", "200")] > 0
        assert samples[("http_requests_total", "1.5.0", "200")] == 0
    finally:
        await wl.stop()


async def test_generator_runs_on_the_clock() -> None:
    clock = VirtualClock(auto_advance=False)
    wl = _workload(get_scenario("healthy").model_copy(update={"requests_per_second": 40.0}), {"w": 25}, clock)
    await wl.start()
    try:
        for _ in range(100):
            await clock.advance(0.1)
        assert wl.served["canary"] + wl.served["stable"] == pytest.approx(400, abs=8)
    finally:
        await wl.stop()
