"""The engine's staging, migrations, verification, preflight and completion steps (issue 16).

Written against `make mutate MUTATE_MODULES=core.rollout` in steps/staging.py, steps/migrations.py,
steps/verification.py, steps/preflight.py and steps/completion.py: the soak reads staging's new version
against production's stable one and blocks (and reverts staging) on a regression, on no data and on an
early clear regression; a staging migration is announced before it runs, runs once, and staging must be
healthy after it; a failed verification asks, rolls back or fixes forward as the plan says; the
command-line approvals are signed once; completion notifies and closes tickets once and rolls feature
flags out while watching production. All in memory, in virtual time.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.clock import VirtualClock
from core.domain import Alert, CanaryMetrics, GateStatus, Outcome, Phase, ProbeResult, WorkloadSample
from core.events import (
    AnalysisSample,
    DecisionRequired,
    Finished,
    GateEvaluated,
    GateSignedOff,
    HealthChecked,
    LogLine,
    Paused,
    PhaseChanged,
    RollbackTriggered,
    RunResumed,
    WindowStarted,
)
from core.plan import MigrationsSpec, Plan, SoakSpec
from core.policy import gates_for
from core.ports import PortError
from core.rollout.progress import RolloutStatus
from core.session import Session, demo_plan, open_session
from tests.engine_helpers import until
from tests.resume_helpers import run_killed_at
from tests.test_mutants_rollout import _of

IMAGE = "registry.example.com/shop/checkout:1.5.0"


async def _driver(tmp_path: Path, plan: Plan, world: Any = None, **kwargs: Any) -> Session:
    """A driver with every manual gate approved on the command line (a second one resumes on ``world``)."""
    return await open_session(
        plan,
        actor=kwargs.pop("actor", "tester"),
        clock=VirtualClock() if world is None else world.clock,
        interactive=kwargs.pop("interactive", False),
        approvals=kwargs.pop("approvals", [g.id for g in gates_for(plan) if not g.automated]),
        journal_path=tmp_path / "deployments.jsonl",
        world=world,
        **kwargs,
    )


def _left(session: Session) -> RolloutStatus:
    inner: Any = session.world.production.inner  # type: ignore[attr-defined]
    status = RolloutStatus.from_state(inner.state)
    assert status is not None
    return status


def _since_resume(session: Session) -> list[Any]:
    events = session.rollout.events
    starts = [i for i, e in enumerate(events) if isinstance(e, RunResumed)]
    return events[starts[0] :] if starts else events


def _finished(session: Session) -> str:
    [finished] = _of(session.rollout.events, Finished)
    return finished.reason  # type: ignore[no-any-return]


def _logs(session: Session, phase: Phase | None = None) -> list[tuple[str, str]]:
    return [(e.level, e.message) for e in _of(session.rollout.events, LogLine) if phase in (None, e.phase)]


# --- staging: deploy, gates, soak ----------------------------------------------------------------

STAGING = WorkloadSample(requests=9_000, error_rate=0.004, p99=0.2)
PRODUCTION = WorkloadSample(requests=36_000, error_rate=0.0041, p99=0.18)
# the other side of each read, which the soak must never use: it would fire if it did
WRONG = WorkloadSample(requests=9_000, error_rate=0.2, p99=2.0)


class _SoakReads:
    """A metrics port that answers the soak's reads from a script and leaves the other steps' reads
    to the simulated one; records the window of each soak read."""

    def __init__(self, session: Session, real: Any, staging: bool, script: Any) -> None:
        self.session, self.real, self.staging, self.script = session, real, staging, script
        self.windows: list[float] = []

    async def canary_metrics(self, window_s: float) -> CanaryMetrics:
        if self.session.rollout.phase != Phase.STAGING:
            return await self.real.canary_metrics(window_s)  # type: ignore[no-any-return]
        self.windows.append(window_s)
        at = self.session.clock.now()
        side = self.script(len(self.windows), window_s)
        if isinstance(side, str):
            return CanaryMetrics(canary=WRONG, baseline=WRONG, at=at, reason=side)
        if self.staging:
            return CanaryMetrics(canary=side, baseline=WRONG, at=at)
        return CanaryMetrics(canary=WRONG, baseline=side, at=at)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def _soak_session(
    tmp_path: Path, script: Any, duration: float = 300.0, production: Any = lambda n, w: PRODUCTION
) -> tuple[Session, _SoakReads]:
    """The demo with a soak of ``duration``; staging's side of each soak read is ``script(n, window)`` (a
    WorkloadSample, or a string: the read failed), production's stable side ``production(n, window)``."""
    staging = demo_plan().staging.model_copy(update={"soak": SoakSpec(duration=duration)})
    session = await _driver(tmp_path, demo_plan().model_copy(update={"staging": staging}))
    world = session.world
    reads = _SoakReads(session, world.staging_metrics, True, script)
    world.staging_metrics = reads  # type: ignore[assignment]
    world.metrics = _SoakReads(session, world.metrics, False, production)  # type: ignore[assignment]
    return session, reads


