"""Evaluate a workflow step's gates concurrently, and render the checklist as plain text."""

from __future__ import annotations

import asyncio

from core import staging
from core.domain import GateGroup, GateResult, GateStatus
from core.gates import (
    change_class,
    ci,
    dependencies,
    error_budget,
    freeze,
    incidents,
    migrations,
    monitoring,
    review,
)
from core.gates.base import GateContext, GateFn, guarded
from core.policy import GROUP_ORDER, GateDef, gates_for, skip_allowed

REGISTRY: dict[str, GateFn] = {
    "ci-green": ci.check_ci,
    "code-reviewed": review.check_review,
    "change-class": change_class.check_change_class,
    "freeze-window": freeze.check_freeze,
    "no-sev-incident": incidents.check_incidents,
    "monitoring-normal": monitoring.check_monitoring,
    "error-budget": error_budget.check_error_budget,
    "dependencies-healthy": dependencies.check_dependencies,
    "migrations-lint": migrations.check_migrations_lint,
    "migrations-staging-run": migrations.check_migrations_staging_run,
    "staging-deploy": staging.check_staging_deploy,
    "staging-e2e": staging.check_e2e,
    "staging-health-live": staging.check_live,
    "staging-health-ready": staging.check_ready,
    "staging-new-errors": staging.check_new_errors,
}


def gate_timeout(ctx: GateContext, gate: GateDef) -> float:
    """Gates that do long work get their own budget; the rest share gates.timeout."""
    plan = ctx.plan
    if gate.id == "migrations-staging-run" and plan.migrations is not None:
        return plan.migrations.timeout + plan.gates.timeout
    if gate.id == "staging-e2e" and plan.staging.e2e is not None:
        return plan.staging.e2e.timeout + plan.gates.timeout
    if gate.id == "staging-deploy":
        return plan.targets.staging.rollout_timeout + plan.gates.timeout
    if gate.id == "ci-green" and plan.gates.ci.provider == "command":
        return plan.gates.ci.timeout + plan.gates.timeout
    return plan.gates.timeout


def _static(ctx: GateContext, gate: GateDef, status: GateStatus, evidence: str) -> GateResult:
    return gate.result(status, evidence, detail=gate.why, at=ctx.clock.now())


def _side_effect_note(ctx: GateContext, gate: GateDef) -> str:
    plan = ctx.plan
    if gate.id == "migrations-staging-run" and plan.migrations and plan.migrations.staging_command:
        return (
            f"not run by check: runs `{plan.migrations.staging_command}` on staging in the migrations phase"
        )
    if gate.id == "staging-e2e" and plan.staging.e2e:
        return f"not run by check: runs `{plan.staging.e2e.command}` in the staging phase"
    if gate.id == "staging-deploy":
        return f"not run by check: deploys {plan.version.image} to staging in the staging phase"
    return "not run by check: it changes something"


async def _evaluate_one(ctx: GateContext, gate: GateDef) -> GateResult:
    if skip_allowed(ctx.plan, gate):
        return _static(
            ctx, gate, GateStatus.SKIPPED, f"skipped by the plan (allowed for {ctx.plan.change.class_})"
        )
    if not gate.automated:
        who = f"{gate.signers} sign-offs by different people" if gate.signers > 1 else "a sign-off"
        note = "" if gate.author_may_sign else f", not by the author {ctx.plan.change.author}"
        return _static(ctx, gate, GateStatus.NEEDS_SIGN_OFF, f"needs {who}{note}")
    if ctx.dry_run and gate.side_effects:
        return _static(ctx, gate, GateStatus.PENDING, _side_effect_note(ctx, gate))
    fn = REGISTRY.get(gate.id)
    if fn is None:
        # post-deploy checks need the release at 100 %: the engine runs them in the verification window
        return _static(ctx, gate, GateStatus.PENDING, "checked in the verification window after 100 %")
    return await guarded(ctx, gate.id, fn, gate_timeout(ctx, gate))


async def evaluate_gates(
    ctx: GateContext, group: GateGroup, only: set[str] | None = None
) -> list[GateResult]:
    """Every gate of `group` for this change, concurrently, in catalogue order.

    Manual gates come back as needs_sign_off; the engine overlays recorded sign-offs
    (SignOffLedger.apply). Gates with side effects (migrations, E2E, staging deploy)
    are run in the order the engine asks for them via `only`.
    """
    gates = [g for g in gates_for(ctx.plan) if g.group == group and (only is None or g.id in only)]
    return list(await asyncio.gather(*(_evaluate_one(ctx, g) for g in gates)))


async def evaluate_all(ctx: GateContext, groups: tuple[GateGroup, ...] = GROUP_ORDER) -> list[GateResult]:
    """All groups at once, as `deploydeck check` shows them (use dry_run=True there)."""
    per_group = await asyncio.gather(*(evaluate_gates(ctx, g) for g in groups))
    return [r for results in per_group for r in results]


GLYPHS: dict[GateStatus, str] = {
    GateStatus.PASS: "✔",
    GateStatus.FAIL: "✘",
    GateStatus.PENDING: "…",
    GateStatus.RUNNING: "⟳",
    GateStatus.ERROR: "!",
    GateStatus.NEEDS_SIGN_OFF: "✋",
    GateStatus.SIGNED: "✍",
    GateStatus.OVERRIDDEN: "⚑",
    GateStatus.SKIPPED: "–",
}

STEP_TITLES: dict[GateGroup, str] = {
    GateGroup.PRE_DEPLOY: "Step 1: Pre-Deployment Gates",
    GateGroup.MIGRATIONS: "Step 2: Database Migrations",
    GateGroup.STAGING: "Step 3: Staging Deployment",
    GateGroup.POST_DEPLOY: "Step 5: Post-Deployment Verification",
}


def format_checklist(results: list[GateResult]) -> str:
    """Plain text for `deploydeck check`: grouped by workflow step, glyph + id + policy + evidence."""
    if not results:
        return "no gates"
    width = max(len(r.gate_id) for r in results)
    lines: list[str] = []
    for group in GROUP_ORDER:
        in_group = [r for r in results if r.group == group]
        if not in_group:
            continue
        if lines:
            lines.append("")
        lines.append(STEP_TITLES[group])
        for r in in_group:
            lines.append(
                f"  {GLYPHS[r.status]} {r.gate_id:<{width}}  {r.policy:<7}  {r.status.value:<15}{r.evidence}"
            )
            for s in r.sign_offs:
                note = f": {s.note}" if s.note else ""
                lines.append(f"  {'':<{width + 2}}  {'':<7}  by {s.actor} at {s.at:%Y-%m-%d %H:%M %Z}{note}")
    counts: dict[GateStatus, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(
        f"{n} {s.value.replace('_', ' ')}" for s, n in sorted(counts.items(), key=lambda kv: kv[0].value)
    )
    blocking = sum(n for s, n in counts.items() if not s.satisfied)
    verdict = "ready" if blocking == 0 else f"{blocking} gate(s) not satisfied"
    lines += ["", f"{len(results)} gates: {summary} — {verdict}"]
    return "\n".join(lines)
