"""Step 3 checks and the HTTP probe against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from core.adapters.command import SubprocessRunner
from core.adapters.http_probe import HttpProbe, parse_dependencies, probe_label
from core.clock import SystemClock
from core.domain import GateGroup, GateStatus, QueryResult, WorkloadStatus
from core.gates.base import GateContext
from core.gates.migrations import check_migrations_staging_run
from core.gates.runner import evaluate_gates
from core.plan import Plan
from core.staging import check_staging_deploy, staging_checks
from tests.test_gates_predeploy import FakeMetrics, make_plan


class Health:
    """A staging service whose answers the test changes between checks."""

    def __init__(self) -> None:
        self.live_status = 200
        self.ready_status = 200
        self.deps: dict[str, str] = {"db": "ok", "cache": "ok"}
        self.delay_s = 0.0

    async def live(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay_s)
        return web.json_response({"status": "ok"}, status=self.live_status)

    async def ready(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay_s)
        ok = all(v == "ok" for v in self.deps.values())
        return web.json_response(
            {"status": "ok" if ok else "fail", "dependencies": self.deps}, status=self.ready_status
        )


@pytest.fixture
async def staging_server() -> AsyncIterator[tuple[Health, str]]:
    health = Health()
    app = web.Application()
    app.router.add_get("/health/live", health.live)
    app.router.add_get("/health/ready", health.ready)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield health, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def staging_plan(base: str, extra: str = "", timeout: str = "2s") -> Plan:
    plan = make_plan(extra=extra)
    staging = plan.targets.staging.model_copy(
        update={
            "health": plan.targets.staging.health.model_copy(  # type: ignore[union-attr]
                update={
                    "live": f"{base}/health/live",
                    "ready": f"{base}/health/ready",
                    "timeout": float(timeout[:-1]),
                }
            )
        }
    )
    return plan.model_copy(update={"targets": plan.targets.model_copy(update={"staging": staging})})


def real_ctx(
    plan: Plan, probe: HttpProbe, metrics=None, logs: list[tuple[str, str]] | None = None
) -> GateContext:
    clock = SystemClock()  # real servers: real time
    return GateContext(
        plan=plan,
        clock=clock,
        probe=probe,
        runner=SubprocessRunner(),
        alerts=None,
        metrics=metrics or FakeMetrics(default=QueryResult(value=0.0)),
        codehost=None,
        deploy_started_at=clock.now(),
        on_log=(lambda source, line: logs.append((source, line))) if logs is not None else None,
    )


async def test_healthy_staging_passes_every_check_and_streams_e2e_output(staging_server):
    _, base = staging_server
    plan = staging_plan(
        base,
        "staging: {e2e: {command: \"echo 'checkout flow ok'; echo '12 passed'\"}, new_errors_query: 'sum(errors)'}",
    )
    logs: list[tuple[str, str]] = []
    probe = HttpProbe()
    try:
        results = await staging_checks(real_ctx(plan, probe, logs=logs))
    finally:
        await probe.close()
    by_id = {r.gate_id: r for r in results}
    assert [r.status for r in results] == [GateStatus.PASS] * 4, [r.evidence for r in results]
    assert by_id["staging-e2e"].evidence.startswith("E2E exit 0") and by_id["staging-e2e"].evidence.endswith(
        "12 passed"
    )
    assert logs == [("e2e", "checkout flow ok"), ("e2e", "12 passed")]
    assert "2/2 dependencies ok (db ok, cache ok)" in by_id["staging-health-ready"].evidence
    assert by_id["staging-health-live"].evidence.startswith(f"{base}/health/live: HTTP 200 in ")
    assert by_id["staging-new-errors"].evidence == "0 new errors in staging logs"


async def test_ready_names_the_failing_dependency_and_live_reports_the_status(staging_server):
    health, base = staging_server
    health.deps["cache"] = "fail"
    health.ready_status = 503
    health.live_status = 500
    plan = staging_plan(base, "staging: {new_errors_query: 'sum(errors)'}")
    probe = HttpProbe()
    try:
        results = await evaluate_gates(
            real_ctx(plan, probe, FakeMetrics(default=QueryResult(value=3))), GateGroup.STAGING
        )
    finally:
        await probe.close()
    by_id = {r.gate_id: r for r in results}
    ready = by_id["staging-health-ready"]
    assert ready.status == GateStatus.FAIL
    assert ready.evidence == f"{base}/health/ready: HTTP 503; 1/2 dependencies failing: cache"
    assert by_id["staging-health-live"].evidence == f"{base}/health/live: HTTP 500, expected 200"
    assert by_id["staging-new-errors"].status == GateStatus.FAIL and by_id[
        "staging-new-errors"
    ].evidence.startswith("3 new")
    assert (
        by_id["staging-e2e"].status == GateStatus.ERROR
        and "staging.e2e.command" in by_id["staging-e2e"].evidence
    )


async def test_ready_200_with_a_failing_dependency_still_fails(staging_server):
    health, base = staging_server
    health.deps["db"] = "down"
    probe = HttpProbe()
    try:
        answer = await probe.check(f"{base}/health/ready", timeout_s=2)
    finally:
        await probe.close()
    assert answer.status == 200 and not answer.ok
    assert answer.dependencies == {"db": False, "cache": True} and answer.detail == "dependencies failing: db"


async def test_unreachable_and_slow_endpoints_are_clear_failures(staging_server):
    health, base = staging_server
    health.delay_s = 1.0
    probe = HttpProbe()
    try:
        slow = await probe.check(f"{base}/health/live", timeout_s=0.2)
        closed = await probe.check("http://127.0.0.1:9/health/live", timeout_s=1)
    finally:
        await probe.close()
    assert not slow.ok and slow.detail == "timed out after 0.2s"
    assert not closed.ok and closed.detail.startswith("unreachable (") and closed.status is None


async def test_new_errors_without_data_is_an_error_not_a_pass(staging_server):
    _, base = staging_server
    plan = staging_plan(base, "staging: {new_errors_query: 'sum(errors)'}")
    probe = HttpProbe()
    try:
        res = await evaluate_gates(
            real_ctx(plan, probe, FakeMetrics()), GateGroup.STAGING, only={"staging-new-errors"}
        )
    finally:
        await probe.close()
    assert res[0].status == GateStatus.ERROR and res[0].evidence == "no data: empty"


async def test_staging_migration_runs_then_checks_staging_health(staging_server, tmp_path):
    health, base = staging_server
    logs: list[tuple[str, str]] = []
    plan = staging_plan(
        base, "migrations: {files: [a.sql], staging_command: 'echo migrated 001; echo migrated 002'}"
    )
    probe = HttpProbe()
    try:
        ok = await check_migrations_staging_run(real_ctx(plan, probe, logs=logs))
        health.deps["db"] = "fail"
        unhealthy = await check_migrations_staging_run(real_ctx(plan, probe))
        failing = staging_plan(
            base, "migrations: {files: [a.sql], staging_command: 'echo lock timeout; exit 1'}"
        )
        failed = await check_migrations_staging_run(real_ctx(failing, probe))
    finally:
        await probe.close()
    assert ok.status == GateStatus.PASS and ok.evidence.startswith("staging migration exit 0 after")
    assert logs == [("migrations", "migrated 001"), ("migrations", "migrated 002")]
    assert (
        unhealthy.status == GateStatus.FAIL
        and "staging unhealthy after it: dependencies failing: db" in unhealthy.evidence
    )
    assert failed.status == GateStatus.FAIL and failed.evidence.endswith("lock timeout")


class FakeStaging:
    def __init__(self, fail: bool = False) -> None:
        self.image: str | None = None
        self.fail = fail

    async def deploy(self, image: str, role: str) -> None:
        self.image = image

    async def wait_ready(self, role, timeout_s, progress=None) -> None:
        if self.fail:
            from core.ports import ClusterError

            raise ClusterError("staging/checkout: 1/4 pods ready after 600s (ImagePullBackOff)")
        if progress is not None:
            await progress("4/4 pods ready")

    async def describe(self) -> WorkloadStatus:
        return WorkloadStatus(stable_image=self.image, canary_image=None, stable_ready=4, stable_desired=4)


async def test_staging_deploy_through_the_cluster_port():
    plan = make_plan()
    clock = SystemClock()
    ctx = GateContext(
        plan=plan, clock=clock, probe=HttpProbe(), runner=SubprocessRunner(), alerts=None, metrics=None,
        codehost=None, deploy_started_at=dt.datetime.now(dt.UTC), staging=FakeStaging(),  # type: ignore[arg-type]
    )  # fmt: skip
    ok = await check_staging_deploy(ctx)
    assert ok.status == GateStatus.PASS and ok.evidence == "s/checkout on reg/checkout:1.1.0: 4/4 ready"
    ctx.staging = FakeStaging(fail=True)  # type: ignore[assignment]
    bad = await check_staging_deploy(ctx)
    assert bad.status == GateStatus.FAIL and "ImagePullBackOff" in bad.evidence


def test_dependency_shapes_and_url_labels():
    assert parse_dependencies(
        {"checks": [{"name": "db", "status": "UP"}, {"name": "mq", "status": "DOWN"}]}
    ) == {
        "db": True,
        "mq": False,
    }
    assert parse_dependencies({"dependencies": {"db": {"status": "pass"}, "s3": True}}) == {
        "db": True,
        "s3": True,
    }
    assert parse_dependencies(["not", "a", "dict"]) == {}
    assert probe_label("https://user:pw@api.example.com:8443/health/ready?token=abc") == (
        "https://api.example.com:8443/health/ready"
    )