def _soak_samples(session: Session) -> list[AnalysisSample]:
    return [e for e in _of(session.rollout.events, AnalysisSample) if e.phase == Phase.STAGING]


async def test_a_healthy_soak_judges_staging_against_productions_stable_and_passes_over_the_whole_soak(
    tmp_path: Path,
) -> None:
    session, reads = await _soak_session(tmp_path, lambda n, window: STAGING)
    shown_last: list[Any] = []  # the sample and window the screen shows as the soak ends

    def on_event(event: Any) -> None:
        if isinstance(event, LogLine) and event.message.startswith("staging soak passed"):
            shown_last.append((session.rollout.last_analysis, session.rollout.window))

    session.rollout.subscribe(on_event)
    inner: Any = session.world.production.inner  # type: ignore[attr-defined]
    write, persisted = inner.write_state, []

    async def write_state(state: dict[str, Any]) -> None:
        window = RolloutStatus.from_state(state).window  # type: ignore[union-attr]
        if window is not None and window.name == "staging soak":
            persisted.append((window.observed_s, window.samples))
        await write(state)

    inner.write_state = write_state
    assert await session.rollout.run() == Outcome.COMPLETED
    # each counted interval is persisted with the soak's time and samples so far (what a resume continues)
    assert persisted == [(0.0, 0)] + [(30.0 * n, n) for n in range(1, 11)]
    # one read of the last 5 minutes per 30 s interval, then the rule judged once over the whole soak
    assert reads.windows == [300.0] * 10 + [300.0]
    samples = _soak_samples(session)
    assert [s.elapsed_s for s in samples] == [30.0 * n for n in range(1, 11)]
    first = samples[0]
    shown = (first.canary_error_rate, first.baseline_error_rate, first.canary_p99_ms, first.baseline_p99_ms)
    assert shown == pytest.approx((0.4, 0.41, 200.0, 180.0))
    counts = (first.canary_requests, first.baseline_requests, first.weight, first.window_s)
    assert counts == (9000, 36000, 0, 300)
    assert (first.verdict, first.no_data_reason) == ("healthy", None)
    [reading] = first.readings
    assert (reading.rule, reading.limit, reading.fired) == ("staging_soak", 0.1, False)
    assert shown_last == [(samples[-1], None)]  # the last sample, and no window running any more
    passed = [m for _, m in _logs(session, Phase.STAGING) if m.startswith("staging soak passed")]
    assert passed == ["staging soak passed over 5m: staging 0.40 % vs baseline 0.41 %: -0.01 pp < 0.10 pp"]
    assert _left(session).results["staging"] == "staging deployed, gates green, soak passed"


def _blocked_in_staging(session: Session) -> None:
    """A failed soak: blocked in staging, staging reverted to the version before, production untouched."""
    rollout = session.rollout
    assert rollout.phase == Phase.BLOCKED
    assert session.world.staging.calls[-1] == "rollback"  # type: ignore[attr-defined]
    assert session.world.staging.stable_image.endswith(":1.4.2")  # type: ignore[attr-defined]
    assert [c for c in session.world.production.calls if c.startswith("deploy")] == []  # type: ignore[attr-defined]
    reverting = [(lvl, m) for lvl, m in _logs(session) if "reverting staging" in m or "staging reverted" in m]
    assert reverting == [
        ("warning", f"{_finished(session)}; reverting staging to 1.4.2"),
        ("info", "staging reverted: stable runs registry.example.com/shop/checkout:1.4.2"),
    ]


async def test_a_regression_over_the_whole_soak_blocks_and_reverts_staging(tmp_path: Path) -> None:
    # each 5-minute read holds too few requests to be certain; the read over the whole soak is certain
    bad = WorkloadSample(requests=9_000, error_rate=0.012, p99=0.2)
    session, reads = await _soak_session(tmp_path, lambda n, w: bad if w == 600 else STAGING, duration=600)
    assert await session.rollout.run() == Outcome.BLOCKED
    assert reads.windows[-1] == 600 and session.rollout.window is None  # the soak's window is over
    assert _finished(session) == (
        "staging soak failed over 10m: staging 1.20 % vs baseline 0.41 %: +0.79 pp ≥ 0.10 pp"
    )
    _blocked_in_staging(session)


