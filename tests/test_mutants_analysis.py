"""The trigger readings an operator sees, and the no-data reasons, pinned exactly (issue 16).

Written against the survivors of `make mutate MUTATE_MODULES=core.analysis`: the rules' boundaries are
in test_analysis.py and test_mutants_safety.py; these pin what each reading *says* (value, limit, unit,
streak, text) and why an interval is blind, since the TUI, the journal and the rollback reason show
exactly these strings.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.analysis import EPSILON, TriggerState, judge, soak_judge, soak_regression, wilson_lower
from core.domain import CanaryMetrics, WorkloadSample
from core.plan import AnalysisSpec, TriggersSpec

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
SPEC = AnalysisSpec()  # +0.50 pp, ×1.50, 2 health failures, 50 requests a side


def _m(
    canary_err: float | None = 0.004,
    base_err: float | None = 0.004,
    canary_p99: float | None = 0.2,
    base_p99: float | None = 0.2,
    canary_requests: float | None = 10**10,
    base_requests: float | None = 10**10,
) -> CanaryMetrics:
    # 10**10 requests a side: the significance bound (core.analysis, issue 14) is then the plain
    # rule, so these pin the rule's own boundary and words; low counts are in test_analysis.py
    return CanaryMetrics(
        canary=WorkloadSample(requests=canary_requests, error_rate=canary_err, p99=canary_p99),
        baseline=WorkloadSample(requests=base_requests, error_rate=base_err, p99=base_p99),
        at=T0,
    )


def _reading(result, rule: str):
    return next(r for r in result.readings if r.rule == rule)


def test_error_rate_reading_states_value_limit_unit_and_streak() -> None:
    r = _reading(judge(_m(canary_err=0.01), None, SPEC, TriggerState()), "error_rate")
    assert (r.limit, r.unit, r.fired, r.consecutive, r.needed) == (0.5, "pp", True, 1, 1)
    assert abs(r.value - 0.6) < 1e-12
    assert r.text == "canary 1.00 % vs baseline 0.40 %: +0.60 pp > 0.50 pp"
    ok = _reading(judge(_m(), None, SPEC, TriggerState()), "error_rate")
    assert (ok.value, ok.fired, ok.consecutive) == (0.0, False, 0)
    assert ok.text == "canary 0.40 % vs baseline 0.40 %: +0.00 pp ≤ 0.50 pp"


def test_a_delta_within_half_a_hundredth_of_the_limit_prints_three_decimals() -> None:
    # +0.503 pp rolls back; printed with two decimals it would read "+0.50 pp > 0.50 pp"
    above = _reading(judge(_m(canary_err=0.00903), None, SPEC, TriggerState()), "error_rate")
    assert above.fired and above.text == "canary 0.90 % vs baseline 0.40 %: +0.503 pp > 0.50 pp"
    below = _reading(judge(_m(canary_err=0.00897), None, SPEC, TriggerState()), "error_rate")
    assert not below.fired and below.text == "canary 0.90 % vs baseline 0.40 %: +0.497 pp ≤ 0.50 pp"
    far = _reading(judge(_m(canary_err=0.0095), None, SPEC, TriggerState()), "error_rate")
    assert far.text.endswith(": +0.55 pp > 0.50 pp")


def test_p99_reading_states_value_limit_unit_and_streak() -> None:
    r = _reading(judge(_m(canary_p99=0.4), None, SPEC, TriggerState()), "p99_latency")
    assert (r.value, r.limit, r.unit, r.fired, r.consecutive, r.needed) == (2.0, 1.5, "x", True, 1, 1)
    assert r.text == "canary p99 400 ms vs baseline 200 ms: ×2.00 > ×1.50"
    near = _reading(judge(_m(canary_p99=0.3008), None, SPEC, TriggerState()), "p99_latency")
    assert near.fired and near.text == "canary p99 301 ms vs baseline 200 ms: ×1.504 > ×1.50"
    ok = _reading(judge(_m(canary_p99=0.25), None, SPEC, TriggerState()), "p99_latency")
    assert (ok.fired, ok.consecutive) == (False, 0)
    assert ok.text == "canary p99 250 ms vs baseline 200 ms: ×1.25 ≤ ×1.50"


def test_p99_streak_needs_its_consecutive_count_and_resets_on_a_good_interval() -> None:
    spec = AnalysisSpec(triggers=TriggersSpec(p99_consecutive=2))
    state = TriggerState()
    first = judge(_m(canary_p99=0.4), None, spec, state)
    assert first.verdict == "healthy"
    assert (_reading(first, "p99_latency").consecutive, _reading(first, "p99_latency").needed) == (1, 2)
    judge(_m(), None, spec, state)  # a good interval resets the streak
    assert state.p99_streak == 0
    assert judge(_m(canary_p99=0.4), None, spec, state).verdict == "healthy"
    assert judge(_m(canary_p99=0.4), None, spec, state).verdict == "fired"


def test_error_streak_resets_on_a_good_interval() -> None:
    spec = AnalysisSpec(triggers=TriggersSpec(error_consecutive=2))
    state = TriggerState()
    for err in (0.02, 0.004, 0.02):
        assert judge(_m(canary_err=err), None, spec, state).verdict == "healthy"
    assert state.error_streak == 1
    r = _reading(judge(_m(canary_err=0.02), None, spec, state), "error_rate")
    assert (r.fired, r.consecutive, r.needed) == (True, 2, 2)


def test_health_reading_counts_failures_against_the_allowance() -> None:
    state = TriggerState()
    first = _reading(judge(_m(), False, SPEC, state), "health")
    assert (first.value, first.limit, first.unit, first.fired, first.consecutive, first.needed) == (
        1.0,
        2.0,
        "fails",
        False,
        1,
        2,
    )
    assert first.text == "health: 1 consecutive failed checks, rolls back at 2"
    second = _reading(judge(_m(), False, SPEC, state), "health")
    assert (second.value, second.fired, second.consecutive) == (2.0, True, 2)
    assert _reading(judge(_m(), True, SPEC, state), "health").value == 0.0
    # no health check configured: no reading at all, rather than a healthy one
    assert [r.rule for r in judge(_m(), None, SPEC, state).readings] == ["error_rate", "p99_latency"]


def test_no_data_readings_keep_their_limit_and_unit() -> None:
    result = judge(None, None, SPEC, TriggerState())
    err, p99 = _reading(result, "error_rate"), _reading(result, "p99_latency")
    assert (err.value, err.limit, err.unit, err.fired, err.text) == (None, 0.5, "pp", False, "no data")
    assert (p99.value, p99.limit, p99.unit, p99.fired, p99.text) == (None, 1.5, "x", False, "no data")
    assert (result.verdict, result.no_data_reason) == ("no_data", "metrics were not read")


def test_exactly_the_minimum_requests_is_enough_and_one_fewer_is_blind_on_either_side() -> None:
    assert judge(_m(canary_requests=50, base_requests=50), None, SPEC, TriggerState()).verdict == "healthy"
    canary_short = judge(_m(canary_requests=49), None, SPEC, TriggerState())
    assert canary_short.verdict == "no_data"
    assert canary_short.no_data_reason == "canary served 49 requests, fewer than the minimum 50"
    both = judge(_m(canary_requests=49, base_requests=3), None, SPEC, TriggerState())
    assert both.no_data_reason == (
        "canary served 49 requests, fewer than the minimum 50; baseline served 3 requests, fewer than the minimum 50"
    )
    # an unknown request count is not "too few": the other values decide
    assert judge(_m(canary_requests=None), None, SPEC, TriggerState()).verdict == "healthy"


def test_a_side_with_a_reason_is_blind_with_that_reason_named() -> None:
    m = CanaryMetrics(
        canary=WorkloadSample(requests=1000, error_rate=0.004, p99=0.2),
        baseline=WorkloadSample(reason="no series for version=v1"),
        at=T0,
    )
    result = judge(m, None, SPEC, TriggerState())
    assert (result.verdict, result.no_data_reason) == ("no_data", "baseline: no series for version=v1")
    assert all(r.value is None for r in result.readings)


def test_each_missing_value_is_named_and_a_zero_baseline_p99_is_no_data() -> None:
    only_err = judge(_m(canary_err=None), None, SPEC, TriggerState())
    assert (only_err.verdict, only_err.no_data_reason) == ("no_data", "error rate missing")
    assert _reading(only_err, "p99_latency").value == 1.0  # the other rule is still read
    zero = judge(_m(base_p99=0.0), None, SPEC, TriggerState())
    assert (zero.verdict, zero.no_data_reason) == ("no_data", "p99 latency missing")
    both = judge(_m(base_err=None, canary_p99=None), None, SPEC, TriggerState())
    assert both.no_data_reason == "error rate missing; p99 latency missing"


def test_a_blind_interval_does_not_advance_or_reset_streaks_it_cannot_see() -> None:
    spec = AnalysisSpec(triggers=TriggersSpec(error_consecutive=2))
    state = TriggerState()
    judge(_m(canary_err=0.02), None, spec, state)
    blind = judge(None, None, spec, state)
    assert blind.verdict == "no_data" and state.error_streak == 1
    assert judge(_m(canary_err=0.02), None, spec, state).verdict == "fired"


def test_a_fired_rule_wins_over_missing_data_and_the_judgement_lists_it() -> None:
    state = TriggerState(health_streak=1)
    result = judge(None, False, SPEC, state)
    assert (result.verdict, result.no_data_reason) == ("fired", None)
    assert [r.rule for r in result.fired] == ["health"]
    healthy = judge(_m(), True, SPEC, TriggerState())
    assert (healthy.verdict, healthy.no_data_reason, healthy.fired) == ("healthy", None, [])


def test_the_float_noise_guard_is_exactly_epsilon_on_each_rule() -> None:
    # documented: a value beyond its limit by EPSILON or less is float noise (0.1 + 0.4 is not above 0.5)
    assert EPSILON == 1e-9
    # +1.0 pp exactly, ×2.0 exactly; 10**22 requests a side put the significance bound within 1e-10 pp
    # of the measured rate, so only EPSILON decides here
    metrics = _m(
        canary_err=0.01,
        base_err=0.0,
        canary_p99=0.4,
        base_p99=0.2,
        canary_requests=10**22,
        base_requests=10**22,
    )
    within = AnalysisSpec(triggers=TriggersSpec(error_delta_pp=1.0 - EPSILON, p99_ratio=2.0 - EPSILON))
    assert judge(metrics, None, within, TriggerState()).verdict == "healthy"
    beyond = AnalysisSpec(
        triggers=TriggersSpec(error_delta_pp=1.0 - 2 * EPSILON, p99_ratio=2.0 - 2 * EPSILON)
    )
    fired = judge(metrics, None, beyond, TriggerState())
    assert [r.rule for r in fired.fired] == ["error_rate", "p99_latency"]
    # the soak fails from the limit less EPSILON on (≥), and not below that
    # counts unknown: the plain rule (with counts it must also be significant: test_soak_significance)
    staging, base = (
        WorkloadSample(error_rate=0.01),
        WorkloadSample(requests=500, error_rate=0.0),
    )
    assert soak_judge(staging, base, 1.0 + EPSILON, 50).fired
    assert not soak_judge(staging, base, 1.0 + 2 * EPSILON, 50).fired


def test_latency_and_rates_are_printed_in_their_own_units() -> None:
    r = _reading(judge(_m(canary_p99=2.0, base_p99=1.0), None, SPEC, TriggerState()), "p99_latency")
    assert r.text == "canary p99 2000 ms vs baseline 1000 ms: ×2.00 > ×1.50"
    soak = soak_judge(
        WorkloadSample(requests=500, error_rate=0.03), WorkloadSample(requests=500, error_rate=0.01), 0.5, 50
    )
    assert soak.text == "staging 3.00 % vs baseline 1.00 %: +2.00 pp ≥ 0.50 pp"


# --- staging soak ---------------------------------------------------------------------------------


def test_soak_reading_text_and_fields_on_both_sides_of_the_limit() -> None:
    base = WorkloadSample(requests=5000, error_rate=0.004)
    # enough staging requests that +0.20 pp is significant (the soak's Wilson bound, issue 14)
    bad = soak_judge(WorkloadSample(requests=10**10, error_rate=0.006), base, 0.1, 50)
    assert (bad.rule, bad.limit, bad.unit, bad.fired, bad.consecutive) == ("staging_soak", 0.1, "pp", True, 1)
    assert abs(bad.value - 0.2) < 1e-12
    assert bad.text == "staging 0.60 % vs baseline 0.40 %: +0.20 pp ≥ 0.10 pp"
    ok = soak_judge(WorkloadSample(requests=50, error_rate=0.0045), base, 0.1, 50)
    assert (ok.fired, ok.consecutive) == (False, 0)
    assert ok.text == "staging 0.45 % vs baseline 0.40 %: +0.05 pp < 0.10 pp"


def test_soak_without_data_names_the_side_and_why() -> None:
    base = WorkloadSample(requests=5000, error_rate=0.004)
    few = soak_judge(WorkloadSample(requests=3, error_rate=0.0), base, 0.1, 50)
    assert (few.value, few.fired, few.limit, few.unit) == (None, False, 0.1, "pp")
    assert few.text == "no data: staging served 3 requests, fewer than the minimum 50"
    no_rate = soak_judge(WorkloadSample(requests=500), base, 0.1, 50)
    assert no_rate.text == "no data: staging"
    base_down = soak_judge(
        WorkloadSample(requests=500, error_rate=0.0), WorkloadSample(reason="down"), 0.1, 50
    )
    assert base_down.text == "no data: baseline: down"


# --- the rest of the survivors (issue 16, second pass) ---------------------------------------------


def test_the_wilson_bound_at_known_points_and_without_trials() -> None:
    # reference values: the Wilson score formula (z = 2.326) evaluated in 40-digit decimal arithmetic
    assert wilson_lower(0.5, 100) == pytest.approx(0.38672391270657874, rel=1e-12)
    assert wilson_lower(0.1, 50) == pytest.approx(0.03750314106846571, rel=1e-12)
    # one trial is already evidence: 1 of 1 is at least 15.6 % with 99 % confidence
    assert wilson_lower(1.0, 1) == pytest.approx(0.1559995232654569, rel=1e-12)
    # no trials (or a nonsensical negative count): no evidence at all, never a division by zero
    assert wilson_lower(0.3, 0) == 0.0
    assert wilson_lower(0.3, -1) == 0.0


def test_one_request_is_thin_and_the_adapters_reasons_decide_thin_or_blind() -> None:
    one = judge(_m(canary_requests=1), None, SPEC, TriggerState())
    assert (one.verdict, one.thin) == ("no_data", True)
    # the Prometheus adapter answers a short window with this reason (core/adapters/prometheus.py)
    few = WorkloadSample(
        requests=12, reason="no data: v2 served 12 requests in the window, fewer than the minimum 50"
    )
    nan = WorkloadSample(requests=500, reason="no data: v2: error_rate is NaN")
    base = WorkloadSample(requests=10**10, error_rate=0.004, p99=0.2)
    short = judge(CanaryMetrics(canary=few, baseline=base, at=T0), None, SPEC, TriggerState())
    assert (short.verdict, short.thin) == ("no_data", True)
    broken = judge(CanaryMetrics(canary=nan, baseline=base, at=T0), None, SPEC, TriggerState())
    assert (broken.verdict, broken.thin) == ("no_data", False)
    # not read at all: blind, and thin is the bool False (Judgement.thin: bool), not some other falsy
    assert judge(None, None, SPEC, TriggerState()).thin is False


def test_on_the_error_limit_with_counts_unknown_stays_and_epsilon_beyond_is_noise() -> None:
    # counts unknown: the significance guard is out of the way, the plain rule decides alone
    on_limit = _m(canary_err=0.01, base_err=0.005, canary_requests=None)
    assert 0.01 * 100 - 0.005 * 100 == 0.5
    result = judge(on_limit, None, SPEC, TriggerState())
    reading = _reading(result, "error_rate")
    assert (result.verdict, reading.fired, reading.consecutive) == ("healthy", False, 0)
    assert reading.text == "canary 1.00 % vs baseline 0.50 %: +0.500 pp ≤ 0.50 pp"
    # a limit exactly EPSILON below the delta: 0.499999999 + 1e-9 == 0.5, so the delta is not above it
    assert (0.5 - EPSILON) + EPSILON == 0.5
    noise = AnalysisSpec(triggers=TriggersSpec(error_delta_pp=0.5 - EPSILON))
    assert judge(on_limit, None, noise, TriggerState()).verdict == "healthy"
    beyond = AnalysisSpec(triggers=TriggersSpec(error_delta_pp=0.5 - 2 * EPSILON))
    assert judge(on_limit, None, beyond, TriggerState()).verdict == "fired"


def test_a_delta_exactly_half_a_hundredth_from_the_limit_prints_two_decimals() -> None:
    # |0.00 - 0.005| is exactly the float 0.005: two decimals already differ from the limit's "0.01"
    assert abs(0.0 - 0.005) == 0.005
    tight = AnalysisSpec(triggers=TriggersSpec(error_delta_pp=0.005))
    r = _reading(judge(_m(), None, tight, TriggerState()), "error_rate")
    assert r.text == "canary 0.40 % vs baseline 0.40 %: +0.00 pp ≤ 0.01 pp"


def test_not_significant_yet_says_the_bound_and_what_the_rule_needs() -> None:
    # 3 of 60 is 5 %, +4.60 pp over 0.40 %; its 99 % lower bound 1.43 % is short of 0.40 % + 2.00 pp
    spec = AnalysisSpec(triggers=TriggersSpec(error_delta_pp=2.0))
    r = _reading(judge(_m(canary_err=0.05, canary_requests=60), None, spec, TriggerState()), "error_rate")
    assert not r.fired
    assert r.text == (
        "canary 5.00 % vs baseline 0.40 %: +4.60 pp > 2.00 pp, not significant yet (60 canary requests: "
        "its error rate is ≥ 1.43 % with 99 % confidence, the rule needs > 2.40 %)"
    )


def test_soak_within_chance_says_so_in_staging_words() -> None:
    r = soak_judge(
        WorkloadSample(requests=600, error_rate=0.006),
        WorkloadSample(requests=5000, error_rate=0.004),
        0.1,
        50,
    )
    assert (r.fired, r.consecutive) == (False, 0)
    assert r.text == (
        "staging 0.60 % vs baseline 0.40 %: +0.20 pp ≥ 0.10 pp, within chance (600 staging requests: its "
        "error rate is ≥ 0.19 % with 99 % confidence, the rule needs > 0.50 %)"
    )


# The significance bound's own boundary: baseline 0 %, limit 1.00 pp, so the canary's 99 % lower bound
# must exceed needed = 1 % (the canary rule, strictly: > needed + EPSILON/100) or reach it (the soak,
# ≥ needed - EPSILON/100). At 1.001 % the bound crosses 1 % near 535.6 M requests (request counts are
# floats: Prometheus' increase() extrapolates); these counts put it where each comparison decides.
_RATE, _NEEDED = 0.01001, 0.01
_AT_NEEDED = 535617324  # bound - needed: +1.7e-18
_JUST_BELOW_CANARY_LINE = 535618390  # +0.9946e-11, short of +1e-11
_ON_CANARY_LINE = 535618395.76647437  # exactly needed + EPSILON/100
_PAST_CANARY_LINE = 535618396  # +1.0002e-11
_JUST_ABOVE_SOAK_LINE = 535616258  # -0.9946e-11, above -1e-11
_ON_SOAK_LINE = 535616252.23649853  # exactly needed - EPSILON/100
_PAST_SOAK_LINE = 535616252  # -1.0002e-11
_NANO_BELOW = 535510164  # -1.0e-9


def _canary_verdict(requests: float) -> str:
    m = _m(canary_err=_RATE, base_err=0.0, canary_requests=requests)
    return judge(m, None, AnalysisSpec(triggers=TriggersSpec(error_delta_pp=1.0)), TriggerState()).verdict


def _soak_fires(requests: float) -> bool:
    staging = WorkloadSample(requests=requests, error_rate=_RATE)
    return soak_judge(staging, WorkloadSample(requests=5000, error_rate=0.0), 1.0, 50).fired


def test_the_canary_rule_needs_its_bound_strictly_past_the_limit() -> None:
    assert wilson_lower(_RATE, _AT_NEEDED) - _NEEDED == pytest.approx(0.0, abs=1e-15)
    assert wilson_lower(_RATE, _ON_CANARY_LINE) == _NEEDED + EPSILON / 100
    assert [_canary_verdict(n) for n in (_AT_NEEDED, _JUST_BELOW_CANARY_LINE, _ON_CANARY_LINE)] == [
        "healthy"
    ] * 3
    assert _canary_verdict(_PAST_CANARY_LINE) == "fired"


def test_the_soak_blocks_from_its_bound_reaching_the_limit_on() -> None:
    assert wilson_lower(_RATE, _ON_SOAK_LINE) == _NEEDED - EPSILON / 100
    assert [_soak_fires(n) for n in (_AT_NEEDED, _JUST_ABOVE_SOAK_LINE, _ON_SOAK_LINE)] == [True] * 3
    assert [_soak_fires(n) for n in (_PAST_SOAK_LINE, _NANO_BELOW)] == [False, False]


def test_soak_regression_stops_early_only_on_a_significant_excess_above_the_limit() -> None:
    def ws(rate: float | None, requests: float | None = None) -> WorkloadSample:
        return WorkloadSample(requests=requests, error_rate=rate)

    # no rate on either side: nothing to stop for
    assert not soak_regression(ws(None), ws(0.005), 0.5)
    assert not soak_regression(ws(0.05), ws(None), 0.5)
    # counts unknown, the plain rule: exactly on the limit (0.5 pp) goes on, above it stops
    assert not soak_regression(ws(0.01), ws(0.005), 0.5)
    assert soak_regression(ws(0.0101), ws(0.005), 0.5)
    # a limit EPSILON below the delta is float noise (0.499999999 + 1e-9 == 0.5)
    assert not soak_regression(ws(0.01), ws(0.005), 0.5 - EPSILON)
    # with counts: 1 of 60 is +1.27 pp but within chance; 3.2 % of 400 is certain
    assert not soak_regression(ws(1 / 60, 60), ws(0.004, 5000), 0.5)
    assert soak_regression(ws(0.032, 400), ws(0.004, 5000), 0.5)
