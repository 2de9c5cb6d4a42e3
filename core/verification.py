"""Post-deploy verification (Step 5, POL-008 / POL-015): the checks run in the window after 100 %.

The engine owns the window and the triggers; this module answers "is the release
healthy right now?" as one GateResult per check. A check that cannot read its data
is an error ("no data: ..."), never a pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from core.clock import Clock
from core.domain import GateGroup, GateResult, GateStatus, WorkloadSample
from core.plan import HttpCheckSpec, Plan
from core.ports import Alerts, CommandRunner, Metrics, PortError, Probe

GATE_TITLES: dict[str, tuple[str, str]] = {
    "verify-error-rate": ("Error rate within normal range", "POL-008"),
    "verify-latency-slo": ("Latency p50/p95/p99 within SLO", "POL-008"),
    "verify-no-new-alerts": ("No new alerts firing", "POL-008"),
    "verify-smoke": ("Smoke tests passing", "POL-015"),
    "verify-synthetics": ("Synthetic monitors green", "POL-015"),
    "verify-business": ("Business metrics normal", "POL-008"),
}
VERIFY_GATE_IDS = tuple(GATE_TITLES)
SMOKE_TIMEOUT_S = 300.0


@dataclass
class VerifyContext:
    plan: Plan
    clock: Clock
    metrics: Metrics | None
    alerts: Alerts | None
    probe: Probe | None
    runner: CommandRunner | None
    deploy_started_at: datetime
    baseline: WorkloadSample | None  # captured before the deploy; the "normal range" reference
    #: metrics window; default: the analysis's lookback (never under one interval). One interval was
    #: the default and is too thin: a 2 s interval over 1 s scrapes read an empty rate() whenever a
    #: scrape came late, and healthy releases rolled back for "no data" (issue 12's fleet benchmark)
    window_s: float | None = None
    alert_matchers: list[str] | None = None  # default: plan.gates.monitoring_matchers or the service label
    extra: dict[str, object] = field(default_factory=dict)


def _result(
    ctx: VerifyContext, gate_id: str, status: GateStatus, evidence: str, detail: str = ""
) -> GateResult:
    title, policy = GATE_TITLES[gate_id]
    return GateResult(
        gate_id=gate_id,
        title=title,
        policy=policy,
        group=GateGroup.POST_DEPLOY,
        status=status,
        evidence=evidence,
        detail=detail,
        checked_at=ctx.clock.now(),
    )


def _default_window(plan: Plan) -> float:
    # the window the canary analysis judged on: enough requests to resolve the thresholds
    return max(plan.analysis.interval, plan.analysis.lookback)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f} %"


# --- error rate --------------------------------------------------------------------


async def check_error_rate(ctx: VerifyContext) -> GateResult:
    gid = "verify-error-rate"
    if ctx.metrics is None:
        return _result(ctx, gid, GateStatus.ERROR, "no data: no metrics source configured")
    window = ctx.window_s or _default_window(ctx.plan)
    read = await ctx.metrics.canary_metrics(window)
    if read.reason:
        return _result(ctx, gid, GateStatus.ERROR, f"no data: {read.reason}")
    current = read.canary
    if current.error_rate is None:
        return _result(
            ctx, gid, GateStatus.ERROR, f"no data: {current.reason or 'new version error rate missing'}"
        )
    min_requests = ctx.plan.analysis.min_requests
    if current.requests is not None and current.requests < min_requests:
        return _result(
            ctx,
            gid,
            GateStatus.ERROR,
            f"no data: only {current.requests:.0f} requests in the window (need {min_requests})",
        )
    baseline = ctx.baseline
    source = "pre-deploy baseline"
    if baseline is None or baseline.error_rate is None:
        # Without the pre-deploy reading, the live stable side is the next best reference.
        baseline, source = read.baseline, "live baseline (pre-deploy baseline missing)"
    spec = ctx.plan.verification
    slo_max = ctx.plan.verification.slo.max_error_rate_pct
    problems: list[str] = []
    parts: list[str] = [f"error rate {_pct(current.error_rate)}"]
    if baseline.error_rate is None and slo_max is None:
        return _result(
            ctx,
            gid,
            GateStatus.ERROR,
            f"no data: no baseline error rate to compare {_pct(current.error_rate)} against",
        )
    if baseline.error_rate is not None:
        delta_pp = (current.error_rate - baseline.error_rate) * 100
        parts.append(
            f"{source} {_pct(baseline.error_rate)} ({delta_pp:+.2f} pp, limit +{spec.max_error_delta_pp:.2f} pp)"
        )
        if delta_pp > spec.max_error_delta_pp:
            if _surely_above(current, baseline.error_rate + spec.max_error_delta_pp / 100):
                problems.append(f"{delta_pp:+.2f} pp above the {source}")
            else:
                parts.append(f"+{delta_pp:.2f} pp is not significant at {current.requests:.0f} requests")
    if slo_max is not None:
        parts.append(f"SLO ≤ {slo_max:.2f} %")
        if current.error_rate * 100 > slo_max:
            if _surely_above(current, slo_max / 100):
                problems.append(f"above the SLO maximum {slo_max:.2f} %")
            else:
                parts.append(f"over the SLO by chance at {current.requests:.0f} requests (not significant)")
    evidence = "; ".join(parts)
    if problems:
        return _result(ctx, gid, GateStatus.FAIL, f"{evidence}: {', '.join(problems)}")
    return _result(ctx, gid, GateStatus.PASS, evidence)


def _surely_above(sample: WorkloadSample, limit: float) -> bool:
    """Whether the error rate exceeds ``limit`` with 99 % confidence given the request count.

    A verification window at a small service holds a few hundred requests: two unlucky 5xx must
    not fail a healthy release (issue 14). Unknown counts fall back to the plain comparison.
    """
    from core.analysis import wilson_lower

    if sample.requests is None or sample.error_rate is None:
        return True
    return wilson_lower(sample.error_rate, sample.requests) > limit


# --- latency -------------------------------------------------------------------------


async def check_latency(ctx: VerifyContext) -> GateResult:
    gid = "verify-latency-slo"
    if ctx.metrics is None:
        return _result(ctx, gid, GateStatus.ERROR, "no data: no metrics source configured")
    slo = ctx.plan.verification.slo
    limits_ms = {"p50": slo.p50_ms, "p95": slo.p95_ms, "p99": slo.p99_ms}
    ratio = ctx.plan.analysis.triggers.p99_ratio
    basis = "SLO"
    if all(v is None for v in limits_ms.values()):
        # No SLO written down: hold the release to the rollback ratio against the pre-deploy baseline.
        base = ctx.baseline
        if base is None:
            return _result(
                ctx, gid, GateStatus.ERROR, "no data: no latency SLO in the plan and no pre-deploy baseline"
            )
        limits_ms = {
            q: (getattr(base, q) * 1000 * ratio if getattr(base, q) is not None else None) for q in limits_ms
        }
        basis = f"{ratio:g}× pre-deploy baseline"
        if all(v is None for v in limits_ms.values()):
            return _result(
                ctx, gid, GateStatus.ERROR, "no data: no latency SLO and the baseline has no latency"
            )
    window = ctx.window_s or _default_window(ctx.plan)
    read = await ctx.metrics.canary_metrics(window)
    if read.reason:
        return _result(ctx, gid, GateStatus.ERROR, f"no data: {read.reason}")
    parts: list[str] = []
    failed: list[str] = []
    missing: list[str] = []
    for quantile, limit in limits_ms.items():
        if limit is None:
            continue
        value = getattr(read.canary, quantile)
        if value is None:
            missing.append(quantile)
            continue
        ms = value * 1000
        ok = ms <= limit
        parts.append(f"{quantile} {ms:.0f} ms {'≤' if ok else '>'} {limit:.0f} ms")
        if not ok:
            failed.append(quantile)
    evidence = f"{', '.join(parts)} ({basis})" if parts else basis
    if failed:
        return _result(ctx, gid, GateStatus.FAIL, f"{', '.join(failed)} over limit: {evidence}")
    if missing:
        why = read.canary.reason or "series missing"
        return _result(ctx, gid, GateStatus.ERROR, f"no data: {', '.join(missing)} ({why}); {evidence}")
    return _result(ctx, gid, GateStatus.PASS, evidence)


# --- alerts ----------------------------------------------------------------------------


async def check_new_alerts(ctx: VerifyContext) -> GateResult:
    gid = "verify-no-new-alerts"
    if ctx.alerts is None:
        return _result(ctx, gid, GateStatus.ERROR, "no data: no alert source configured (alertmanager)")
    matchers = ctx.alert_matchers or ctx.plan.gates.monitoring_matchers or [f'service="{ctx.plan.service}"']
    try:
        alerts = await ctx.alerts.active_alerts(matchers)
    except PortError as exc:
        return _result(ctx, gid, GateStatus.ERROR, f"no data: {exc}")
    active = [a for a in alerts if a.state == "active"]
    # An alert with no start time cannot be shown to predate the deploy, so it counts as new.
    new = [a for a in active if a.starts_at is None or a.starts_at >= ctx.deploy_started_at]
    old = len(active) - len(new)
    if new:
        names = ", ".join(f"{a.name}{f' ({a.severity})' if a.severity else ''}" for a in new[:5])
        detail = "\n".join(
            f"{a.name} severity={a.severity or '-'} since {a.starts_at.isoformat() if a.starts_at else 'unknown'}: "
            f"{a.summary}"
            for a in new
        )
        return _result(
            ctx, gid, GateStatus.FAIL, f"{len(new)} new alert(s) since the deploy started: {names}", detail
        )
    tail = f"; {old} alert(s) already firing before the deploy" if old else ""
    return _result(ctx, gid, GateStatus.PASS, f"no new alerts since {ctx.deploy_started_at:%H:%M:%S}{tail}")


# --- smoke and synthetics -------------------------------------------------------------------


async def _http_checks(
    ctx: VerifyContext, checks: list[HttpCheckSpec], timeout_s: float
) -> tuple[list[str], list[str]]:
    """(failures, passes) for a list of HTTP checks; a probe that errors is a failure."""
    assert ctx.probe is not None
    probe = ctx.probe

    async def one(spec: HttpCheckSpec) -> tuple[bool, str]:
        try:
            result = await probe.check(
                spec.url, expect_status=spec.expect_status, expect_body=spec.expect_body, timeout_s=timeout_s
            )
        except PortError as exc:
            return False, f"{spec.name}: {exc}"
        status = "no answer" if result.status is None else f"HTTP {result.status}"
        if result.ok:
            return True, f"{spec.name}: {status}"
        return False, f"{spec.name}: {status}{f' ({result.detail})' if result.detail else ''}"

    outcomes = await asyncio.gather(*(one(c) for c in checks))
    return [t for ok, t in outcomes if not ok], [t for ok, t in outcomes if ok]


async def check_smoke(ctx: VerifyContext) -> GateResult:
    gid = "verify-smoke"
    spec = ctx.plan.verification
    if not spec.smoke_command and not spec.smoke:
        return _result(ctx, gid, GateStatus.SKIPPED, "no smoke tests in the plan (verification.smoke)")
    failures: list[str] = []
    passes: list[str] = []
    detail = ""
    if spec.smoke_command:
        if ctx.runner is None:
            failures.append("no command runner to run the smoke command")
        else:
            outcome = await ctx.runner.run(
                spec.smoke_command, timeout_s=min(SMOKE_TIMEOUT_S, spec.duration or SMOKE_TIMEOUT_S)
            )
            detail = outcome.output[-4000:]
            if outcome.exit_code == 0:
                passes.append(f"smoke command passed in {outcome.duration_s:.1f}s")
            elif outcome.exit_code is None:
                failures.append(f"smoke command did not finish: {outcome.detail or 'timed out'}")
            else:
                failures.append(f"smoke command exited {outcome.exit_code}")
    if spec.smoke:
        if ctx.probe is None:
            failures.append("no HTTP probe to run the smoke checks")
        else:
            bad, good = await _http_checks(ctx, spec.smoke, ctx.plan.gates.timeout)
            failures += bad
            passes += good
    if failures:
        return _result(ctx, gid, GateStatus.FAIL, "; ".join(failures), detail)
    return _result(ctx, gid, GateStatus.PASS, "; ".join(passes), detail)


async def check_synthetics(ctx: VerifyContext) -> GateResult:
    gid = "verify-synthetics"
    checks = ctx.plan.verification.synthetics
    if not checks:
        return _result(
            ctx, gid, GateStatus.SKIPPED, "no synthetic monitors in the plan (verification.synthetics)"
        )
    if ctx.probe is None:
        return _result(ctx, gid, GateStatus.ERROR, "no data: no HTTP probe to run the synthetic monitors")
    bad, good = await _http_checks(ctx, checks, ctx.plan.gates.timeout)
    if bad:
        return _result(ctx, gid, GateStatus.FAIL, f"{len(bad)} of {len(checks)} failing: {'; '.join(bad)}")
    return _result(ctx, gid, GateStatus.PASS, f"{len(good)} monitor(s) green: {'; '.join(good)}")


# --- business metrics ---------------------------------------------------------------------


async def check_business(ctx: VerifyContext) -> GateResult:
    gid = "verify-business"
    specs = ctx.plan.verification.business
    if not specs:
        return _result(ctx, gid, GateStatus.SKIPPED, "no business metrics in the plan (not applicable)")
    if ctx.metrics is None:
        return _result(ctx, gid, GateStatus.ERROR, "no data: no metrics source configured")
    metrics = ctx.metrics
    results = await asyncio.gather(*(metrics.query(s.query) for s in specs))
    out_of_bounds: list[str] = []
    missing: list[str] = []
    fine: list[str] = []
    for spec, res in zip(specs, results, strict=True):
        if res.value is None:
            missing.append(f"{spec.name}: {res.reason or 'no data'}")
            continue
        bounds = f"[{'-∞' if spec.min is None else f'{spec.min:g}'}, {'∞' if spec.max is None else f'{spec.max:g}'}]"
        text = f"{spec.name} = {res.value:g} {bounds}"
        if (spec.min is not None and res.value < spec.min) or (spec.max is not None and res.value > spec.max):
            out_of_bounds.append(text)
        else:
            fine.append(text)
    if out_of_bounds:
        return _result(ctx, gid, GateStatus.FAIL, f"out of bounds: {'; '.join(out_of_bounds + missing)}")
    if missing:
        return _result(ctx, gid, GateStatus.ERROR, f"no data: {'; '.join(missing)}")
    return _result(ctx, gid, GateStatus.PASS, "; ".join(fine))


# --- all of them --------------------------------------------------------------------------

CHECKS: tuple[tuple[str, Callable[[VerifyContext], Awaitable[GateResult]]], ...] = (
    ("verify-error-rate", check_error_rate),
    ("verify-latency-slo", check_latency),
    ("verify-no-new-alerts", check_new_alerts),
    ("verify-smoke", check_smoke),
    ("verify-synthetics", check_synthetics),
    ("verify-business", check_business),
)


async def _guarded(
    ctx: VerifyContext, gate_id: str, check: Callable[[VerifyContext], Awaitable[GateResult]]
) -> GateResult:
    try:
        return await check(ctx)
    except PortError as exc:
        return _result(ctx, gate_id, GateStatus.ERROR, f"no data: {exc}")
    except Exception as exc:  # a check must never take the verification window down with it
        return _result(ctx, gate_id, GateStatus.ERROR, f"check failed: {type(exc).__name__}: {exc}")


async def verification_checks(ctx: VerifyContext) -> list[GateResult]:
    """Every post-deploy check once, concurrently, in catalogue order. Skipped gates are in the
    plan's `gates.skip`; everything else runs."""
    skip = set(ctx.plan.gates.skip)
    results: list[GateResult] = []
    to_run = [(gid, fn) for gid, fn in CHECKS if gid not in skip]
    ran = await asyncio.gather(*(_guarded(ctx, gid, fn) for gid, fn in to_run))
    by_id = {r.gate_id: r for r in ran}
    for gid, _ in CHECKS:
        if gid in skip:
            results.append(_result(ctx, gid, GateStatus.SKIPPED, "skipped by the plan (gates.skip)"))
        else:
            results.append(by_id[gid])
    return results


def failing(results: list[GateResult]) -> list[GateResult]:
    """Results that should stop the release: failed or unreadable (no data is not healthy)."""
    return [r for r in results if r.status in {GateStatus.FAIL, GateStatus.ERROR}]