async def test_a_clear_regression_stops_the_soak_at_the_interval_that_shows_it(tmp_path: Path) -> None:
    clear = WorkloadSample(requests=3_000, error_rate=0.05, p99=0.2)
    session, reads = await _soak_session(tmp_path, lambda n, w: STAGING if n < 3 else clear)
    assert await session.rollout.run() == Outcome.BLOCKED
    samples = _soak_samples(session)
    assert [s.verdict for s in samples] == ["healthy", "healthy", "fired"]
    assert samples[-1].readings[0].fired and samples[-1].elapsed_s == 90
    assert len(reads.windows) == 3  # no read over the whole soak after an early stop
    assert _finished(session) == (
        "staging soak failed early: staging 5.00 % vs baseline 0.41 %: +4.59 pp ≥ 0.10 pp"
    )
    _blocked_in_staging(session)


@pytest.mark.parametrize(
    ("side", "why"),
    [
        ("staging", "staging: prometheus: query timed out"),
        ("production", "baseline: thanos: 502 Bad Gateway"),
    ],
)
async def test_a_soak_without_data_over_the_whole_soak_blocks_and_a_blind_interval_does_not_count(
    tmp_path: Path, side: str, why: str
) -> None:
    def script(n: int, window: float) -> WorkloadSample | str:
        if n == 2:
            return "prometheus: connection refused"
        return "prometheus: query timed out" if window == 600 and side == "staging" else STAGING

    def production(n: int, window: float) -> WorkloadSample | str:
        return "thanos: 502 Bad Gateway" if window == 600 and side == "production" else PRODUCTION

    session, reads = await _soak_session(tmp_path, script, duration=600, production=production)
    assert await session.rollout.run() == Outcome.BLOCKED
    samples = _soak_samples(session)
    blind = samples[1]
    assert (blind.verdict, blind.no_data_reason) == (
        "no_data",
        "no data: staging: prometheus: connection refused",
    )
    # the blind interval did not count: twenty intervals with data, the window moved out by one
    assert [s.elapsed_s for s in samples if s.verdict == "healthy"] == [30.0 * n for n in range(1, 21)]
    ends = [w.ends_at for w in _of(session.rollout.events, WindowStarted) if w.name == "staging soak"]
    assert ends[1] - ends[0] == timedelta(seconds=30)
    assert reads.windows[-1] == 600
    assert _finished(session) == f"staging soak: no data: {why}"
    _blocked_in_staging(session)


async def test_a_staging_that_cannot_be_reverted_says_so_and_still_blocks(tmp_path: Path) -> None:
    clear = WorkloadSample(requests=3_000, error_rate=0.05, p99=0.2)
    session, _ = await _soak_session(tmp_path, lambda n, w: clear)
    session.world.staging.fail_rollbacks = 1  # type: ignore[attr-defined]
    assert await session.rollout.run() == Outcome.BLOCKED
    assert _finished(session).startswith("staging soak failed early: ")
    assert _logs(session)[-1] == (
        "error",
        "staging NOT reverted: PATCH deployments/checkout: 503 Service Unavailable (simulated)",
    )


@pytest.mark.parametrize("duration", [0.0, 1.0])
async def test_a_soak_of_zero_is_skipped_and_one_second_is_still_soaked(
    tmp_path: Path, duration: float
) -> None:
    session, reads = await _soak_session(tmp_path, lambda n, w: STAGING, duration=duration)
    assert await session.rollout.run() == Outcome.COMPLETED
    windows = [w.name for w in _of(session.rollout.events, WindowStarted)]
    assert ("staging soak" in windows) == (duration > 0)
    assert len(reads.windows) == (2 if duration else 0)  # one interval, then the read over the whole soak


async def test_a_soak_without_staging_metrics_blocks_before_it_starts(tmp_path: Path) -> None:
    session, _ = await _soak_session(tmp_path, lambda n, w: STAGING)
    session.world.staging_metrics = None
    assert await session.rollout.run() == Outcome.BLOCKED
    assert _finished(session) == "staging soak needs metrics for staging and production; none configured"
    assert "staging soak" not in [w.name for w in _of(session.rollout.events, WindowStarted)]


