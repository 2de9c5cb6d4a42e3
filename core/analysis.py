"""Canary judgement: the workflow's rollback triggers, with exact boundaries.

* error rate: canary % − baseline % > limit (percentage points), strictly greater;
* p99 latency: canary p99 / baseline p99 > limit, strictly greater;
* health: this many consecutive failed checks; a pass resets the count.

Missing numbers are "no data", which never counts as healthy.

Small canaries (issue 14). At 5 % of a small service a 5-minute window holds a few dozen
requests, and one unlucky 5xx among 60 reads as +1.3 pp. The error-rate rule therefore fires
only when the excess is significant given the counts: the canary's error rate must exceed
baseline + limit with one-sided 99 % confidence (Wilson score lower bound; the baseline, with
~20x the traffic, is taken at its estimate). With many requests the bound approaches the
observed rate and the rule is the workflow's plain "> +0.5 pp". A p99 needs at least 100
requests to exist; below that the latency rule waits instead of judging one slow request.
Too few requests is not blindness: the metrics answered, the window just waits for evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from core.domain import CanaryMetrics, WorkloadSample
from core.events import RuleReading
from core.plan import AnalysisSpec

# Guards the strict ">" against float noise: 0.1 + 0.4 must not read as above 0.5.
EPSILON = 1e-9

Verdict = Literal["healthy", "no_data", "fired"]

#: one-sided 99 % normal quantile: how sure the error-rate rule must be before it fires
ERROR_CONFIDENCE_Z = 2.326
#: a 99th percentile needs at least this many requests to exist
P99_MIN_REQUESTS = 100


def wilson_lower(rate: float, n: float, z: float = ERROR_CONFIDENCE_Z) -> float:
    """Lower bound of the Wilson score interval for a proportion ``rate`` seen over ``n`` trials."""
    if n <= 0:
        return 0.0
    z2 = z * z
    centre = rate + z2 / (2 * n)
    spread = z * math.sqrt(max(rate * (1 - rate), 0.0) / n + z2 / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z2 / n))


@dataclass
class TriggerState:
    """Consecutive-interval counters; lives for one observation window series."""

    error_streak: int = 0
    p99_streak: int = 0
    health_streak: int = 0


@dataclass
class Judgement:
    verdict: Verdict
    readings: list[RuleReading] = field(default_factory=list)
    no_data_reason: str | None = None
    #: no data only because too few requests were served: the metrics answered, so this is not
    #: blindness (never pauses); the window waits for evidence instead of counting the interval
    thin: bool = False

    @property
    def fired(self) -> list[RuleReading]:
        return [r for r in self.readings if r.fired]


def _near(value: float, limit: float) -> str:
    """Two decimals, or three when two would print the value equal to its limit."""
    return f"{value:+.3f}" if abs(value - limit) < 0.005 else f"{value:+.2f}"


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100.0


def _side_reason(name: str, side: WorkloadSample, min_requests: int) -> str | None:
    if side.reason:
        return f"{name}: {side.reason}"
    if side.requests is not None and side.requests < min_requests:
        return f"{name} served {side.requests:.0f} requests, fewer than the minimum {min_requests}"
    return None


def judge(
    metrics: CanaryMetrics | None,
    health_ok: bool | None,
    spec: AnalysisSpec,
    state: TriggerState,
) -> Judgement:
    """Evaluate every rule for one interval and update the streak counters in ``state``."""
    t = spec.triggers
    readings: list[RuleReading] = []
    missing: list[str] = []

    canary = metrics.canary if metrics else WorkloadSample(reason="no read")
    baseline = metrics.baseline if metrics else WorkloadSample(reason="no read")
    thin = False
    if metrics is None:
        missing.append("metrics were not read")
    elif metrics.reason:
        missing.append(metrics.reason)
    else:
        thin = True
        for name, side in (("canary", canary), ("baseline", baseline)):
            reason = _side_reason(name, side, spec.min_requests)
            if reason:
                missing.append(reason)
                thin = thin and _is_thin(side)
    usable = not missing
    thin = thin and bool(missing)

    # error rate, in percentage points
    c_err, b_err = _pct(canary.error_rate), _pct(baseline.error_rate)
    if usable and c_err is not None and b_err is not None:
        delta = c_err - b_err
        over = delta > t.error_delta_pp + EPSILON
        significant, evidence = _significant_excess(canary, baseline, t.error_delta_pp)
        bad = over and significant
        state.error_streak = state.error_streak + 1 if bad else 0
        fired = state.error_streak >= t.error_consecutive
        sign = ">" if over else "≤"
        text = f"canary {c_err:.2f} % vs baseline {b_err:.2f} %: {_near(delta, t.error_delta_pp)} pp {sign} {t.error_delta_pp:.2f} pp"
        if over and not significant:
            text += f", not significant yet ({evidence})"
        readings.append(
            RuleReading(
                rule="error_rate",
                value=delta,
                limit=t.error_delta_pp,
                unit="pp",
                fired=fired,
                consecutive=state.error_streak,
                needed=t.error_consecutive,
                text=text,
            )
        )
    else:
        if usable:
            missing.append("error rate missing")
        readings.append(
            RuleReading(rule="error_rate", value=None, limit=t.error_delta_pp, unit="pp", text="no data")
        )

    # p99 latency ratio
    if usable and canary.p99 is not None and baseline.p99 is not None and baseline.p99 > 0:
        ratio = canary.p99 / baseline.p99
        # fewer than 100 requests have no 99th percentile: the slowest one is not a p99
        enough = canary.requests is None or canary.requests >= P99_MIN_REQUESTS
        bad = ratio > t.p99_ratio + EPSILON and enough
        state.p99_streak = state.p99_streak + 1 if bad else 0
        fired = state.p99_streak >= t.p99_consecutive
        sign = ">" if bad else "≤"
        readings.append(
            RuleReading(
                rule="p99_latency",
                value=ratio,
                limit=t.p99_ratio,
                unit="x",
                fired=fired,
                consecutive=state.p99_streak,
                needed=t.p99_consecutive,
                text=(
                    f"canary p99 {canary.p99 * 1000:.0f} ms vs baseline {baseline.p99 * 1000:.0f} ms: "
                    f"×{_near(ratio, t.p99_ratio)[1:]} {sign} ×{t.p99_ratio:.2f}"
                    + ("" if enough else f", waiting for {P99_MIN_REQUESTS} requests to judge a p99")
                ),
            )
        )
    else:
        if usable:
            missing.append("p99 latency missing")
        readings.append(
            RuleReading(rule="p99_latency", value=None, limit=t.p99_ratio, unit="x", text="no data")
        )

    # consecutive health failures; health is read independently of metrics
    if health_ok is not None:
        state.health_streak = 0 if health_ok else state.health_streak + 1
        fired = state.health_streak >= t.health_failures
        readings.append(
            RuleReading(
                rule="health",
                value=float(state.health_streak),
                limit=float(t.health_failures),
                unit="fails",
                fired=fired,
                consecutive=state.health_streak,
                needed=t.health_failures,
                # "of 2 allowed" read as still within the limit when 2 had already fired it
                text=f"health: {state.health_streak} consecutive failed checks, rolls back at {t.health_failures}",
            )
        )

    if any(r.fired for r in readings):
        return Judgement("fired", readings, None)
    if missing:
        return Judgement("no_data", readings, "; ".join(missing), thin=thin)
    return Judgement("healthy", readings, None)


def _is_thin(side: WorkloadSample) -> bool:
    """Answered, but with fewer requests than the guard needs (not an absent metric)."""
    if side.requests is None or side.requests < 1:
        return False  # nothing served at all: nothing to see, which is blindness
    return side.reason is None or "fewer than the minimum" in side.reason


def _significant_excess(
    canary: WorkloadSample, baseline: WorkloadSample, limit_pp: float, *, at_least: bool = False
) -> tuple[bool, str]:
    """Whether the canary's error rate exceeds baseline + limit with 99 % confidence, given the counts
    (``at_least``: reaches it, for the soak's "≥" rule)."""
    if canary.requests is None or canary.error_rate is None or baseline.error_rate is None:
        return True, "counts unknown: the plain rule applies"
    bound = wilson_lower(canary.error_rate, canary.requests)
    needed = baseline.error_rate + limit_pp / 100
    evidence = (
        f"{canary.requests:.0f} canary requests: its error rate is ≥ {bound * 100:.2f} % with 99 % "
        f"confidence, the rule needs > {needed * 100:.2f} %"
    )
    if at_least:
        return bound >= needed - EPSILON / 100, evidence
    return bound > needed + EPSILON / 100, evidence


def soak_judge(
    staging: WorkloadSample, baseline: WorkloadSample, limit_pp: float, min_requests: int
) -> RuleReading:
    """Staging soak: staging error rate must stay below baseline + limit (percentage points).

    Blocks only when the excess is significant given staging's request count, as the canary's
    error-rate rule does (Wilson lower bound, 99 %): at 10 req/s a 15-minute soak holds ~9,000
    requests, whose error rate wanders ±0.07 pp by chance alone, so the plain 0.1 pp rule would
    block one healthy release in ten. Counts unknown: the plain rule.
    """
    for name, side in (("staging", staging), ("baseline", baseline)):
        reason = _side_reason(name, side, min_requests)
        if reason or side.error_rate is None:
            return RuleReading(
                rule="staging_soak", value=None, limit=limit_pp, unit="pp", text=f"no data: {reason or name}"
            )
    delta = (staging.error_rate - baseline.error_rate) * 100.0  # type: ignore[operator]
    over = delta >= limit_pp - EPSILON
    significant, evidence = _significant_excess(staging, baseline, limit_pp, at_least=True)
    bad = over and significant
    text = (
        f"staging {staging.error_rate * 100:.2f} % vs baseline {baseline.error_rate * 100:.2f} %: "  # type: ignore[operator]
        f"{delta:+.2f} pp {'≥' if over else '<'} {limit_pp:.2f} pp"
    )
    if over and not significant:
        text += f", within chance ({evidence.replace('canary', 'staging')})"
    return RuleReading(
        rule="staging_soak",
        value=delta,
        limit=limit_pp,
        unit="pp",
        fired=bad,
        consecutive=1 if bad else 0,
        text=text,
    )


def soak_regression(staging: WorkloadSample, baseline: WorkloadSample, limit_pp: float) -> bool:
    """The soak's early stop: staging's error rate is above baseline + the canary trigger's limit,
    significantly given its count (a few unlucky 5xx in a thin interval do not end the soak)."""
    if staging.error_rate is None or baseline.error_rate is None:
        return False
    delta = (staging.error_rate - baseline.error_rate) * 100.0
    return delta > limit_pp + EPSILON and _significant_excess(staging, baseline, limit_pp)[0]
