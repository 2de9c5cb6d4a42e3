"""Mann-Whitney U judge: the statistic against scipy, and the Kayenta-style verdicts."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from core.judge import effect_size, judge, mann_whitney_u
from core.plan import JudgeMetric, JudgeSpec

samples = st.lists(st.integers(min_value=0, max_value=6).map(float), min_size=2, max_size=40)


@settings(max_examples=150, deadline=None)
@given(x=samples, y=samples, alternative=st.sampled_from(["two-sided", "greater", "less"]))
def test_u_and_p_match_scipy_with_ties(x: list[float], y: list[float], alternative: str) -> None:
    ours = mann_whitney_u(x, y, alternative)  # type: ignore[arg-type]
    if len(set(x + y)) == 1:
        # every value tied: scipy answers NaN, we answer "no evidence of a difference"
        assert ours.p_value == 1.0
        return
    ref = mannwhitneyu(x, y, alternative=alternative, method="asymptotic")
    assert ours.u == pytest.approx(float(ref.statistic))
    assert ours.p_value == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-12)


def test_known_values_by_hand() -> None:
    # x ranks 1, 2, 4 -> R1 = 7, U1 = 7 - 3·4/2 = 1; mean 6, variance 3·4/12·8 = 8;
    # two-sided z = (11 - 6 - 0.5) / √8 = 1.591, p = 2·sf(z) = 0.1116
    result = mann_whitney_u([1.0, 2.0, 4.0], [3.0, 5.0, 6.0, 7.0])
    assert result.u == 1.0
    assert result.z == pytest.approx(4.5 / math.sqrt(8))
    assert result.p_value == pytest.approx(0.11161, abs=1e-4)


def test_empty_sample_is_an_error() -> None:
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])


def _latencies(rng: random.Random, centre: float, n: int) -> list[float]:
    return [rng.gauss(centre, centre * 0.05) for _ in range(n)]


def test_clear_regression_fails_and_critical_forces_score_zero() -> None:
    rng = random.Random(3)
    spec = JudgeSpec(
        enabled=True,
        metrics=[JudgeMetric(name="p99", critical=True), JudgeMetric(name="error_rate")],
    )
    canary = {"p99": _latencies(rng, 0.40, 30), "error_rate": _latencies(rng, 0.004, 30)}
    baseline = {"p99": _latencies(rng, 0.18, 30), "error_rate": _latencies(rng, 0.004, 30)}
    result = judge(canary, baseline, spec)
    p99 = next(m for m in result.metrics if m.name == "p99")
    assert p99.verdict == "fail"
    assert p99.effect == pytest.approx(0.40 / 0.18, rel=0.1)
    assert p99.p_value is not None and p99.p_value < 0.001
    assert result.verdict == "fail"
    assert result.score == 0.0
    assert "critical" in result.summary


def test_same_distribution_passes() -> None:
    rng = random.Random(5)
    spec = JudgeSpec(enabled=True)
    canary = {"p99": _latencies(rng, 0.18, 30), "error_rate": _latencies(rng, 0.004, 30)}
    baseline = {"p99": _latencies(rng, 0.18, 30), "error_rate": _latencies(rng, 0.004, 30)}
    result = judge(canary, baseline, spec)
    assert result.verdict == "pass"
    assert result.score == 100.0


def test_significant_but_within_the_allowed_effect_passes() -> None:
    # 5 % slower, clearly significant with this many samples, but within the allowed ×1.1 (Kayenta)
    spec = JudgeSpec(enabled=True, metrics=[JudgeMetric(name="p99", allowed_effect=1.1)], pass_score=95)
    canary = {"p99": [0.189 + i * 1e-5 for i in range(50)]}
    baseline = {"p99": [0.180 + i * 1e-5 for i in range(50)]}
    result = judge(canary, baseline, spec)
    assert result.metrics[0].p_value is not None and result.metrics[0].p_value < 0.001
    assert result.metrics[0].verdict == "pass"
    assert result.score == 100.0 and result.verdict == "pass"


def test_one_of_three_metrics_failing_is_marginal_overall() -> None:
    spec = JudgeSpec(
        enabled=True,
        metrics=[JudgeMetric(name="p50"), JudgeMetric(name="p95"), JudgeMetric(name="p99")],
        pass_score=90,
        marginal_score=60,
    )
    same = [0.1 + i * 1e-4 for i in range(30)]
    slower = [v * 1.5 for v in same]
    result = judge({"p50": same, "p95": same, "p99": slower}, {"p50": same, "p95": same, "p99": same}, spec)
    assert [m.verdict for m in result.metrics] == ["pass", "pass", "fail"]
    assert result.verdict == "marginal" and round(result.score or 0) == 67


def test_improvement_is_not_a_failure_for_increase_direction() -> None:
    spec = JudgeSpec(enabled=True, metrics=[JudgeMetric(name="p99", direction="increase")])
    result = judge({"p99": [0.1] * 10 + [0.11] * 10}, {"p99": [0.3] * 10 + [0.31] * 10}, spec)
    assert result.metrics[0].verdict == "pass"
    spec_either = JudgeSpec(enabled=True, metrics=[JudgeMetric(name="p99", direction="either")])
    assert (
        judge({"p99": [0.1] * 10 + [0.11] * 10}, {"p99": [0.3] * 10 + [0.31] * 10}, spec_either).verdict
        == "fail"
    )


def test_missing_samples_are_no_data_never_pass() -> None:
    spec = JudgeSpec(enabled=True)
    result = judge({"p99": [0.2, 0.2]}, {"p99": [0.2, 0.2, 0.2]}, spec)
    assert result.verdict == "nodata"
    assert result.score is None
    assert all(m.verdict == "nodata" for m in result.metrics)


def test_nan_samples_are_dropped_not_counted() -> None:
    spec = JudgeSpec(enabled=True, metrics=[JudgeMetric(name="p99")])
    result = judge({"p99": [math.nan, math.nan, 0.2, 0.2]}, {"p99": [0.2] * 5}, spec)
    assert result.metrics[0].verdict == "nodata"
    assert result.metrics[0].canary_n == 2


def test_effect_size_with_zero_medians_uses_means() -> None:
    assert effect_size([0.0, 0.0, 0.0, 0.03], [0.0] * 4) == math.inf
    assert effect_size([0.0] * 4, [0.0] * 4) == 1.0
    assert effect_size([0.0, 0.0, 0.02], [0.0, 0.0, 0.01]) == pytest.approx(2.0)
    assert effect_size([0.3, 0.3], [0.1, 0.1]) == pytest.approx(3.0)
