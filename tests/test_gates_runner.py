"""The gate runner: concurrency, per-gate timeouts on the Clock, errors as results, dry runs, the checklist."""

from __future__ import annotations

import datetime as dt

from core.domain import CheckRun, GateGroup, GateStatus, SignOff
from core.gates import runner
from core.gates.base import GateContext
from core.gates.runner import evaluate_gates, format_checklist
from tests.test_gates_predeploy import FakeCodeHost, FakeRunner, make_ctx, make_plan


async def test_manual_gates_need_sign_off_and_skips_follow_the_policy():
    plan = make_plan("standard", extra="gates: {skip: [dashboards-reviewed]}")
    results = {r.gate_id: r for r in await evaluate_gates(make_ctx(plan), GateGroup.PRE_DEPLOY)}
    assert results["rollback-plan"].status == GateStatus.NEEDS_SIGN_OFF
    assert results["dashboards-reviewed"].status == GateStatus.SKIPPED
    normal = make_plan("normal", extra="gates: {skip: [dashboards-reviewed]}")
    results = {r.gate_id: r for r in await evaluate_gates(make_ctx(normal), GateGroup.PRE_DEPLOY)}
    assert results["dashboards-reviewed"].status == GateStatus.NEEDS_SIGN_OFF
    assert results["change-class"].status == GateStatus.FAIL


async def test_a_hanging_gate_times_out_on_the_clock_and_a_crashing_gate_is_an_error(monkeypatch):
    async def hangs(ctx: GateContext):
        await ctx.clock.sleep(3600)
        raise AssertionError("should have been cancelled")

    async def crashes(ctx: GateContext):
        raise KeyError("labels")

    monkeypatch.setitem(runner.REGISTRY, "monitoring-normal", hangs)
    monkeypatch.setitem(runner.REGISTRY, "error-budget", crashes)
    ctx = make_ctx(make_plan(extra="gates: {timeout: 7s}"))
    started = ctx.clock.now()
    results = {r.gate_id: r for r in await evaluate_gates(ctx, GateGroup.PRE_DEPLOY)}
    assert results["monitoring-normal"].status == GateStatus.ERROR
    assert results["monitoring-normal"].evidence == "timed out after 7s"
    assert results["error-budget"].status == GateStatus.ERROR
    assert results["error-budget"].evidence == "gate failed: KeyError: 'labels'"
    # the other gates still answered, and time moved only by the timeout
    assert results["change-class"].status == GateStatus.PASS
    assert ctx.clock.now() - started == dt.timedelta(seconds=7)


async def test_gates_run_concurrently(monkeypatch):
    order: list[str] = []

    def slow(name: str, seconds: float):
        async def gate(ctx: GateContext):
            order.append(f"start {name}")
            await ctx.clock.sleep(seconds)
            order.append(f"end {name}")
            return await runner.staging.check_live(ctx)

        return gate

    monkeypatch.setitem(runner.REGISTRY, "staging-health-live", slow("live", 5))
    monkeypatch.setitem(runner.REGISTRY, "staging-new-errors", slow("errors", 5))
    ctx = make_ctx()
    started = ctx.clock.now()
    await evaluate_gates(ctx, GateGroup.STAGING, only={"staging-health-live", "staging-new-errors"})
    assert order[:2] == ["start live", "start errors"]
    assert ctx.clock.now() - started == dt.timedelta(seconds=5)


async def test_dry_run_never_runs_side_effects():
    plan = make_plan(
        extra="migrations: {files: [m.sql], staging_command: ./migrate staging}\nstaging: {e2e: {command: make e2e}}"
    )
    fake = FakeRunner()
    results = await evaluate_gates(make_ctx(plan, runner=fake, dry_run=True), GateGroup.MIGRATIONS)
    run = next(r for r in results if r.gate_id == "migrations-staging-run")
    assert run.status == GateStatus.PENDING and "./migrate staging" in run.evidence
    staging = await evaluate_gates(make_ctx(plan, runner=fake, dry_run=True), GateGroup.STAGING)
    assert {r.gate_id: r.status for r in staging}["staging-e2e"] == GateStatus.PENDING
    assert fake.commands == []


async def test_post_deploy_gates_wait_for_the_verification_window():
    results = await evaluate_gates(make_ctx(), GateGroup.POST_DEPLOY)
    assert [r.gate_id for r in results][:2] == ["verify-error-rate", "verify-latency-slo"]
    assert all(r.status == GateStatus.PENDING for r in results)


async def test_checklist_groups_by_step_with_glyph_id_policy_and_evidence():
    host = FakeCodeHost(
        runs=[CheckRun(name=n, state="success") for n in ("lint", "tests", "sast", "coverage")]
    )
    ctx = make_ctx(codehost=host)
    results = await evaluate_gates(ctx, GateGroup.PRE_DEPLOY) + await evaluate_gates(ctx, GateGroup.STAGING)
    signed = results[8].model_copy(
        update={
            "status": GateStatus.SIGNED,
            "sign_offs": (
                SignOff(actor="dana", at=dt.datetime(2026, 11, 24, 10, 5, tzinfo=dt.UTC), note="runbook ok"),
            ),
        }
    )
    text = format_checklist([*results[:8], signed, *results[9:]])
    lines = text.splitlines()
    assert lines[0] == "Step 1: Pre-Deployment Gates"
    assert "Step 3: Staging Deployment" in lines
    ci_line = next(line for line in lines if " ci-green " in line)
    assert ci_line.lstrip().startswith("… ci-green") and "POL-015" in ci_line
    assert "4/5 required checks green; dependency-scan: missing" in ci_line
    assert any("by dana at 2026-11-24 10:05 UTC: runbook ok" in line for line in lines)
    assert lines[-1].startswith(f"{len(results)} gates: ") and "not satisfied" in lines[-1]
    assert "\x1b" not in text and "[bold" not in text
