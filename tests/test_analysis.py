"""The workflow's rollback triggers at their exact boundaries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.analysis import TriggerState, judge, soak_judge, wilson_lower
from core.domain import CanaryMetrics, WorkloadSample
from core.plan import AnalysisSpec, TriggersSpec

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
SPEC = AnalysisSpec()


def metrics(
    canary_err: float = 0.004,
    base_err: float = 0.004,
    canary_p99: float = 0.2,
    base_p99: float = 0.2,
    requests: float = 10**10,  # the exact boundaries hold where the counts leave no doubt
) -> CanaryMetrics:
    return CanaryMetrics(
        canary=WorkloadSample(requests=requests, error_rate=canary_err, p99=canary_p99),
        baseline=WorkloadSample(requests=20000, error_rate=base_err, p99=base_p99),
        at=T0,
    )


@pytest.mark.parametrize(
    ("canary_err", "fires"),
    [(0.0089, False), (0.0090, False), (0.0091, True), (0.0040, False), (0.0500, True)],
)
def test_error_rate_delta_boundary(canary_err: float, fires: bool) -> None:
    # baseline 0.40 %: 0.89 % is +0.49 pp (stays), 0.90 % is exactly +0.50 pp (stays), 0.91 % is +0.51 pp (rolls back)
    result = judge(metrics(canary_err=canary_err), None, SPEC, TriggerState())
    reading = next(r for r in result.readings if r.rule == "error_rate")
    assert reading.fired is fires
    assert result.verdict == ("fired" if fires else "healthy")
    if fires:
        assert "pp >" in reading.text and "0.50 pp" in reading.text


@pytest.mark.parametrize(("ratio", "fires"), [(1.49, False), (1.50, False), (1.51, True), (2.2, True)])
def test_p99_ratio_boundary(ratio: float, fires: bool) -> None:
    result = judge(metrics(canary_p99=0.2 * ratio), None, SPEC, TriggerState())
    reading = next(r for r in result.readings if r.rule == "p99_latency")
    assert reading.fired is fires
    assert reading.value == pytest.approx(ratio)


def test_health_needs_two_consecutive_failures_and_a_pass_resets() -> None:
    state = TriggerState()
    verdicts = [judge(metrics(), ok, SPEC, state).verdict for ok in (False, True, False, True, False, False)]
    assert verdicts == ["healthy", "healthy", "healthy", "healthy", "healthy", "fired"]


def test_one_failed_health_check_stays() -> None:
    result = judge(metrics(), False, SPEC, TriggerState())
    health = next(r for r in result.readings if r.rule == "health")
    assert (health.value, health.fired, result.verdict) == (1.0, False, "healthy")


def test_too_few_canary_requests_is_no_data_never_healthy() -> None:
    result = judge(metrics(requests=12), None, SPEC, TriggerState())
    assert result.verdict == "no_data"
    assert "12 requests" in (result.no_data_reason or "")


def test_whole_read_failing_is_no_data_with_the_reason() -> None:
    failed = CanaryMetrics(
        canary=WorkloadSample(reason="unreachable"),
        baseline=WorkloadSample(reason="unreachable"),
        at=T0,
        reason="prometheus unreachable: connection refused",
    )
    result = judge(failed, None, SPEC, TriggerState())
    assert result.verdict == "no_data"
    assert "connection refused" in (result.no_data_reason or "")
    assert all(r.value is None for r in result.readings)


def test_missing_p99_alone_is_no_data() -> None:
    m = CanaryMetrics(
        canary=WorkloadSample(requests=500, error_rate=0.004, p99=None),
        baseline=WorkloadSample(requests=9000, error_rate=0.004, p99=0.2),
        at=T0,
    )
    assert judge(m, None, SPEC, TriggerState()).verdict == "no_data"


def test_health_fires_even_without_metrics() -> None:
    state = TriggerState()
    judge(None, False, SPEC, state)
    assert judge(None, False, SPEC, state).verdict == "fired"


def test_consecutive_requirement_for_error_rule() -> None:
    spec = AnalysisSpec(triggers=TriggersSpec(error_consecutive=2))
    state = TriggerState()
    assert judge(metrics(canary_err=0.02), None, spec, state).verdict == "healthy"
    assert judge(metrics(canary_err=0.02), None, spec, state).verdict == "fired"


def test_soak_limit_is_strict_below() -> None:
    base = WorkloadSample(requests=5000, error_rate=0.004)
    # counts unknown: the plain rule (with counts, it must also be significant: test_soak_significance)
    ok = soak_judge(WorkloadSample(error_rate=0.0049), base, 0.1, 50)
    bad = soak_judge(WorkloadSample(error_rate=0.0050), base, 0.1, 50)
    assert (ok.fired, bad.fired) == (False, True)
    blind = soak_judge(WorkloadSample(requests=3, error_rate=0.0), base, 0.1, 50)
    assert blind.value is None and "no data" in blind.text


# --- small canaries (issue 14, item 7): significance given the counts --------------------------


def test_one_unlucky_error_among_sixty_requests_does_not_roll_back() -> None:
    # 1 of 60 is 1.67 %: +1.27 pp over 0.40 %, but nowhere near significant
    result = judge(metrics(canary_err=1 / 60, requests=60), None, SPEC, TriggerState())
    reading = next(r for r in result.readings if r.rule == "error_rate")
    assert not reading.fired and result.verdict == "healthy"
    assert "not significant yet" in reading.text and "60 canary requests" in reading.text


def test_a_real_regression_is_significant_with_a_few_hundred_requests() -> None:
    # the bad-canary fault: 3.2 % vs 0.4 %
    result = judge(metrics(canary_err=0.032, requests=400), None, SPEC, TriggerState())
    assert [r.rule for r in result.fired] == ["error_rate"]


def test_the_wilson_bound_is_sound_at_small_and_large_counts() -> None:
    assert wilson_lower(0.0, 50) == pytest.approx(0.0, abs=1e-12)
    assert wilson_lower(1 / 60, 60) < 0.009 < 1 / 60
    assert 0.0090 < wilson_lower(0.0091, 10**10) < 0.0091
    assert wilson_lower(0.032, 400) > 0.009


def test_a_p99_needs_a_hundred_requests() -> None:
    few = judge(metrics(canary_p99=0.5, requests=60), None, SPEC, TriggerState())
    reading = next(r for r in few.readings if r.rule == "p99_latency")
    assert not reading.fired and "waiting for 100 requests" in reading.text
    enough = judge(metrics(canary_p99=0.5, requests=100), None, SPEC, TriggerState())
    assert [r.rule for r in enough.fired] == ["p99_latency"]


def test_too_few_requests_is_thin_not_blind_and_none_at_all_is_blind() -> None:
    thin = judge(metrics(requests=12), None, SPEC, TriggerState())
    assert thin.verdict == "no_data" and thin.thin
    nothing = judge(metrics(requests=0), None, SPEC, TriggerState())
    assert nothing.verdict == "no_data" and not nothing.thin
    unreachable = judge(
        CanaryMetrics(
            canary=WorkloadSample(reason="unreachable"),
            baseline=WorkloadSample(reason="unreachable"),
            at=T0,
            reason="prometheus unreachable",
        ),
        None,
        SPEC,
        TriggerState(),
    )
    assert unreachable.verdict == "no_data" and not unreachable.thin
