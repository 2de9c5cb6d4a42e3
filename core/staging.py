"""Step 3 checks on staging: deploy, E2E suite (Gate 3 of POL-015), health endpoints, new errors.

The 15-minute soak is a window, so it belongs to the engine; these are the
point-in-time checks around it.
"""

from __future__ import annotations

import asyncio

from core.domain import GateResult, GateStatus, ProbeResult
from core.gates.base import GateContext, not_configured, result
from core.ports import ClusterError, PortError

DEPLOY_ID = "staging-deploy"
E2E_ID = "staging-e2e"
LIVE_ID = "staging-health-live"
READY_ID = "staging-health-ready"
ERRORS_ID = "staging-new-errors"


async def check_staging_deploy(ctx: GateContext) -> GateResult:
    if ctx.staging is None:
        return not_configured(ctx, DEPLOY_ID, "no staging cluster (targets.staging)")
    image = ctx.plan.version.image
    target = ctx.plan.targets.staging
    try:
        await ctx.staging.deploy(image, "stable")

        async def progress(text: str) -> None:
            await ctx.log("staging", text)

        await ctx.staging.wait_ready("stable", target.rollout_timeout, progress)
        status = await ctx.staging.describe()
    except (ClusterError, PortError) as exc:
        return result(ctx, DEPLOY_ID, GateStatus.FAIL, f"staging deploy of {image} failed: {exc}")
    evidence = f"{target.namespace}/{target.deployment} on {status.stable_image}: {status.stable_ready}/{status.stable_desired} ready"
    ok = status.stable_image == image and status.stable_ready >= status.stable_desired > 0
    return result(ctx, DEPLOY_ID, GateStatus.PASS if ok else GateStatus.FAIL, evidence)


async def check_e2e(ctx: GateContext) -> GateResult:
    spec = ctx.plan.staging.e2e
    if spec is None:
        return not_configured(ctx, E2E_ID, "staging.e2e.command (the E2E suite, Gate 3 of POL-015)")

    async def line(text: str) -> None:
        await ctx.log("e2e", text)

    outcome = await ctx.runner.run(spec.command, timeout_s=spec.timeout, on_line=line)
    last = next((ln.strip() for ln in reversed(outcome.output.splitlines()) if ln.strip()), "")
    if outcome.exit_code is None:
        return result(ctx, E2E_ID, GateStatus.ERROR, f"E2E suite {outcome.detail}; {last}", outcome.output)
    status = GateStatus.PASS if outcome.exit_code == 0 else GateStatus.FAIL
    evidence = f"E2E exit {outcome.exit_code} after {outcome.duration_s:.1f}s" + (f"; {last}" if last else "")
    return result(ctx, E2E_ID, status, evidence, outcome.output)


async def _probe(ctx: GateContext, url: str, timeout_s: float) -> ProbeResult:
    try:
        return await ctx.probe.check(url, expect_status=200, timeout_s=timeout_s)
    except PortError as exc:
        return ProbeResult(url=url, ok=False, detail=str(exc))


async def check_live(ctx: GateContext) -> GateResult:
    health = ctx.plan.targets.staging.health
    if health is None:
        return not_configured(ctx, LIVE_ID, "targets.staging.health.live")
    answer = await _probe(ctx, health.live, health.timeout)
    label = f"{answer.url}: "
    if answer.ok:
        ms = f" in {answer.latency_ms:.0f} ms" if answer.latency_ms is not None else ""
        return result(ctx, LIVE_ID, GateStatus.PASS, f"{label}HTTP {answer.status}{ms}")
    return result(ctx, LIVE_ID, GateStatus.FAIL, label + (answer.detail or f"HTTP {answer.status}"))


async def check_ready(ctx: GateContext) -> GateResult:
    health = ctx.plan.targets.staging.health
    if health is None:
        return not_configured(ctx, READY_ID, "targets.staging.health.ready")
    answer = await _probe(ctx, health.ready, health.timeout)
    deps = answer.dependencies
    dep_text = ", ".join(f"{n} {'ok' if ok else 'FAIL'}" for n, ok in deps.items())
    detail = f"{answer.url}: HTTP {answer.status}\n{dep_text}"
    if answer.ok:
        shown = f"{len(deps)}/{len(deps)} dependencies ok ({dep_text})" if deps else "no dependency detail"
        return result(ctx, READY_ID, GateStatus.PASS, f"{answer.url}: HTTP {answer.status}; {shown}", detail)
    failed = [n for n, ok in deps.items() if not ok]
    if failed:
        evidence = f"{answer.url}: HTTP {answer.status}; {len(failed)}/{len(deps)} dependencies failing: {', '.join(failed)}"
    else:
        evidence = f"{answer.url}: {answer.detail or f'HTTP {answer.status}'}"
    return result(ctx, READY_ID, GateStatus.FAIL, evidence, detail)


async def check_new_errors(ctx: GateContext) -> GateResult:
    query = ctx.plan.staging.new_errors_query
    if not query:
        return not_configured(ctx, ERRORS_ID, "staging.new_errors_query (a PromQL error count; > 0 fails)")
    if ctx.metrics is None:
        return not_configured(ctx, ERRORS_ID, "set prometheus.url to run staging.new_errors_query")
    try:
        answer = await ctx.metrics.query(query)
    except PortError as exc:
        return result(ctx, ERRORS_ID, GateStatus.ERROR, f"no data: {exc}", query)
    if answer.value is None:
        reason = answer.reason or "no data"
        reason = reason if reason.startswith("no data") else f"no data: {reason}"
        return result(ctx, ERRORS_ID, GateStatus.ERROR, reason, f"query: {query}")
    count = answer.value
    if count > 0:
        return result(
            ctx, ERRORS_ID, GateStatus.FAIL, f"{count:g} new error(s) in staging logs", f"query: {query}"
        )
    return result(ctx, ERRORS_ID, GateStatus.PASS, "0 new errors in staging logs", f"query: {query}")


async def staging_checks(ctx: GateContext) -> list[GateResult]:
    """E2E first (it exercises staging), then health and new errors, which should reflect that traffic."""
    e2e = await check_e2e(ctx)
    rest = await asyncio.gather(check_live(ctx), check_ready(ctx), check_new_errors(ctx))
    return [e2e, *rest]
