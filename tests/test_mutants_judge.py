"""The statistical judge's rules, each pinned where a small slip would change a verdict (issue 16).

Written against the survivors of `make mutate MUTATE_MODULES=core.judge`: every boundary uses values
that are exact in floating point (medians 0.5, 1.0, 2.0 and allowed effects 2.0), so "on the limit"
really is on it, and the samples are fully separated so significance is never in doubt.
"""

from __future__ import annotations

import math

import pytest

from core.judge import MannWhitney, _judge_metric, effect_size, judge, mann_whitney_u
from core.plan import JudgeMetric, JudgeSpec

BASE = [1.0] * 10  # baseline median exactly 1.0


def _one(metric: JudgeMetric, canary: list[float], baseline: list[float] = BASE, **spec: float):
    result = judge({metric.name: canary}, {metric.name: baseline}, JudgeSpec(metrics=[metric], **spec))
    return result.metrics[0]


# --- Mann-Whitney U ------------------------------------------------------------------------------


def test_either_sample_empty_is_an_error_but_one_value_each_is_a_test() -> None:
    with pytest.raises(ValueError, match=r"^both samples need at least one value$"):
        mann_whitney_u([1.0, 2.0], [])
    # one value a side is a (weak) test, not an error: x below y, U1 = 0
    assert mann_whitney_u([1.0, 2.0], [3.0]).u == 0.0


def test_a_single_tied_pair_says_nothing() -> None:
    # n = 2, both tied: the tie correction cancels the variance; z 0 and p 1, "no evidence"
    assert mann_whitney_u([1.0], [1.0]) == MannWhitney(u=0.5, z=0.0, p_value=1.0)


# --- effect size ---------------------------------------------------------------------------------


def test_effect_size_uses_means_only_when_both_medians_are_zero() -> None:
    # canary median 0, baseline 0.2: the ratio is 0 (the canary is better), no fallback to means
    assert effect_size([0.0, 0.0, 0.3], [0.1, 0.2, 0.3]) == 0.0
    # a baseline median of exactly 1 is an ordinary divisor
    assert effect_size([2.0, 2.0, 2.0], [1.0, 1.0, 1.0]) == 2.0


def test_effect_size_against_a_zero_baseline_median_keeps_the_sign() -> None:
    # baseline median 0 (mean not 0), canary median 0.5 > 0: infinitely worse
    assert effect_size([0.5, 0.5, 0.5], [0.0, 0.0, 1.0]) == math.inf
    assert effect_size([-1.0, -1.0, -1.0], [0.0, 0.0, 1.0]) == -math.inf


# --- one metric ----------------------------------------------------------------------------------