async def test_a_resumed_staging_step_does_not_deploy_or_run_the_e2e_suite_again(tmp_path: Path) -> None:
    plan = demo_plan()
    session = await _driver(tmp_path, plan)
    world: Any = session.world
    waits: list[tuple[str, float]] = []
    wait_ready = world.staging.wait_ready

    async def recording(role: str, timeout_s: float, progress: Any = None) -> None:
        waits.append((role, timeout_s))
        await wait_ready(role, timeout_s, progress)

    world.staging.wait_ready = recording
    outcome, _ = await run_killed_at(session, match="journal window_started")  # the soak's window
    assert outcome is None
    assert waits == [("stable", plan.targets.staging.rollout_timeout)]  # the new version Ready on staging
    [phase] = [p for p in _of(session.rollout.events, PhaseChanged) if p.phase == Phase.STAGING]
    assert phase.reason == "deploying 1.5.0 to staging"
    progress = [m for _, m in _logs(session, Phase.STAGING) if m.startswith("staging rollout: ")]
    assert progress == [f"staging rollout: stable: {p} % of pods ready" for p in (25, 50, 75, 100)]
    assert _left(session).results["staging.deploy"] == "1.5.0 rolled out"
    deployed = session.rollout.gates["staging-deploy"]
    assert (deployed.status, deployed.evidence) == (GateStatus.PASS, "1.5.0 rolled out")
    assert _left(session).results["staging.gates"] == "staging gates satisfied"
    resumed = await _driver(tmp_path, plan, world)
    assert await resumed.rollout.run() == Outcome.COMPLETED
    assert world.staging.calls.count(f"deploy:stable:{IMAGE}") == 1
    assert world.runner.commands.count("make e2e ENV=staging") == 1
    assert not [g for g in _of(_since_resume(resumed), GateEvaluated) if g.phase == Phase.STAGING]


# --- migrations -----------------------------------------------------------------------------------


def _migrations_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql: str) -> Plan:
    async def inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    # the lint gate reads files in a thread while the virtual clock runs on (as in test_mutants_rollout.py)
    monkeypatch.setattr(asyncio, "to_thread", inline)
    migration = tmp_path / "001_change.sql"
    migration.write_text(sql)
    migrations = MigrationsSpec(
        allow_outside_plan_dir=True, files=[str(migration)], staging_command="migrate up"
    )
    plan = demo_plan()
    staging = plan.targets.staging.model_copy(
        update={"health": plan.targets.staging.health.model_copy(update={"timeout": 7.0})}  # type: ignore[union-attr]
    )
    targets = plan.targets.model_copy(update={"staging": staging})
    return plan.model_copy(update={"migrations": migrations, "targets": targets})


ADD_COLUMN = "ALTER TABLE orders ADD COLUMN note text;\n"
READY = "sim://checkout-staging/health/ready"


def _probes(session: Session, answer: ProbeResult | None = None) -> list[tuple[str, float, str | None]]:
    """Record the migrations step's probes (url, timeout, what the cluster says is pending); answer
    staging's ready URL with ``answer``."""
    world: Any = session.world
    seen: list[tuple[str, float, str | None]] = []
    check = world.probe.check

    async def probe(url: str, **kwargs: Any) -> ProbeResult:
        if session.rollout.phase == Phase.MIGRATIONS:
            seen.append((url, kwargs.get("timeout_s", -1.0), _left(session).pending))
        if answer is not None and url == READY:
            return answer
        return await check(url, **kwargs)  # type: ignore[no-any-return]

    world.probe.check = probe
    return seen


async def test_a_staging_migration_is_announced_runs_then_staging_must_answer_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await _driver(tmp_path, _migrations_plan(tmp_path, monkeypatch, ADD_COLUMN))
    world: Any = session.world
    pending: list[str | None] = []
    run = world.runner.run

    async def running(command: str, **kwargs: Any) -> Any:
        pending.append(_left(session).pending)
        return await run(command, **kwargs)

    world.runner.run = running
    probes = _probes(session)
    assert await session.rollout.run() == Outcome.COMPLETED
    events = session.rollout.events
    [phase] = [p for p in _of(events, PhaseChanged) if p.phase == Phase.MIGRATIONS]
    assert phase.reason == "reviewing migration safety"
    reviewed = [g.gate.gate_id for g in _of(events, GateEvaluated) if g.phase == Phase.MIGRATIONS]
    assert reviewed[0] == "migrations-lint"
    # the cluster says the staging migration is under way while it runs: a new driver knows it may have run
    assert pending[world.runner.commands.index("migrate up")] == "migrations.staging"
    assert probes == [(READY, 7.0, None)]  # after the run, with the plan's timeout
    [health] = [h for h in _of(events, HealthChecked) if h.phase == Phase.MIGRATIONS]
    assert (health.url, health.ok, health.status, health.detail) == (READY, True, 200, "ok")
    gate = session.rollout.gates["migrations-staging-run"]
    assert (gate.status, gate.evidence) == (GateStatus.PASS, "ran on staging; staging healthy after")
    left = _left(session)
    assert left.results["migrations.staging"] == "ran on staging"
    assert left.completed.index("migrations.staging") < left.completed.index("migrations")


