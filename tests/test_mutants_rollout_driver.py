"""The driver's stops that are not the deploy's own: a lost lease and a signal (issue 16, core.rollout).

Written against `make mutate MUTATE_MODULES=core.rollout` in driver.py, whose lease-loss and signal
functions no test of that module's selection reached: a driver that lost its lease journals the loss
and a blocked finish naming the weight it stopped at, writes nothing more to the cluster, and leaves the
deploy resumable; a signal stops it where it stands, unfinished, and either stop is taken only once and
never after the outcome. All in memory, in virtual time.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from core.clock import VirtualClock
from core.domain import Outcome, Phase
from core.events import (
    AnalysisSample,
    Finished,
    GateEvaluated,
    LeaseLost,
    LogLine,
    PhaseChanged,
    RollbackTriggered,
    RunInterrupted,
    RunResumed,
    TrafficChanged,
)
from core.policy import gates_for
from core.ports import PortError
from core.rollout.progress import RolloutStatus
from core.session import Session, open_session
from tests.engine_helpers import plan_with_one_migration, sim_session
from tests.resume_helpers import open_driver, run_killed_at
from tests.test_mutants_rollout import _of

_LOST_TAIL = "(no further cluster writes; the rollout is left for the lease holder or a resume)"


def _at_25(session: Session, act: Any) -> None:
    """Call ``act()`` the moment the canary's 25 % is applied (once)."""
    done: list[bool] = []

    def on_event(event: Any) -> None:
        if isinstance(event, TrafficChanged) and event.applied and event.effective == 25 and not done:
            done.append(True)
            act()

    session.rollout.subscribe(on_event)


def _left(session: Session) -> RolloutStatus:
    inner: Any = session.rollout.world.production.inner  # type: ignore[attr-defined]
    status = RolloutStatus.from_state(inner.state)
    assert status is not None
    return status