def test_exactly_min_samples_a_side_is_judged_and_fewer_is_no_data_with_the_counts() -> None:
    metric = JudgeMetric(name="p99")
    judged = _one(metric, [2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert judged.verdict != "nodata" and (judged.canary_n, judged.baseline_n) == (3, 3)
    short = _one(metric, [2.0, 2.0, 2.0, math.nan], [1.0, 1.0, math.inf])
    assert short.verdict == "nodata"
    assert (short.canary_n, short.baseline_n) == (3, 2)  # the non-finite ones are dropped
    assert short.text == "p99: no data (3 canary, 2 baseline samples; need 3)"


def test_each_direction_uses_its_one_sided_test() -> None:
    canary = [0.5, 0.9, 1.1, 1.3, 2.0, 2.5, 3.0]
    baseline = [0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6]
    for direction, alternative in (("increase", "greater"), ("decrease", "less")):
        got = _one(JudgeMetric(name="p99", direction=direction), canary, baseline)
        assert got.p_value == mann_whitney_u(canary, baseline, alternative).p_value  # type: ignore[arg-type]
    greater = mann_whitney_u(canary, baseline, "greater").p_value
    assert greater != mann_whitney_u(canary, baseline, "two-sided").p_value  # so the check means something


def test_significance_is_strictly_below_alpha() -> None:
    metric = JudgeMetric(name="p99", allowed_effect=1.1)
    canary, baseline = [2.0, 2.1, 2.2, 2.3], [1.0, 1.1, 1.2, 1.3]
    p = mann_whitney_u(canary, baseline, "greater").p_value
    assert _judge_metric(metric, canary, baseline, alpha=p).verdict == "pass"  # p == α: not significant
    assert _judge_metric(metric, canary, baseline, alpha=p * 1.0001).verdict == "fail"


def test_increase_fails_above_the_allowed_ratio_only() -> None:
    metric = JudgeMetric(name="p99", direction="increase", allowed_effect=2.0)
    assert _one(metric, [2.0] * 10).verdict == "pass"  # exactly ×2.0: on the limit stays
    assert _one(metric, [2.5] * 10).verdict == "fail"


def test_increase_does_not_fail_a_canary_whose_median_is_lower() -> None:
    # most pairs have the canary higher (significant "greater"), but its median is ×0.73 of the
    # baseline's: an increase metric only fails when the canary is worse by more than ×1.1
    canary = [100.0] * 10 + [0.4] * 11
    baseline = [0.1] * 10 + [1.0] * 10
    got = _one(JudgeMetric(name="p99", direction="increase", allowed_effect=1.1), canary, baseline)
    assert got.p_value is not None and got.p_value < 0.05
    assert got.effect == pytest.approx(0.4 / 0.55)
    assert got.verdict == "pass"


def test_decrease_fails_below_the_inverse_ratio_only() -> None:
    metric = JudgeMetric(name="p99", direction="decrease", allowed_effect=2.0)
    assert _one(metric, [0.25] * 10).verdict == "fail"  # ×0.25 < 1/2
    assert _one(metric, [0.5] * 10).verdict == "pass"  # exactly 1/2: on the limit stays
    assert _one(metric, [0.6] * 10).verdict == "pass"  # inside the tolerance


def test_decrease_does_not_fail_a_canary_whose_median_is_higher() -> None:
    # mirror of the increase case: significant "less", yet the canary's median is ×1.45 higher
    canary = [0.01] * 10 + [8.0] * 11
    baseline = [1.0] * 10 + [10.0] * 10
    got = _one(JudgeMetric(name="p99", direction="decrease", allowed_effect=1.1), canary, baseline)
    assert got.p_value is not None and got.p_value < 0.05
    assert got.effect == pytest.approx(8.0 / 5.5)
    assert got.verdict == "pass"


def test_either_fails_beyond_the_ratio_both_ways_and_not_on_it() -> None:
    metric = JudgeMetric(name="p99", direction="either", allowed_effect=2.0)
    assert _one(metric, [2.5] * 10).verdict == "fail"
    assert _one(metric, [0.25] * 10).verdict == "fail"
    assert _one(metric, [2.0] * 10).verdict == "pass"
    assert _one(metric, [0.5] * 10).verdict == "pass"
    assert _one(metric, [0.6] * 10).verdict == "pass"


def test_a_judged_metric_reports_medians_and_its_reading() -> None:
    got = _one(JudgeMetric(name="p99", allowed_effect=1.1), [2.0] * 10)
    assert (got.canary_median, got.baseline_median, got.effect) == (2.0, 1.0, 2.0)
    assert got.text == f"p99: fail (p={got.p_value:.3g} vs α=0.05, effect ×2.00, allowed ×1.1)"
    inf = _one(JudgeMetric(name="error_rate"), [0.5] * 10, [0.0] * 9 + [1.0])
    assert inf.effect == math.inf and "effect ×∞," in inf.text


# --- the overall verdict -------------------------------------------------------------------------


def test_alpha_is_one_minus_confidence_so_noise_beyond_the_ratio_still_passes() -> None:
    # ×1.5 medians but three overlapping samples: far from significant at 95 %
    got = _one(JudgeMetric(name="p99", allowed_effect=1.1), [1.0, 3.0, 5.0], [1.0, 2.0, 4.0])
    assert got.effect == 1.5 and got.p_value is not None and got.p_value > 0.3
    assert got.verdict == "pass" and "vs α=0.05," in got.text


def test_no_data_for_any_metric_says_so() -> None:
    result = judge({}, {}, JudgeSpec())
    assert (result.verdict, result.score, result.summary) == ("nodata", None, "no data for any metric")


def test_scores_on_the_thresholds_take_the_better_verdict() -> None:
    metrics = [JudgeMetric(name="p50"), JudgeMetric(name="p99")]
    canary = {"p50": [1.0] * 10, "p99": [3.0] * 10}
    baseline = {"p50": BASE, "p99": BASE}
    # one pass, one fail: score exactly 50
    on_marginal = judge(canary, baseline, JudgeSpec(metrics=metrics, marginal_score=50, pass_score=95))
    assert (on_marginal.score, on_marginal.verdict) == (50.0, "marginal")
    on_pass = judge(canary, baseline, JudgeSpec(metrics=metrics, marginal_score=10, pass_score=50))
    assert (on_pass.score, on_pass.verdict) == (50.0, "pass")


def test_the_summary_names_every_critical_failure_and_every_metric_without_data() -> None:
    metrics = [
        JudgeMetric(name="p50", critical=True),
        JudgeMetric(name="p99", critical=True),
        JudgeMetric(name="p95"),
        JudgeMetric(name="error_rate"),
    ]
    result = judge(
        {"p50": [3.0] * 10, "p99": [3.0] * 10}, {"p50": BASE, "p99": BASE}, JudgeSpec(metrics=metrics)
    )
    assert result.summary == (
        "score 0/100: fail (critical metric failed: p50, p99); no data: p95, error_rate"
    )