@pytest.mark.parametrize(
    ("detail", "shown"), [("dependency postgres: lock wait", "dependency postgres: lock wait"), ("", "503")]
)
async def test_staging_unhealthy_after_its_migration_blocks_before_staging_is_deployed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detail: str, shown: str
) -> None:
    session = await _driver(tmp_path, _migrations_plan(tmp_path, monkeypatch, ADD_COLUMN))
    _probes(session, ProbeResult(url=READY, ok=False, status=503, detail=detail))
    assert await session.rollout.run() == Outcome.BLOCKED
    assert _finished(session) == f"staging unhealthy after migration: {shown}"
    [health] = [h for h in _of(session.rollout.events, HealthChecked) if h.phase == Phase.MIGRATIONS]
    assert (health.ok, health.status, health.detail) == (False, 503, detail)
    assert "migrations-staging-run" not in session.rollout.gates  # not passed: never recorded
    assert session.world.staging.calls == []  # type: ignore[attr-defined]


async def test_a_migration_the_linter_refuses_blocks_at_the_migration_gates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _migrations_plan(tmp_path, monkeypatch, "ALTER TABLE orders DROP COLUMN note;\n")
    session = await _driver(tmp_path, plan)
    assert await session.rollout.run() == Outcome.BLOCKED
    assert _finished(session).startswith("blocked at migrations gates: migrations-lint (fail)")
    assert session.world.runner.commands == []  # type: ignore[attr-defined]


async def test_a_driver_killed_after_the_staging_migration_does_not_run_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _migrations_plan(tmp_path, monkeypatch, ADD_COLUMN)
    session = await _driver(tmp_path, plan)
    world: Any = session.world
    outcome, _ = await run_killed_at(session, match="journal health_checked")  # ran, staging being probed
    assert outcome is None and world.runner.commands == ["migrate up"]
    resumed = await _driver(tmp_path, plan, world)
    assert await resumed.rollout.run() == Outcome.COMPLETED
    assert world.runner.commands.count("migrate up") == 1
    assert resumed.rollout.gates["migrations-staging-run"].status == GateStatus.PASS


async def test_interactive_migration_gates_need_no_second_proceed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await _driver(tmp_path, _migrations_plan(tmp_path, monkeypatch, ADD_COLUMN), interactive=True)
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: rollout.allowed("proceed").ok)
    assert rollout.phase == Phase.PREFLIGHT and (await rollout.proceed("alice")).ok
    # past the pre-deploy gates, the migration gates, once satisfied, go on to staging by themselves
    await until(lambda: rollout.phase == Phase.STAGING, turns=1_000_000)
    assert not [m for _, m in _logs(session, Phase.MIGRATIONS) if "press p" in m]
    assert (await rollout.abort("alice", "test over")).ok
    await task


# --- preflight ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "why"),
    [
        ("no-such-gate", "no such gate in this plan"),
        ("ci-green", "ci-green is checked automatically; it can be overridden, not signed off"),
    ],
)
async def test_an_approval_that_cannot_be_signed_blocks_before_anything_is_touched(
    tmp_path: Path, approval: str, why: str
) -> None:
    session = await _driver(tmp_path, demo_plan(), approvals=["rollback-plan", approval])
    assert await session.rollout.run() == Outcome.BLOCKED
    assert _finished(session) == f"--approve {approval}: {why}"
    [phase] = [p for p in _of(session.rollout.events, PhaseChanged) if p.phase == Phase.PREFLIGHT]
    assert phase.reason == "checking pre-deploy gates"
    assert session.world.staging.calls == []  # type: ignore[attr-defined]


async def test_command_line_approvals_are_signed_once_even_across_a_resume(tmp_path: Path) -> None:
    plan = demo_plan()
    first = await _driver(tmp_path, plan, interactive=True, approvals=["rollback-plan"])
    rollout = first.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: "dashboards-reviewed" in rollout.gates)  # the gates are waiting for it
    signed = [(e.gate_id, e.actor, e.note, e.complete) for e in _of(rollout.events, GateSignedOff)]
    assert signed == [("rollback-plan", "tester", "approved on the command line", True)]
    gate = rollout.gates["rollback-plan"]
    assert (gate.status, gate.evidence) == (
        GateStatus.SIGNED,
        "signed by tester: approved on the command line",
    )
    # a pause and resume persist the progress with its sign-off; then the driver dies at the gates
    assert (await rollout.pause("alice", "coffee")).ok and (await rollout.resume("alice")).ok
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    resumed = await _driver(tmp_path, plan, first.world)  # approves both gates
    # signing rollback-plan again would be refused ("already signed off") and block the resumed deploy
    assert await resumed.rollout.run() == Outcome.COMPLETED
    assert [e.gate_id for e in _of(_since_resume(resumed), GateSignedOff)] == ["dashboards-reviewed"]
    assert [r.actor for r in resumed.rollout.ledger.records_for("rollback-plan", "sign")] == ["tester"]


