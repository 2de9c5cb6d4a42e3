"""The engine's staging and migrations steps (issue 16; verification, preflight and completion are in
test_mutants_rollout_steps_end.py).

Written against `make mutate MUTATE_MODULES=core.rollout` in steps/staging.py and steps/migrations.py:
the soak reads staging's new version against production's stable one and blocks (and reverts staging)
on a regression, on no data and on an early clear regression; a staging migration is announced before it
runs, runs once, and staging must be healthy after it. All in memory, in virtual time.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.domain import CanaryMetrics, GateStatus, Outcome, Phase, ProbeResult, WorkloadSample
from core.events import (
    AnalysisSample,
    GateEvaluated,
    HealthChecked,
    LogLine,
    PhaseChanged,
    WindowStarted,
)
from core.plan import MigrationsSpec, Plan, SoakSpec
from core.rollout.progress import RolloutStatus
from core.session import Session, demo_plan
from tests.engine_helpers import until
from tests.resume_helpers import run_killed_at
from tests.rollout_steps_helpers import (
    IMAGE,
    driver,
    finished_reason,
    left_in_cluster,
    log_lines,
    since_resume,
)
from tests.test_mutants_rollout import _of

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
    session = await driver(tmp_path, demo_plan().model_copy(update={"staging": staging}))
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
    passed = [m for _, m in log_lines(session, Phase.STAGING) if m.startswith("staging soak passed")]
    assert passed == ["staging soak passed over 5m: staging 0.40 % vs baseline 0.41 %: -0.01 pp < 0.10 pp"]
    assert left_in_cluster(session).results["staging"] == "staging deployed, gates green, soak passed"


def _blocked_in_staging(session: Session) -> None:
    """A failed soak: blocked in staging, staging reverted to the version before, production untouched."""
    rollout = session.rollout
    assert rollout.phase == Phase.BLOCKED
    assert session.world.staging.calls[-1] == "rollback"  # type: ignore[attr-defined]
    assert session.world.staging.stable_image.endswith(":1.4.2")  # type: ignore[attr-defined]
    assert [c for c in session.world.production.calls if c.startswith("deploy")] == []  # type: ignore[attr-defined]
    reverting = [
        (lvl, m) for lvl, m in log_lines(session) if "reverting staging" in m or "staging reverted" in m
    ]
    assert reverting == [
        ("warning", f"{finished_reason(session)}; reverting staging to 1.4.2"),
        ("info", "staging reverted: stable runs registry.example.com/shop/checkout:1.4.2"),
    ]


async def test_a_regression_over_the_whole_soak_blocks_and_reverts_staging(tmp_path: Path) -> None:
    # each 5-minute read holds too few requests to be certain; the read over the whole soak is certain
    bad = WorkloadSample(requests=9_000, error_rate=0.012, p99=0.2)
    session, reads = await _soak_session(tmp_path, lambda n, w: bad if w == 600 else STAGING, duration=600)
    assert await session.rollout.run() == Outcome.BLOCKED
    assert reads.windows[-1] == 600 and session.rollout.window is None  # the soak's window is over
    assert finished_reason(session) == (
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
    assert finished_reason(session) == (
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
    assert finished_reason(session) == f"staging soak: no data: {why}"
    _blocked_in_staging(session)


async def test_a_staging_that_cannot_be_reverted_says_so_and_still_blocks(tmp_path: Path) -> None:
    clear = WorkloadSample(requests=3_000, error_rate=0.05, p99=0.2)
    session, _ = await _soak_session(tmp_path, lambda n, w: clear)
    session.world.staging.fail_rollbacks = 1  # type: ignore[attr-defined]
    assert await session.rollout.run() == Outcome.BLOCKED
    assert finished_reason(session).startswith("staging soak failed early: ")
    assert log_lines(session)[-1] == (
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
    assert (
        finished_reason(session) == "staging soak needs metrics for staging and production; none configured"
    )
    assert "staging soak" not in [w.name for w in _of(session.rollout.events, WindowStarted)]


async def test_a_resumed_staging_step_does_not_deploy_or_run_the_e2e_suite_again(tmp_path: Path) -> None:
    plan = demo_plan()
    session = await driver(tmp_path, plan)
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
    progress = [m for _, m in log_lines(session, Phase.STAGING) if m.startswith("staging rollout: ")]
    assert progress == [f"staging rollout: stable: {p} % of pods ready" for p in (25, 50, 75, 100)]
    assert left_in_cluster(session).results["staging.deploy"] == "1.5.0 rolled out"
    deployed = session.rollout.gates["staging-deploy"]
    assert (deployed.status, deployed.evidence) == (GateStatus.PASS, "1.5.0 rolled out")
    assert left_in_cluster(session).results["staging.gates"] == "staging gates satisfied"
    resumed = await driver(tmp_path, plan, world)
    assert await resumed.rollout.run() == Outcome.COMPLETED
    assert world.staging.calls.count(f"deploy:stable:{IMAGE}") == 1
    assert world.runner.commands.count("make e2e ENV=staging") == 1
    assert not [g for g in _of(since_resume(resumed), GateEvaluated) if g.phase == Phase.STAGING]


class _SoakWatch:
    """An interactive driver with a 5-minute soak, run past the pre-deploy gates into the soak. On the
    clock: when the soak's window started (``started``), its end each time it was set (``ends``), and
    when the soak passed (``passed``)."""

    def __init__(self, session: Session) -> None:
        self.session, self.rollout, self.clock = session, session.rollout, session.clock
        self.started: list[Any] = []
        self.ends: list[Any] = []
        self.passed: list[Any] = []
        self.rollout.subscribe(self._on_event)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, WindowStarted) and event.name == "staging soak":
            self.started.append(self.clock.now())
            self.ends.append(event.ends_at)
        if isinstance(event, LogLine) and event.message.startswith("staging soak passed"):
            self.passed.append(self.clock.now())

    @classmethod
    async def into_the_soak(cls, tmp_path: Path) -> tuple[_SoakWatch, asyncio.Task[Any]]:
        staging = demo_plan().staging.model_copy(update={"soak": SoakSpec(duration=300.0)})
        plan = demo_plan().model_copy(update={"staging": staging})
        watch = cls(await driver(tmp_path, plan, interactive=True))
        task = asyncio.create_task(watch.rollout.run())
        await until(lambda: watch.rollout.allowed("proceed").ok)
        assert (await watch.rollout.proceed("alice")).ok
        await until(lambda: bool(watch.started), turns=1_000_000)
        return watch, task


async def test_a_command_during_the_soak_wakes_the_engine_but_never_shortens_the_soak(tmp_path: Path) -> None:
    """`g` (re-check the gates) wakes the engine's nap, so it answers at once; a soak interval still
    counts only once it has passed whole. It used to count every early read as a whole interval: a
    person pressing g every 10 s ended a 5-minute soak after 100 s."""
    watch, task = await _SoakWatch.into_the_soak(tmp_path)
    presses = 0
    while not watch.passed:
        await watch.clock.sleep(10)
        if not watch.passed and (await watch.rollout.refresh_gates("alice")).ok:
            presses += 1
    assert presses >= 25  # g was pressed all through the soak, every 10 s
    assert watch.passed[0] - watch.started[0] >= timedelta(seconds=300)
    assert [s.elapsed_s for s in _soak_samples(watch.session)] == [30.0 * n for n in range(1, 11)]
    assert (await watch.rollout.abort("alice", "test over")).ok
    await task


async def test_a_pause_in_the_soak_counts_neither_the_interval_it_cut_nor_the_stub_a_resume_cut(
    tmp_path: Path,
) -> None:
    """Paused 45 s into a 5-minute soak and resumed 30 s later: the interval that ended paused and the
    15 s stub the resume cut short are not observed time, so the soak ends after 300 s of it. (A pause
    that starts and ends inside one interval leaves it counted: the clock is read per interval.)"""
    watch, task = await _SoakWatch.into_the_soak(tmp_path)
    await watch.clock.sleep(45)
    assert (await watch.rollout.pause("alice", "look at staging")).ok
    await watch.clock.sleep(30)
    assert (await watch.rollout.resume("alice")).ok
    await until(lambda: bool(watch.passed), turns=1_000_000)
    # one whole interval before the pause, nine after the resume: 75 s + 270 s
    assert watch.passed[0] - watch.started[0] == timedelta(seconds=345)
    # and the countdown said so from the resume on: the end moved out to now + the 270 s still to observe
    assert watch.ends[-1] == watch.started[0] + timedelta(seconds=345)
    assert (await watch.rollout.abort("alice", "test over")).ok
    await task


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
            seen.append((url, kwargs.get("timeout_s", -1.0), left_in_cluster(session).pending))
        if answer is not None and url == READY:
            return answer
        return await check(url, **kwargs)  # type: ignore[no-any-return]

    world.probe.check = probe
    return seen


async def test_a_staging_migration_is_announced_runs_then_staging_must_answer_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await driver(tmp_path, _migrations_plan(tmp_path, monkeypatch, ADD_COLUMN))
    world: Any = session.world
    pending: list[str | None] = []
    run = world.runner.run

    async def running(command: str, **kwargs: Any) -> Any:
        pending.append(left_in_cluster(session).pending)
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
    left = left_in_cluster(session)
    assert left.results["migrations.staging"] == "ran on staging"
    assert left.completed.index("migrations.staging") < left.completed.index("migrations")


@pytest.mark.parametrize(
    ("detail", "shown"), [("dependency postgres: lock wait", "dependency postgres: lock wait"), ("", "503")]
)
async def test_staging_unhealthy_after_its_migration_blocks_before_staging_is_deployed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detail: str, shown: str
) -> None:
    session = await driver(tmp_path, _migrations_plan(tmp_path, monkeypatch, ADD_COLUMN))
    _probes(session, ProbeResult(url=READY, ok=False, status=503, detail=detail))
    assert await session.rollout.run() == Outcome.BLOCKED
    assert finished_reason(session) == f"staging unhealthy after migration: {shown}"
    [health] = [h for h in _of(session.rollout.events, HealthChecked) if h.phase == Phase.MIGRATIONS]
    assert (health.ok, health.status, health.detail) == (False, 503, detail)
    assert "migrations-staging-run" not in session.rollout.gates  # not passed: never recorded
    assert session.world.staging.calls == []  # type: ignore[attr-defined]


async def test_a_migration_the_linter_refuses_blocks_at_the_migration_gates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _migrations_plan(tmp_path, monkeypatch, "ALTER TABLE orders DROP COLUMN note;\n")
    session = await driver(tmp_path, plan)
    assert await session.rollout.run() == Outcome.BLOCKED
    assert finished_reason(session).startswith("blocked at migrations gates: migrations-lint (fail)")
    assert session.world.runner.commands == []  # type: ignore[attr-defined]


async def test_a_driver_killed_after_the_staging_migration_does_not_run_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _migrations_plan(tmp_path, monkeypatch, ADD_COLUMN)
    session = await driver(tmp_path, plan)
    world: Any = session.world
    outcome, _ = await run_killed_at(session, match="journal health_checked")  # ran, staging being probed
    assert outcome is None and world.runner.commands == ["migrate up"]
    resumed = await driver(tmp_path, plan, world)
    assert await resumed.rollout.run() == Outcome.COMPLETED
    assert world.runner.commands.count("migrate up") == 1
    assert resumed.rollout.gates["migrations-staging-run"].status == GateStatus.PASS


async def test_interactive_migration_gates_need_no_second_proceed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await driver(tmp_path, _migrations_plan(tmp_path, monkeypatch, ADD_COLUMN), interactive=True)
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: rollout.allowed("proceed").ok)
    assert rollout.phase == Phase.PREFLIGHT and (await rollout.proceed("alice")).ok
    # past the pre-deploy gates, the migration gates, once satisfied, go on to staging by themselves
    await until(lambda: rollout.phase == Phase.STAGING, turns=1_000_000)
    assert not [m for _, m in log_lines(session, Phase.MIGRATIONS) if "press p" in m]
    assert (await rollout.abort("alice", "test over")).ok
    await task
