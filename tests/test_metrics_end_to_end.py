"""Fault in the workload → real Prometheus scrape → PromQL → the workflow's rollback rule.

The workload runs on a ScaledClock (its scenario's "60 s at 25 %" passes in a few
real seconds); Prometheus scrapes it every second; the analysis reads through
:class:`PrometheusMetrics` and judges with :func:`core.analysis.judge`, exactly
what the engine does each interval. Waits poll with deadlines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from core.adapters.prometheus import PrometheusMetrics
from core.analysis import Judgement, TriggerState, judge
from core.clock import ScaledClock
from core.domain import CanaryMetrics
from core.plan import AnalysisSpec, PrometheusSpec, QueriesSpec
from core.sim.monitoring import PrometheusServer
from core.sim.scenarios import Scenario, get_scenario
from core.sim.workload import SimWorkload
from tests.tolerances import error_rate_tolerance

pytestmark = pytest.mark.real

SPEED = 20.0
WINDOW_WALL_S = 3.0
RPS = 1000.0  # per clock second: at 5 % a window holds ~3000 canary requests, enough to resolve 0.5 pp


def _scenario(name: str) -> Scenario:
    return get_scenario(name).model_copy(update={"requests_per_second": RPS})


def _setup(
    service: str, scenario: Scenario, weight: dict[str, int], url: str
) -> tuple[SimWorkload, PrometheusMetrics]:
    clock = ScaledClock(SPEED)
    workload = SimWorkload(
        scenario,
        service=service,
        namespace="prod",
        stable_version="1.4.2",
        canary_version="1.5.0",
        weight=lambda: weight["w"],
        clock=clock,
        seed=3,
    )
    metrics = PrometheusMetrics(
        PrometheusSpec(url=url, timeout=2, retries=0),
        service=service,
        namespace="prod",
        canary_version="1.5.0",
        baseline_version="1.4.2",
        queries=QueriesSpec(),
        min_requests=50,
        clock=clock,
    )
    return workload, metrics


class Loop:
    """The engine's per-interval read-and-judge, recording what it saw."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self.metrics = metrics
        self.spec = AnalysisSpec()
        self.state = TriggerState()
        self.seen: list[tuple[CanaryMetrics, Judgement]] = []

    async def step(self) -> tuple[CanaryMetrics, Judgement]:
        read = await self.metrics.canary_metrics(WINDOW_WALL_S * SPEED)
        result = (read, judge(read, None, self.spec, self.state))
        self.seen.append(result)
        return result

    async def until(
        self, done: Callable[[CanaryMetrics, Judgement], bool], timeout_s: float, what: str
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            read, judgement = await self.step()
            if done(read, judgement):
                return read, judgement
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last: {self.seen[-1] if self.seen else None}")


async def _scraped(server: PrometheusServer, workload: SimWorkload) -> None:
    server.add_target(workload.target)
    await asyncio.to_thread(server.wait_for_up, workload.target)
    await asyncio.to_thread(server.wait_for_scrapes, workload.target, int(WINDOW_WALL_S) + 1)


async def test_bad_canary_error_delta_fires_after_the_fault(prometheus_server: PrometheusServer) -> None:
    weight = {"w": 5}
    workload, metrics = _setup("checkout", _scenario("bad-canary"), weight, prometheus_server.url)
    await workload.start()
    loop = Loop(metrics)
    try:
        await _scraped(prometheus_server, workload)
        read, judgement = await loop.step()
        assert judgement.verdict == "healthy", (read, judgement)

        weight["w"] = 25
        switched = time.monotonic()
        # before the fault (60 clock s = 3 real s at 25 %) nothing may fire
        read, judgement = await loop.until(
            lambda r, j: j.verdict == "fired", 25, "the error-rate rule to fire"
        )
        fired_after = time.monotonic() - switched
        assert workload.first_fault_at is not None
        assert fired_after > 60 / SPEED, "fired before the fault began"
        assert [r.rule for r in judgement.fired] == ["error_rate"]
        early = [j for _, j in loop.seen[:-1] if j.verdict == "fired"]
        assert early == []
        # detection: fault start + at most ~one window + scrape lag + interval
        assert fired_after - 60 / SPEED < 10

        # once the window holds only faulty traffic the reading matches the injected rates
        fault_full = switched + 60 / SPEED + WINDOW_WALL_S + 1.5
        await asyncio.sleep(max(0.0, fault_full - time.monotonic()))
        read, _ = await loop.step()
        assert read.canary.error_rate == pytest.approx(
            0.032, abs=error_rate_tolerance(0.032, read.canary.requests)
        )
        assert read.baseline.error_rate == pytest.approx(
            0.004, abs=error_rate_tolerance(0.004, read.baseline.requests)
        )
        assert read.canary.p99 == pytest.approx(0.18, rel=0.25)
        assert read.baseline.p99 == pytest.approx(0.18, rel=0.25)
    finally:
        prometheus_server.remove_target(workload.target)
        await workload.stop()
        await metrics.close()


async def test_slow_canary_p99_matches_the_injected_latency(prometheus_server: PrometheusServer) -> None:
    weight = {"w": 50}
    scenario = _scenario("slow-canary")
    workload, metrics = _setup("payments", scenario, weight, prometheus_server.url)
    await workload.start()
    loop = Loop(metrics)
    try:
        await _scraped(prometheus_server, workload)
        read, judgement = await loop.until(
            lambda r, j: j.verdict == "fired" and r.canary.p99 is not None and r.canary.p99 > 0.3,
            25,
            "the p99 rule to fire on a fully slow window",
        )
        assert "p99_latency" in [r.rule for r in judgement.fired]
        injected = scenario.behaviour("canary", 50, 1e6).p99_s
        assert read.canary.p99 == pytest.approx(injected, rel=0.25)
        assert read.baseline.p99 == pytest.approx(0.18, rel=0.25)
    finally:
        prometheus_server.remove_target(workload.target)
        await workload.stop()
        await metrics.close()


async def test_healthy_canary_never_exceeds_the_error_delta(prometheus_server: PrometheusServer) -> None:
    weight = {"w": 25}
    workload, metrics = _setup("catalog", _scenario("healthy"), weight, prometheus_server.url)
    await workload.start()
    loop = Loop(metrics)
    try:
        await _scraped(prometheus_server, workload)
        for _ in range(12):
            read, judgement = await loop.step()
            assert judgement.verdict == "healthy", (read, judgement)
            error = next(r for r in judgement.readings if r.rule == "error_rate")
            assert error.value is not None and error.value <= 0.5
            await asyncio.sleep(0.25)
    finally:
        prometheus_server.remove_target(workload.target)
        await workload.stop()
        await metrics.close()


async def test_prometheus_stopped_mid_canary_is_no_data_unreachable(
    prometheus_factory: Callable[[list[str]], PrometheusServer],
) -> None:
    weight = {"w": 25}
    workload, _ = _setup("search", _scenario("healthy"), weight, "http://unused")
    await workload.start()
    try:
        server = await asyncio.to_thread(prometheus_factory, [workload.target])
        _, metrics = _setup("search", _scenario("healthy"), weight, server.url)
        metrics.clock = workload.clock
        loop = Loop(metrics)
        await asyncio.to_thread(server.wait_for_up, workload.target)
        await asyncio.to_thread(server.wait_for_scrapes, workload.target, int(WINDOW_WALL_S) + 1)
        read, judgement = await loop.step()
        assert judgement.verdict == "healthy", (read, judgement)

        await asyncio.to_thread(server.stop)
        read, judgement = await loop.step()
        assert judgement.verdict == "no_data"
        assert read.reason is not None and "unreachable (Connection refused)" in read.reason
        assert read.canary.error_rate is None and read.canary.p99 is None
        assert judgement.no_data_reason is not None and "unreachable" in judgement.no_data_reason
        await metrics.close()
    finally:
        await workload.stop()


# --- the engine itself, judging through real PromQL ------------------------------------------


def _short_plan(scenario: str) -> Any:
    """The demo plan with windows short enough for a test at ENGINE_SPEED."""
    from core.plan import CanarySpec, CanaryStep, ErrorBudgetSpec, SoakSpec, StagingSpec
    from core.session import demo_plan

    plan = demo_plan(scenario)
    steps = [
        CanaryStep(weight=w, observe=observe) for w, observe in ((5, 60), (25, 300), (50, 60), (100, 60))
    ]
    return plan.model_copy(
        update={
            "staging": StagingSpec.model_validate(
                {
                    **plan.staging.model_dump(exclude={"soak", "new_errors_query"}),
                    "soak": SoakSpec(duration=60),
                    # nothing exports log lines here; the plan author states that absence means zero
                    "new_errors_query": (
                        'sum(increase(log_messages_total{namespace="shop-staging",level="error"}[15m]))'
                        " or vector(0)"
                    ),
                }
            ),
            "canary": CanarySpec(steps=steps, auto_promote=True),
            # the soak reads one interval of production traffic: 60 plan s = 3 real s = 3 scrapes
            "analysis": plan.analysis.model_copy(update={"interval": 60.0, "lookback": 60.0}),
            "verification": plan.verification.model_copy(update={"duration": 60.0}),
            # the simulated baseline errs 0.4 %: a 99.9 % objective would (rightly) block on real PromQL
            "gates": plan.gates.model_copy(update={"error_budget": ErrorBudgetSpec(objective=99.0)}),
        }
    )


ENGINE_SPEED = 20.0  # lookback 60 plan seconds = 3 real seconds = 3 scrapes


@pytest.mark.slow  # 24 s; test_verdicts_scenarios[prometheus-bad-canary] asserts the same rule and step
async def test_engine_rolls_back_bad_canary_on_real_promql(
    prometheus_server: PrometheusServer, tmp_path: Any
) -> None:
    from core.domain import Outcome
    from core.events import AnalysisSample, RollbackTriggered
    from core.session import open_session

    plan = _short_plan("bad-canary")
    clock = ScaledClock(ENGINE_SPEED)
    session = await open_session(
        plan,
        actor="tester",
        clock=clock,
        scenario="bad-canary",
        interactive=False,
        approvals=[m.id for m in plan.gates.manual],
        journal_path=tmp_path / "deployments.jsonl",
    )
    production = session.world.production
    workload = SimWorkload(
        _scenario("bad-canary"),
        service=plan.service,
        namespace=plan.targets.production.namespace,
        stable_version=plan.version.from_,
        canary_version=plan.version.to,
        weight=production.new_version_share,  # type: ignore[attr-defined]
        clock=clock,
    )
    await workload.start()
    metrics = PrometheusMetrics(
        PrometheusSpec(url=prometheus_server.url, timeout=2, retries=1),
        service=plan.service,
        namespace=plan.targets.production.namespace,
        canary_version=plan.version.to,
        baseline_version=plan.version.from_,
        queries=plan.analysis.queries,
        min_requests=plan.analysis.min_requests,
        clock=clock,
    )
    session.world.metrics = metrics
    try:
        await _scraped(prometheus_server, workload)
        outcome = await asyncio.wait_for(session.rollout.run(), timeout=60)
        events = session.rollout.events
        assert outcome == Outcome.ROLLED_BACK
        (trigger,) = [e for e in events if isinstance(e, RollbackTriggered)]
        assert trigger.automatic and trigger.rule == "error_rate"
        assert trigger.weight_at_trigger == 25
        canary_samples = [
            e for e in events if isinstance(e, AnalysisSample) and e.canary_error_rate is not None
        ]
        assert canary_samples, "the charts got numbers from PromQL"
        assert max(e.canary_error_rate or 0 for e in canary_samples) > 1.0  # percent, from the 3.2 % fault
        assert workload.first_fault_at is not None
    finally:
        prometheus_server.remove_target(workload.target)
        await workload.stop()
        await session.close()