async def test_interactive_pre_deploy_gates_wait_for_a_proceed(tmp_path: Path) -> None:
    session = await _driver(tmp_path, demo_plan(), interactive=True)
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: rollout.allowed("proceed").ok)
    await session.clock.sleep(600)  # type: ignore[attr-defined]
    assert rollout.phase == Phase.PREFLIGHT  # satisfied gates alone do not start the deploy
    assert ("info", "all gates satisfied: press p to proceed") in _logs(session)
    assert (await rollout.abort("alice", "test over")).ok
    assert await task == Outcome.ABORTED


# --- post-deploy verification ----------------------------------------------------------------------

ALERT_EVIDENCE = "1 new alert(s) since the deploy started: CheckoutSlowPayments (warning)"
ORDER = "sim://checkout/synthetic/order"


async def _verification_fails(tmp_path: Path, on_failure: str, **kwargs: Any) -> Session:
    """The demo (with a smoke command) where two checks fail in verification: an alert for the service
    that started during the canary (after the deploy began) and the place-order synthetic monitor."""
    plan = demo_plan()
    verification = plan.verification.model_copy(
        update={"on_failure": on_failure, "smoke_command": "make smoke"}
    )
    session = await _driver(tmp_path, plan.model_copy(update={"verification": verification}), **kwargs)
    world: Any = session.world
    check = world.probe.check

    async def probe(url: str, **kw: Any) -> ProbeResult:
        if url == ORDER and session.rollout.phase == Phase.VERIFY:
            return ProbeResult(url=url, ok=False, status=500, detail="order API down")
        return await check(url, **kw)  # type: ignore[no-any-return]

    def on_event(event: Any) -> None:
        if isinstance(event, PhaseChanged) and event.phase == Phase.VERIFY and not world.alerts.alerts:
            started = session.clock.now() - timedelta(minutes=20)
            labels = {"severity": "warning", "service": "checkout"}
            world.alerts.alerts.append(Alert(name="CheckoutSlowPayments", labels=labels, starts_at=started))

    world.probe.check = probe
    session.rollout.subscribe(on_event)
    return session


def _summary(session: Session) -> str:
    gates = session.rollout.gates
    assert (gates["verify-no-new-alerts"].status, gates["verify-synthetics"].status) == (GateStatus.FAIL,) * 2
    assert gates["verify-no-new-alerts"].evidence == ALERT_EVIDENCE
    assert gates["verify-smoke"].status == GateStatus.PASS  # the smoke command ran, and passed
    assert "pre-deploy baseline 0.42 %" in gates["verify-error-rate"].evidence
    return f"verify-no-new-alerts: {ALERT_EVIDENCE}; verify-synthetics: {gates['verify-synthetics'].evidence}"


async def test_a_failed_verification_headless_takes_the_command_lines_rollback(tmp_path: Path) -> None:
    session = await _verification_fails(tmp_path, "ask")
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    summary = _summary(session)
    [asked] = _of(session.rollout.events, DecisionRequired)
    question = f"verification failed ({summary}). Roll back (recommended, POL-010) or fix forward?"
    assert (asked.question, asked.options, asked.recommended) == (
        question,
        ["rollback", "fix_forward"],
        "rollback",
    )
    assert ("info", "headless: decision taken from the command line: rollback") in _logs(
        session, Phase.VERIFY
    )
    [trigger] = _of(session.rollout.events, RollbackTriggered)
    assert (trigger.actor, trigger.automatic, trigger.rule) == ("engine", True, "verification")
    assert trigger.reason == f"verification failed: {summary}"
    # the checks ran at the window's start as well as at its end, and the window is verification's
    windows = [
        (w.name, w.duration_s) for w in _of(session.rollout.events, WindowStarted) if w.phase == Phase.VERIFY
    ]
    assert windows == [("verification", 900.0)]
    checks = [
        g for g in _of(session.rollout.events, GateEvaluated) if g.gate.gate_id == "verify-no-new-alerts"
    ]
    assert [g.gate.status for g in checks] == [GateStatus.FAIL, GateStatus.FAIL]


async def test_a_failed_verification_fixed_forward_completes_with_the_failures_on_record(
    tmp_path: Path,
) -> None:
    session = await _verification_fails(tmp_path, "ask", decision_default="fix_forward")
    assert await session.rollout.run() == Outcome.COMPLETED
    summary = _summary(session)
    logs = _logs(session, Phase.VERIFY)
    assert ("info", "headless: decision taken from the command line: fix_forward") in logs
    assert ("warning", f"fix-forward chosen; failing checks stay on record: {summary}") in logs
    assert _of(session.rollout.events, RollbackTriggered) == []
    assert _left(session).results["verify"] == summary
    [message] = session.world.notifier.sent  # type: ignore[attr-defined]
    assert message.text.endswith(f". Fix-forward chosen with failing checks: {summary}")