async def test_a_lease_lost_mid_canary_stops_there_journals_it_and_stays_resumable(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    seen: list[int] = []
    interrupted: list[bool] = []

    def lose() -> None:
        seen.append(len(inner.calls))
        rollout.lease_lost("taken over by next-driver")
        rollout.lease_lost("a second report")  # the first loss is the one that counts
        interrupted.append(rollout.interrupt("SIGTERM", 143))  # already stopping: no signal on top

    _at_25(session, lose)
    assert await rollout.run() == Outcome.BLOCKED
    assert inner.calls[seen[0] :] == []  # not one more cluster call after the loss: no rollback
    assert interrupted == [False] and rollout.interrupted is None
    assert inner.calls[-1] == "weight:25" and inner.weight == 25
    [lost] = _of(rollout.events, LeaseLost)
    assert (lost.reason, lost.weight) == ("taken over by next-driver", 25)
    [finished] = _of(rollout.events, Finished)
    assert finished.outcome == Outcome.BLOCKED
    assert finished.reason == (
        f"lease lost: taken over by next-driver; stopped acting with canary at 25 % {_LOST_TAIL}"
    )
    assert rollout.events[-2:] == [lost, finished]
    left = _left(session)
    assert left.outcome is None and not left.finished  # resumable by the lease holder or a resume
    assert rollout.outcome == Outcome.BLOCKED and rollout.window is None
    # once the outcome is in, a late loss report changes nothing
    rollout.lease_lost("late")
    assert rollout._lease_lost == "taken over by next-driver"


@pytest.mark.parametrize(("told", "reason"), [("never acquired in time", None), ("", "lease lost")])
async def test_a_lease_lost_before_the_first_step_does_nothing_at_all(
    tmp_path: Path, told: str, reason: str | None
) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    rollout.lease_lost(told)  # a keeper with nothing to say still stops the driver
    reason = reason or told
    assert await rollout.run() == Outcome.BLOCKED
    assert inner.calls == [] and inner.state is None
    [lost] = _of(rollout.events, LeaseLost)
    assert (lost.reason, lost.weight) == (reason, 0)
    [finished] = _of(rollout.events, Finished)
    assert finished.reason == f"lease lost: {reason}; stopped acting with canary at 0 % {_LOST_TAIL}"
    assert finished.duration_s == 0.0  # it never started: no time spent deploying


async def test_a_lease_lost_after_the_outcome_is_ignored(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    assert await rollout.run() == Outcome.COMPLETED
    rollout.lease_lost("expired while closing")
    assert rollout._lease_lost is None
    assert not _of(rollout.events, LeaseLost)
    assert not rollout.interrupt("SIGTERM", 143)  # only closing: nothing to stop
    assert rollout.interrupted is None


@pytest.mark.parametrize("refused", [False, True])
async def test_a_signal_mid_canary_stops_it_where_it_stands_unfinished(tmp_path: Path, refused: bool) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    write = inner.write_state
    writes: list[tuple[int, dict[str, Any]]] = []  # (events journaled by then, state)

    async def counting(state: dict[str, Any]) -> None:
        writes.append((len(rollout.events), state))
        if refused and _of(rollout.events, RunInterrupted):
            raise PortError("PUT state: 409 conflict (test)")  # bookkeeping: never holds the stop up
        await write(state)

    inner.write_state = counting
    answers: list[bool] = []
    seen: list[tuple[int, int, bool]] = []

    def signal(event: Any) -> None:
        if isinstance(event, AnalysisSample) and event.weight == 25 and not seen:
            seen.append((len(inner.calls), len(writes), rollout.window is not None))
            answers.append(rollout.interrupt("SIGTERM", 143))
            answers.append(rollout.interrupt("SIGINT", 130))  # already stopping: the first signal counts

    rollout.subscribe(signal)
    assert await rollout.run() == Outcome.BLOCKED
    assert answers == [True, False]
    assert rollout.interrupted == ("SIGTERM", 143)
    [stopped] = _of(rollout.events, RunInterrupted)
    assert (stopped.signal, stopped.weight, stopped.exit_code) == ("SIGTERM", 25, 143)
    assert stopped.reason == (
        "SIGTERM received: stopped where it stands (canary at 25 %, nothing rolled back); the lease is "
        "released and `deploydeck run` of the same plan resumes it"
    )
    assert rollout.events[-1] == stopped
    assert not [e for e in rollout.events if isinstance(e, Finished | LeaseLost)]
    # nothing after the signal but the progress as it stands: no rollback, no weight change
    [(calls, written, in_window)] = seen
    assert in_window and rollout.window is None  # stopped inside the step's window, which is closed
    assert inner.calls[calls:] == [] and inner.weight == 25
    # the progress as it stands is written once the stop is journaled: unfinished, a resume continues it
    [last] = [state for journaled, state in writes[written:] if journaled == len(rollout.events)]
    assert last["outcome"] is None and last["weight"] == 25 and last["phase"] == "canary"
    assert rollout.outcome is None


async def test_a_signal_before_the_first_step_stops_at_once(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    assert rollout.interrupt("SIGHUP", 129)
    assert await rollout.run() == Outcome.BLOCKED
    assert inner.calls == []
    [stopped] = _of(rollout.events, RunInterrupted)
    assert (stopped.signal, stopped.weight, stopped.exit_code) == ("SIGHUP", 0, 129)
    assert stopped.reason.startswith("SIGHUP received: stopped where it stands (canary at 0 %,")


async def test_a_lease_lost_during_the_rollbacks_retries_stops_the_retries(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    inner.fail_rollbacks = 100
    rollout.subscribe(
        lambda e: (
            rollout.lease_lost("taken over")
            if getattr(e, "action", None) == "attempt_failed" and "attempt 3:" in e.detail
            else None
        )
    )
    assert await asyncio.wait_for(rollout.run(), 60) == Outcome.BLOCKED
    assert inner.calls.count("rollback") == 3
    [lost] = _of(rollout.events, LeaseLost)
    assert lost.reason == "taken over" and lost.weight == 25


async def test_a_rollback_decision_is_persisted_whole_before_it_is_journaled_and_resumed_as_it_was(
    tmp_path: Path,
) -> None:
    first = await open_driver(None, tmp_path, scenario="bad-canary")
    world = first.world
    outcome, _ = await run_killed_at(first, match="journal rollback_triggered")
    assert outcome is None  # killed after persisting the decision, before journaling or acting on it
    inner: Any = world.production.inner  # type: ignore[attr-defined]
    left = RolloutStatus.from_state(inner.state)
    assert left is not None and left.stop is not None
    stop = left.stop.model_dump()
    assert stop.pop("reason").startswith("error rate above baseline: canary ")
    assert stop == {
        "kind": "rollback",
        "actor": "engine",
        "automatic": True,
        "rule": "error_rate",
        "weight_at_trigger": 25,
    }
    second = await open_driver(world, tmp_path, scenario="bad-canary")
    assert await second.rollout.run() == Outcome.ROLLED_BACK
    [trigger] = _of(second.rollout.events, RollbackTriggered)
    assert (trigger.actor, trigger.automatic, trigger.rule, trigger.weight_at_trigger) == (
        "engine",
        True,
        "error_rate",
        25,
    )
    [note] = [e for e in _of(second.rollout.events, LogLine) if e.source == "session"]
    assert note.message.startswith(f"resuming unfinished deploy {first.rollout.deploy_id} of ")
    # the decision is carried out as it was taken: not taken again by a canary analysed anew
    resumed = next(i for i, e in enumerate(second.rollout.events) if isinstance(e, RunResumed))
    assert not _of(second.rollout.events[resumed:], AnalysisSample)


async def test_a_refused_write_of_the_decision_does_not_hold_the_rollback_up(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    write = inner.write_state

    async def refusing_the_decision(state: dict[str, Any]) -> None:
        if state.get("stop") is not None and not _of(rollout.events, RollbackTriggered):
            raise PortError("PUT state: 409 conflict (test)")
        await write(state)

    inner.write_state = refusing_the_decision
    assert await rollout.run() == Outcome.ROLLED_BACK
    [trigger] = _of(rollout.events, RollbackTriggered)
    assert (trigger.rule, trigger.weight_at_trigger) == ("error_rate", 25)
    assert not [e for e in _of(rollout.events, LogLine) if e.level == "error"]
    assert inner.calls[-2:] == ["weight:25", "rollback"]


async def test_a_manual_rollback_carries_the_last_analysis_as_its_evidence(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout

    def on_event(event: Any) -> None:
        if isinstance(event, AnalysisSample) and event.weight == 25:
            asyncio.get_running_loop().create_task(rollout.rollback("carol", "dashboards look wrong"))

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.ROLLED_BACK
    [trigger] = _of(rollout.events, RollbackTriggered)
    assert (trigger.actor, trigger.automatic, trigger.rule) == ("carol", False, "manual")
    last = [s for s in _of(rollout.events, AnalysisSample) if s.ts <= trigger.ts][-1]
    assert trigger.samples == [last] and trigger.readings == last.readings and last.readings


async def test_an_abort_is_journaled_as_a_warning_in_the_name_of_whoever_asked(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    _at_25(session, lambda: asyncio.get_running_loop().create_task(rollout.abort("alice", "wrong build")))
    assert await rollout.run() == Outcome.ABORTED
    [line] = [e for e in _of(rollout.events, LogLine) if e.message.startswith("abort requested")]
    assert (line.level, line.source, line.message) == (
        "warning",
        "alice",
        "abort requested by alice: wrong build",
    )
    assert not _of(rollout.events, RollbackTriggered)


@pytest.mark.parametrize("stop", ["lease", "signal"])
async def test_a_driver_stopped_as_a_rollback_is_decided_leaves_the_rollback_to_the_next(
    tmp_path: Path, stop: str
) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    _at_25(session, lambda: asyncio.get_running_loop().create_task(rollout.rollback("carol", "looks wrong")))

    def stopped(event: Any) -> None:
        if isinstance(event, RollbackTriggered):
            if stop == "lease":
                rollout.lease_lost("taken over")
            else:
                rollout.interrupt("SIGTERM", 143)

    rollout.subscribe(stopped)
    assert await rollout.run() == Outcome.BLOCKED
    assert "rollback" not in inner.calls and inner.weight == 25  # not rolled back by a driver that stopped
    assert len(_of(rollout.events, LeaseLost if stop == "lease" else RunInterrupted)) == 1
    left = _left(session)
    assert left.outcome is None and left.stop is not None and left.stop.kind == "rollback"  # for the next


async def test_a_manual_rollback_stops_the_step_under_way_at_once(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    asked: list[int] = []

    def on_event(event: Any) -> None:
        # the canary's pods are still starting: the flow is waiting for them
        if (
            isinstance(event, LogLine)
            and event.message == "canary rollout: canary: 25 % of pods ready"
            and not asked
        ):
            asked.append(len(inner.calls))
            asyncio.get_running_loop().create_task(rollout.rollback("carol", "wrong image"))

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.ROLLED_BACK
    assert inner.calls[asked[0] :] == ["rollback"]  # no weight was set after the request
    [trigger] = _of(rollout.events, RollbackTriggered)
    applied = next(e for e in _of(rollout.events, TrafficChanged) if e.detail == "rollback")
    assert applied.ts == trigger.ts  # the wait for the pods was cut short, not sat out


async def test_a_completed_deploy_says_why_and_records_stable_as_it_was_before(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    assert await session.rollout.run() == Outcome.COMPLETED
    [finished] = _of(session.rollout.events, Finished)
    assert finished.reason == "all gates passed, canary promoted, verification green"
    assert _left(session).stable_before == "registry.example.com/shop/checkout:1.4.2"


async def test_a_stable_image_that_cannot_be_read_at_the_start_is_recorded_unknown(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    inner: Any = session.rollout.world.production.inner  # type: ignore[attr-defined]
    describe, failed = inner.describe, []

    async def failing_once() -> Any:
        if not failed:
            failed.append(True)
            raise PortError("GET deployments/checkout: 503 (test)")
        return await describe()

    inner.describe = failing_once
    assert await session.rollout.run() == Outcome.COMPLETED
    assert failed and _left(session).stable_before is None  # unknown, not "" (which no image equals)


async def test_a_blocked_deploy_is_blocked_in_its_phase_and_its_finish_with_the_reason(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "healthy", approve=False)  # nobody signed the manual gates
    rollout = session.rollout
    assert await rollout.run() == Outcome.BLOCKED
    [finished] = _of(rollout.events, Finished)
    last = _of(rollout.events, PhaseChanged)[-1]
    assert (last.phase, last.reason) == (Phase.BLOCKED, finished.reason)
    assert finished.reason and _left(session).outcome == "blocked"


@pytest.mark.parametrize(("refused", "outcome"), [("preflight", Outcome.ERROR), ("canary.step.0", None)])
async def test_a_cluster_failing_before_traffic_ends_in_error_and_after_it_rolls_back(
    tmp_path: Path, refused: str, outcome: Outcome | None
) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    write, refusals = inner.write_state, []
    error = "PUT state: 503 Service Unavailable (test)"

    async def refusing_once(state: dict[str, Any]) -> None:
        if (state.get("completed") or [None])[-1] == refused and not refusals:
            refusals.append(state)
            raise PortError(error)
        await write(state)

    inner.write_state = refusing_once
    result = await rollout.run()
    errors = [e.message for e in _of(rollout.events, LogLine) if e.level == "error"]
    assert errors == [error]
    [finished] = _of(rollout.events, Finished)
    if outcome is not None:  # nothing has moved: the deploy ends, in error, saying why
        assert (result, finished.outcome, finished.reason) == (outcome, outcome, error)
        assert inner.calls == []
        return
    assert result == Outcome.ROLLED_BACK  # traffic has moved: back is the safe direction
    [trigger] = _of(rollout.events, RollbackTriggered)
    assert (trigger.actor, trigger.automatic, trigger.rule) == ("engine", True, "error")
    assert trigger.reason == f"cannot continue: {error}"
    assert finished.reason == trigger.reason


@pytest.mark.parametrize(
    ("done", "verified"),
    [("preflight", None), ("verify", "green"), ("verify", "smoke-tests: 2 failing")],
    ids=["preflight", "verify-green", "verify-fix-forward"],
)
async def test_a_resumed_deploy_skips_the_steps_it_persisted_done(
    tmp_path: Path, done: str, verified: str | None
) -> None:
    first = await open_driver(None, tmp_path)
    world = first.world
    # killed at the write after the step's own mark: the step is done, the next one not begun
    outcome, switch = await run_killed_at(first, match=f"'{done}']", nth=2)
    assert outcome is None and switch.where.startswith("cluster write_state")
    inner: Any = world.production.inner  # type: ignore[attr-defined]
    if verified is not None:
        # what verification decided is persisted with its mark: green, or the failing checks fixed forward
        assert inner.state["results"]["verify"] == "green"
        inner.state = {**inner.state, "results": {**inner.state["results"], "verify": verified}}
    second = await open_driver(world, tmp_path)
    assert await second.rollout.run() == Outcome.COMPLETED
    resumed = next(i for i, e in enumerate(second.rollout.events) if isinstance(e, RunResumed))
    since = second.rollout.events[resumed:]
    phase = Phase.PREFLIGHT if done == "preflight" else Phase.VERIFY
    assert not [g for g in _of(since, GateEvaluated) if g.phase == phase]  # its checks did not run again
    if done == "preflight":
        assert Phase.PREFLIGHT not in [p.phase for p in _of(since, PhaseChanged)]
    [message] = world.notifier.sent  # type: ignore[attr-defined]
    if verified in (None, "green"):
        assert "Fix-forward" not in message.text  # a green verification is no fix-forward
    else:
        assert message.text.endswith(f". Fix-forward chosen with failing checks: {verified}")


async def _migrations_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staging_command: str | None
) -> Any:
    plan = plan_with_one_migration(tmp_path, monkeypatch, staging_command=staging_command)

    async def driver(world: Any) -> Session:
        return await open_session(
            plan,
            actor="tester",
            clock=VirtualClock() if world is None else world.clock,
            interactive=False,
            approvals=[g.id for g in gates_for(plan) if not g.automated],
            journal_path=tmp_path / "d.jsonl",
            world=world,
        )

    return driver


@pytest.mark.parametrize("resume", [False, True], ids=["files-only", "resumed"])
async def test_the_migrations_step_runs_for_migration_files_once_and_is_skipped_by_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resume: bool
) -> None:
    # files alone are a migrations step too (reviewed, nothing to run); a staging command runs once
    driver = await _migrations_driver(tmp_path, monkeypatch, "migrate up" if resume else None)
    session = await driver(None)
    world: Any = session.world
    if resume:
        outcome, _ = await run_killed_at(session, match="'migrations']", nth=2)
        assert outcome is None
        session = await driver(world)
    assert await session.rollout.run() == Outcome.COMPLETED
    events = session.rollout.events
    resumed = [i for i, e in enumerate(events) if isinstance(e, RunResumed)]
    since = events[resumed[0] :] if resumed else events
    ran = [p for p in _of(since, PhaseChanged) if p.phase == Phase.MIGRATIONS]
    assert len(ran) == (0 if resume else 1)
    assert not resume or not [g for g in _of(since, GateEvaluated) if g.phase == Phase.MIGRATIONS]
    left = _left(session)
    assert "migrations" in left.completed
    assert left.results["migrations"] == "migrations reviewed and run on staging"
    assert world.runner.commands.count("migrate up") == (1 if resume else 0)


async def test_a_failing_staging_migration_blocks_and_the_finish_clears_what_was_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = await _migrations_driver(tmp_path, monkeypatch, "migrate up")
    session = await driver(None)
    world: Any = session.world
    run = world.runner.run

    async def failing(command: str, **kwargs: Any) -> Any:
        done = await run(command, **kwargs)
        return done.model_copy(update={"exit_code": 3}) if command == "migrate up" else done

    world.runner.run = failing
    assert await session.rollout.run() == Outcome.BLOCKED
    [finished] = _of(session.rollout.events, Finished)
    assert finished.reason.startswith("migrations (staging) failed (exit 3)")
    left = _left(session)
    # over, and nothing left announced: the migration that was about to run is no longer pending
    assert (left.outcome, left.pending) == ("blocked", None)


async def test_a_signal_and_a_failing_call_at_the_same_instant_stop_where_it_stands_not_a_rollback(
    tmp_path: Path,
) -> None:
    """The signal cancels the flow; a port error raised before that cancellation lands was taken as
    "cannot continue": a rollback (writes to the cluster during shutdown) instead of the stop the
    signal asked for."""
    session = await sim_session(tmp_path)
    rollout = session.rollout
    production = session.world.production
    real = production.set_canary_weight

    async def weight(percent: int) -> Any:
        if percent == 25:
            rollout.interrupt("SIGTERM", 143)  # the signal, and in the same instant the call fails
            raise PortError("injected: the API server went away with the terminal")
        return await real(percent)

    production.set_canary_weight = weight  # type: ignore[method-assign]
    try:
        outcome = await asyncio.wait_for(rollout.run(), 60)
    finally:
        await session.close()
    records = [json.loads(line) for line in session.journal_path.read_text().splitlines() if line.strip()]
    assert not [r for r in records if r["type"] == "rollback_triggered"], [r["type"] for r in records]
    assert outcome == Outcome.BLOCKED and rollout.interrupted == ("SIGTERM", 143)
    assert records[-1]["type"] == "run_interrupted" and records[-1]["weight"] == 5
