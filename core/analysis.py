"""Canary judgement: the workflow's rollback triggers, with exact boundaries.

* error rate: canary % − baseline % > limit (percentage points), strictly greater;
* p99 latency: canary p99 / baseline p99 > limit, strictly greater;
* health: this many consecutive failed checks; a pass resets the count.

Missing numbers are "no data", which never counts as healthy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.domain import CanaryMetrics, WorkloadSample
from core.events import RuleReading
from core.plan import AnalysisSpec

# Guards the strict ">" against float noise: 0.1 + 0.4 must not read as above 0.5.
EPSILON = 1e-9

Verdict = Literal["healthy", "no_data", "fired"]


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
    if metrics is None:
        missing.append("metrics were not read")
    elif metrics.reason:
        missing.append(metrics.reason)
    else:
        for name, side in (("canary", canary), ("baseline", baseline)):
            reason = _side_reason(name, side, spec.min_requests)
            if reason:
                missing.append(reason)
    usable = not missing

    # error rate, in percentage points
    c_err, b_err = _pct(canary.error_rate), _pct(baseline.error_rate)
    if usable and c_err is not None and b_err is not None:
        delta = c_err - b_err
        bad = delta > t.error_delta_pp + EPSILON
        state.error_streak = state.error_streak + 1 if bad else 0
        fired = state.error_streak >= t.error_consecutive
        sign = ">" if bad else "≤"
        readings.append(
            RuleReading(
                rule="error_rate",
                value=delta,
                limit=t.error_delta_pp,
                unit="pp",
                fired=fired,
                consecutive=state.error_streak,
                needed=t.error_consecutive,
                text=f"canary {c_err:.2f} % vs baseline {b_err:.2f} %: {_near(delta, t.error_delta_pp)} pp {sign} {t.error_delta_pp:.2f} pp",
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
        bad = ratio > t.p99_ratio + EPSILON
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
        return Judgement("no_data", readings, "; ".join(missing))
    return Judgement("healthy", readings, None)


def soak_judge(
    staging: WorkloadSample, baseline: WorkloadSample, limit_pp: float, min_requests: int
) -> RuleReading:
    """Staging soak: staging error rate must stay below baseline + limit (percentage points)."""
    for name, side in (("staging", staging), ("baseline", baseline)):
        reason = _side_reason(name, side, min_requests)
        if reason or side.error_rate is None:
            return RuleReading(
                rule="staging_soak", value=None, limit=limit_pp, unit="pp", text=f"no data: {reason or name}"
            )
    delta = (staging.error_rate - baseline.error_rate) * 100.0  # type: ignore[operator]
    bad = delta >= limit_pp - EPSILON
    return RuleReading(
        rule="staging_soak",
        value=delta,
        limit=limit_pp,
        unit="pp",
        fired=bad,
        consecutive=1 if bad else 0,
        text=(
            f"staging {staging.error_rate * 100:.2f} % vs baseline {baseline.error_rate * 100:.2f} %: "  # type: ignore[operator]
            f"{delta:+.2f} pp {'≥' if bad else '<'} {limit_pp:.2f} pp"
        ),
    )