@pytest.mark.parametrize("on_failure", ["rollback", "fix_forward"])
async def test_a_plan_that_decides_up_front_is_not_asked(tmp_path: Path, on_failure: str) -> None:
    # the command line's default (rollback) does not overrule the plan's fix_forward
    session = await _verification_fails(tmp_path, on_failure)
    outcome = await session.rollout.run()
    assert _of(session.rollout.events, DecisionRequired) == []
    assert not [m for _, m in _logs(session) if m.startswith("headless: decision")]
    summary = _summary(session)
    if on_failure == "rollback":
        assert outcome == Outcome.ROLLED_BACK
        [trigger] = _of(session.rollout.events, RollbackTriggered)
        assert trigger.reason == f"verification failed: {summary}"
    else:
        assert outcome == Outcome.COMPLETED
        assert _left(session).results["verify"] == summary


@pytest.mark.parametrize("choice", ["rollback", "fix_forward"])
async def test_an_interactive_verification_failure_pauses_until_a_person_decides(
    tmp_path: Path, choice: str
) -> None:
    session = await _verification_fails(tmp_path, "ask", interactive=True)
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: rollout.allowed("proceed").ok)
    assert (await rollout.proceed("alice")).ok
    await until(lambda: rollout._decision_pending is not None, turns=2_000_000)
    assert rollout.phase == Phase.PAUSED
    clock: Any = session.clock
    sleep, naps = clock.sleep, []

    async def sleeping(seconds: float) -> None:
        if rollout._decision_pending is not None:
            naps.append(seconds)
        await sleep(seconds)

    clock.sleep = sleeping
    [paused] = _of(rollout.events, Paused)
    assert (paused.actor, paused.reason) == ("engine", "verification failed: decide rollback or fix-forward")
    await sleep(3600)  # the test's own wait, not recorded
    assert not task.done() and rollout._decision_pending is not None  # waits for a person, however long
    # the wait looks for a decision (or a stop) once per analysis interval, not in a busy loop
    assert naps and set(naps) == {30.0}
    assert (await rollout.decide(choice, "alice")).ok
    outcome = await task
    assert rollout._decision_pending is None
    assert outcome == (Outcome.ROLLED_BACK if choice == "rollback" else Outcome.COMPLETED)
    assert not [m for _, m in _logs(session) if m.startswith("headless: decision")]


# --- completion -----------------------------------------------------------------------------------


def _completion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Plan, list[Any], list[Any]]:
    """The demo with a tickets webhook and a feature flag; the ticket system and the flag endpoint
    are recorded fakes (the flag endpoint accepts every percentage)."""
    from core import completion
    from core.completion import TicketResult
    from core.plan import CompletionSpec, FeatureFlagSpec

    tickets: list[Any] = []
    flags: list[Any] = []

    async def close_tickets(plan: Plan, *, deploy_id: str = "", summary: str = "", **_: Any) -> list[Any]:
        tickets.append((plan.change.id, deploy_id, summary))
        return [
            TicketResult(ticket="SHOP-311", closed=True, via="webhook", detail="HTTP 200"),
            TicketResult(ticket="SHOP-312", closed=False, via="github"),
        ]

    async def set_flag(client: Any, flag: Any, percent: int, timeout_s: float) -> str:
        flags.append((flag.name, percent))
        return "flags.example answered HTTP 503" if flag.url.endswith("/refuses") else ""

    monkeypatch.setattr(completion, "close_tickets", close_tickets)
    monkeypatch.setattr(completion, "_set_flag", set_flag)
    flag = FeatureFlagSpec(name="new-checkout", url="https://flags.example/set", steps=[10, 100], observe=60)
    spec = CompletionSpec(tickets_webhook="https://tickets.example/hook", feature_flags=[flag])
    return demo_plan().model_copy(update={"completion": spec}), tickets, flags


def _said_by(session: Session, source: str) -> list[tuple[str, str]]:
    return [(e.level, e.message) for e in _of(session.rollout.events, LogLine) if e.source == source]


