"""Step 2 gates: the backward-compatibility lint, and the staging migration run with a health check after."""

from __future__ import annotations

import asyncio

from core.domain import GateResult, GateStatus
from core.gates.base import GateContext, not_configured, result
from core.migrations.lint import lint_files
from core.migrations.run import describe, run_migration

LINT_ID = "migrations-lint"
RUN_ID = "migrations-staging-run"


async def check_migrations_lint(ctx: GateContext) -> GateResult:
    spec = ctx.plan.migrations
    if spec is None or not spec.files:
        return not_configured(ctx, LINT_ID, "migrations.files lists no files to lint")
    # file reads and parsing are blocking; keep the event loop (and the UI) responsive
    findings = await asyncio.to_thread(
        lint_files, spec.files, spec.dialect, ctx.base_dir, confine=not spec.allow_outside_plan_dir
    )
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    detail = "\n".join(str(f) for f in findings) or "no findings"
    counts = f"{len(spec.files)} file(s), {len(errors)} error(s), {len(warnings)} warning(s)"
    if errors:
        first = errors[0]
        evidence = f"{counts}; {first.file}:{first.line} {first.rule}"
        return result(ctx, LINT_ID, GateStatus.FAIL, evidence, detail)
    extra = f"; {warnings[0].file}:{warnings[0].line} {warnings[0].rule}" if warnings else ""
    return result(ctx, LINT_ID, GateStatus.PASS, f"backward compatible: {counts}{extra}", detail)


async def check_migrations_staging_run(ctx: GateContext) -> GateResult:
    spec = ctx.plan.migrations
    if spec is None or not spec.staging_command:
        return not_configured(
            ctx, RUN_ID, "migrations.staging_command (migrations must run on staging first)"
        )

    async def line(text: str) -> None:
        await ctx.log("migrations", text)

    outcome = await run_migration(
        spec.staging_command, runner=ctx.runner, timeout_s=spec.timeout, on_line=line
    )
    how = describe(outcome)
    if outcome.exit_code is None:
        return result(ctx, RUN_ID, GateStatus.ERROR, f"staging migration {how}", outcome.output)
    if outcome.exit_code != 0:
        return result(ctx, RUN_ID, GateStatus.FAIL, f"staging migration failed: {how}", outcome.output)
    health = ctx.plan.targets.staging.health
    if health is None:
        return result(
            ctx,
            RUN_ID,
            GateStatus.ERROR,
            f"staging migration {how}; cannot verify staging: set targets.staging.health.ready",
            outcome.output,
        )
    probe = await ctx.probe.check(health.ready, timeout_s=health.timeout)
    if not probe.ok:
        evidence = f"staging migration {how}; staging unhealthy after it: {probe.detail}"
        return result(ctx, RUN_ID, GateStatus.FAIL, evidence, outcome.output)
    evidence = f"staging migration {how}; staging ready (HTTP {probe.status})"
    return result(ctx, RUN_ID, GateStatus.PASS, evidence, outcome.output)