async def test_completion_closes_the_tickets_and_rolls_the_flags_out_while_watching_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, tickets, flags = _completion(tmp_path, monkeypatch)
    session = await _driver(tmp_path, plan)
    assert await session.rollout.run() == Outcome.COMPLETED
    rollout = session.rollout
    [phase] = [p for p in _of(rollout.events, PhaseChanged) if p.phase == Phase.COMPLETE]
    assert phase.reason == "deploy complete"
    [(change, deploy_id, summary)] = tickets
    assert change == "CHG-2041"
    assert deploy_id == rollout.deploy_id
    assert summary.startswith("checkout 1.4.2 → 1.5.0 complete in 1h")
    assert summary.endswith(
        "canary 5 % → 25 % → 50 % → 100 % → 0 %; change CHG-2041; signed off by "
        "tester (dashboards-reviewed), tester (rollback-plan)"
    )
    assert _said_by(session, "completion") == [
        ("info", "ticket SHOP-311: closed via webhook HTTP 200"),
        ("warning", "ticket SHOP-312: NOT closed via github"),
    ]
    assert flags == [("new-checkout", 10), ("new-checkout", 100)]
    assert _said_by(session, "feature flags") == [
        ("info", "flag new-checkout at 10 %: ok observed 1m"),
        ("info", "flag new-checkout at 100 %: ok observed 1m"),
    ]
    # each flag step was watched on production against the baseline measured before the deploy
    watched = [s for s in _of(rollout.events, AnalysisSample) if s.phase == Phase.COMPLETE]
    assert [(s.weight, s.elapsed_s, s.window_s, s.verdict) for s in watched] == [(100, 0, 0, "healthy")] * 2
    assert rollout._baseline_ref is not None and rollout._baseline_ref.error_rate is not None
    assert watched[0].baseline_error_rate == pytest.approx(rollout._baseline_ref.error_rate * 100)


@pytest.mark.parametrize("problem", ["no_data", "fired", "refused"])
async def test_a_flag_step_that_hurts_production_is_set_back_to_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    plan, _, flags = _completion(tmp_path, monkeypatch)
    if problem == "refused":  # the flag endpoint refuses the first step: nothing to set back
        [flag] = plan.completion.feature_flags
        refusing = flag.model_copy(update={"url": "https://flags.example/refuses"})
        plan = plan.model_copy(
            update={"completion": plan.completion.model_copy(update={"feature_flags": [refusing]})}
        )
    session = await _driver(tmp_path, plan)
    real = session.world.metrics
    # both the error rate and p99 of the new version are far over their limits
    hurt = WorkloadSample(requests=30_000, error_rate=0.08, p99=2.0)

    class Hurt:
        async def canary_metrics(self, window_s: float) -> CanaryMetrics:
            if problem == "no_data":
                raise PortError("prometheus: connection refused")
            read = await real.canary_metrics(window_s)  # type: ignore[union-attr]
            return read.model_copy(update={"canary": hurt})

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    def on_event(event: Any) -> None:
        if isinstance(event, PhaseChanged) and event.phase == Phase.COMPLETE:
            session.world.metrics = Hurt()  # type: ignore[assignment]

    session.rollout.subscribe(on_event)
    assert await session.rollout.run() == Outcome.COMPLETED
    [(level, message)] = _said_by(session, "feature flags")
    assert level == "warning"
    if problem == "refused":
        assert flags == [("new-checkout", 10)]
        assert message == "flag new-checkout at 10 %: failed flags.example answered HTTP 503"
        return
    assert flags == [("new-checkout", 10), ("new-checkout", 0)]  # stopped at 10 %, set back to 0 %
    head = "flag new-checkout at 10 %: failed, set back to 0 % observation failed: "
    if problem == "no_data":
        assert message == head + "no data: prometheus: connection refused; flag set back to 0 %"
    else:
        error = "canary 8.00 % vs baseline 0.42 %: +7.58 pp > 0.50 pp"
        assert message.startswith(f"{head}{error}; canary p99 ")  # every rule that fired, in turn
        assert message.endswith("; flag set back to 0 %")


@pytest.mark.parametrize("kill_at", ["journal notification_sent", "journal finished"])
async def test_a_completion_resumed_after_a_kill_notifies_and_closes_tickets_only_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_at: str
) -> None:
    plan, tickets, flags = _completion(tmp_path, monkeypatch)
    session = await _driver(tmp_path, plan)
    world: Any = session.world
    outcome, _ = await run_killed_at(session, match=kill_at)
    assert outcome is None
    resumed = await _driver(tmp_path, plan, world)
    assert await resumed.rollout.run() == Outcome.COMPLETED
    assert len(world.notifier.sent) == 1
    assert len(tickets) == 1 and flags == [("new-checkout", 10), ("new-checkout", 100)]


async def test_an_approval_short_of_its_signers_is_journaled_incomplete_and_blocks(tmp_path: Path) -> None:
    plan = demo_plan()
    manual = [
        m.model_copy(update={"signers": 2}) if m.id == "rollback-plan" else m for m in plan.gates.manual
    ]
    plan = plan.model_copy(update={"gates": plan.gates.model_copy(update={"manual": manual})})
    session = await _driver(tmp_path, plan)
    assert await session.rollout.run() == Outcome.BLOCKED
    signed = [(e.gate_id, e.complete) for e in _of(session.rollout.events, GateSignedOff)]
    assert signed == [("rollback-plan", False), ("dashboards-reviewed", True)]  # a second person must sign
    assert _finished(session).startswith("blocked at pre-deploy gates: rollback-plan")
