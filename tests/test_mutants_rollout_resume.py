"""Continuing a deploy whose driver died (issue 16, core.rollout.store).

Written against `make mutate MUTATE_MODULES=core.rollout` in store.py: a resumed driver takes up the
dead one's progress as the cluster and the journal hold it (its step, the weight in force, its window,
sign-offs, baseline and start) before it says from where it continues; a traffic change the journal
shows applied is the weight in force even if the status did not record it, an intent that never
reached the cluster is not; a first journal line or a rollback decision the dead driver did not
journal is journaled once by the resume, never twice. All in memory, in virtual time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.domain import Outcome
from core.events import DeployStarted, Finished, RollbackTriggered, RunResumed, TrafficChanged
from core.rollout.progress import RolloutStatus
from core.session import Session, demo_plan
from tests.resume_helpers import applied_weights, journal_records, run_killed_at
from tests.rollout_steps_helpers import IMAGE, driver, left_in_cluster, since_resume
from tests.test_mutants_rollout import _of


def _snapshot_at_resume(session: Session) -> dict[str, Any]:
    """What the resumed rollout holds the moment it says from where it continues."""
    rollout = session.rollout
    seen: dict[str, Any] = {}

    def on_event(event: Any) -> None:
        if isinstance(event, RunResumed) and not seen:
            seen.update(
                step_index=rollout.step_index,
                weight=rollout.weight,
                started_at=rollout._started_at,
                baseline=rollout._baseline_ref,
                sign_offs=rollout.ledger.to_records(),
                signers_excluded=(rollout.ledger.author, rollout.ledger.deployer),
                completed=list(rollout.progress.completed) if rollout.progress else None,
                before=rollout.events[:-1],
            )

    rollout.subscribe(on_event)
    return seen


async def _killed(tmp_path: Path, scenario: str = "healthy", **kill: Any) -> tuple[Session, RolloutStatus]:
    first = await driver(tmp_path, demo_plan(scenario))
    outcome, switch = await run_killed_at(first, **kill)
    assert outcome is None, switch.log[-3:]
    return first, left_in_cluster(first)


async def _effect_after(tmp_path: Path, match: str, nth: int = 1) -> int:
    """The number of the driver's effect right after the ``nth`` one containing ``match`` (an
    uninterrupted run of the same plan in its own world and journal: the effects are deterministic)."""
    probe = await driver(tmp_path / "probe", demo_plan())
    outcome, switch = await run_killed_at(probe)
    assert outcome == Outcome.COMPLETED
    hits = [i for i, what in enumerate(switch.log) if match in what]
    return hits[nth - 1] + 2  # log index -> 1-based effect number, then the next one


async def test_a_resumed_driver_holds_the_dead_ones_progress_before_it_says_from_where(
    tmp_path: Path,
) -> None:
    first, left = await _killed(tmp_path, match="journal analysis step=1", nth=4)
    assert left.baseline is not None and left.sign_offs and left.window is not None
    world = first.world
    await world.clock.advance(90)
    # no approvals on this command line: the sign-offs given to the dead driver still count
    second = await driver(tmp_path, demo_plan(), world, actor="bob", approvals=[])
    seen = _snapshot_at_resume(second)
    assert await second.rollout.run() == Outcome.COMPLETED
    assert seen["step_index"] == 1 and seen["weight"] == 25
    assert seen["started_at"] == left.started_at and seen["baseline"] == left.baseline
    assert seen["sign_offs"] == left.sign_offs and seen["completed"] == left.completed
    # who may not override: the change's author, and now the person running the deploy
    assert seen["signers_excluded"] == (demo_plan().change.author, "bob")
    assert seen["before"] == first.rollout.events  # the dead driver's journal: one deploy, one start
    [resumed] = _of(second.rollout.events, RunResumed)
    assert (resumed.from_phase, resumed.from_step, resumed.weight) == ("canary", 1, 25)
    assert (resumed.window, resumed.window_started_at) == ("canary 25 %", left.window.started_at)
    assert resumed.unwatched_s == (resumed.ts - left.updated_at).total_seconds() >= 90
    assert (resumed.previous_driver, resumed.actor, resumed.completed) == ("tester", "bob", left.completed)
    # the deploy's duration runs from its start, not from this run's
    [finished] = _of(second.rollout.events, Finished)
    assert finished.duration_s == (finished.ts - left.started_at).total_seconds()
    records = journal_records(tmp_path)
    assert [r["type"] for r in records].count("deploy_started") == 1
    assert applied_weights(records) == [5, 25, 50, 100, 0]


async def test_a_resume_where_nobody_missed_anything_reports_no_unwatched_time(tmp_path: Path) -> None:
    first, left = await _killed(tmp_path, match="cluster set_canary_weight(25,)")
    second = await driver(tmp_path, demo_plan(), first.world)
    assert await second.rollout.run() == Outcome.COMPLETED
    [resumed] = _of(second.rollout.events, RunResumed)
    assert resumed.ts == left.updated_at and resumed.unwatched_s == 0.0


async def test_a_traffic_change_journaled_but_not_recorded_is_the_weight_in_force(tmp_path: Path) -> None:
    at = await _effect_after(tmp_path, "journal traffic_changed step=1", nth=2)  # the applied 25 %
    first, left = await _killed(tmp_path, at=at)
    assert (left.weight, left.weight_target) == (5, 25)  # the status still says 5 %, about to be 25 %
    second = await driver(tmp_path, demo_plan(), first.world)
    assert await second.rollout.run() == Outcome.COMPLETED
    [resumed] = _of(second.rollout.events, RunResumed)
    assert resumed.weight == 25
    assert applied_weights(journal_records(tmp_path)) == [5, 25, 50, 100, 0]  # 25 % not applied again
    assert first.world.production.inner.calls.count("weight:25") == 1


async def test_an_intent_that_never_reached_the_cluster_is_not_the_weight_in_force(tmp_path: Path) -> None:
    first, left = await _killed(tmp_path, match="cluster set_canary_weight(25,)")
    assert (left.weight, left.weight_target) == (5, 25)
    [*_, intent] = _of(first.rollout.events, TrafficChanged)
    assert (intent.requested, intent.applied) == (25, False)
    second = await driver(tmp_path, demo_plan(), first.world)
    assert await second.rollout.run() == Outcome.COMPLETED
    [resumed] = _of(second.rollout.events, RunResumed)
    assert resumed.weight == 5
    assert applied_weights(journal_records(tmp_path)) == [5, 25, 50, 100, 0]


async def test_a_deploy_killed_before_its_first_journal_line_journals_its_start_once(tmp_path: Path) -> None:
    plan = demo_plan()
    plan = plan.model_copy(update={"change": plan.change.model_copy(update={"security_sensitive": True})})
    first = await driver(tmp_path, plan, plan_path="plans/checkout.yaml")
    outcome, _ = await run_killed_at(first, match="journal deploy_started")
    left = left_in_cluster(first)
    assert outcome is None and first.rollout.events == [] and left.deploy_id == first.rollout.deploy_id
    second = await driver(tmp_path, plan, first.world, actor="bob", plan_path="plans/checkout.yaml")
    assert await second.rollout.run() == Outcome.COMPLETED
    [started] = _of(second.rollout.events, DeployStarted)
    [resumed] = _of(second.rollout.events, RunResumed)
    assert second.rollout.events.index(started) < second.rollout.events.index(resumed)
    assert started.deploy_id == left.deploy_id
    assert (started.service, started.namespace) == ("checkout", "shop")
    assert (started.from_version, started.to_version, started.image) == ("1.4.2", "1.5.0", IMAGE)
    assert (started.change_id, started.change_class) == (plan.change.id, plan.change.class_)
    assert started.security_sensitive is True
    assert (started.actor, started.plan_path, started.scenario) == (
        "bob",
        second.rollout.plan_path,
        "healthy",
    )
    assert started.steps == [5, 25, 50, 100]
    assert [r["type"] for r in journal_records(tmp_path)].count("deploy_started") == 1


async def test_a_rollback_decided_but_not_journaled_is_journaled_once_by_the_resume(tmp_path: Path) -> None:
    first, left = await _killed(tmp_path, "bad-canary", match="journal rollback_triggered")
    stop = left.stop
    assert stop is not None and stop.kind == "rollback" and stop.automatic
    assert not _of(first.rollout.events, RollbackTriggered)
    second = await driver(tmp_path, demo_plan("bad-canary"), first.world, actor="bob")
    assert await second.rollout.run() == Outcome.ROLLED_BACK
    [trigger] = _of(second.rollout.events, RollbackTriggered)
    assert trigger in since_resume(second)
    assert (trigger.actor, trigger.automatic, trigger.rule) == (stop.actor, True, stop.rule)
    assert (trigger.reason, trigger.weight_at_trigger) == (stop.reason, stop.weight_at_trigger)
    assert stop.actor == "engine" and stop.rule != "manual" and stop.weight_at_trigger > 0
    assert second.rollout.rollback_reason is trigger
    assert [r["type"] for r in journal_records(tmp_path)].count("rollback_triggered") == 1


async def test_a_rollback_journaled_before_the_kill_is_finished_under_its_first_reason(
    tmp_path: Path,
) -> None:
    first, left = await _killed(tmp_path, "bad-canary", match="cluster rollback")
    [trigger] = _of(first.rollout.events, RollbackTriggered)
    second = await driver(tmp_path, demo_plan("bad-canary"), first.world, actor="bob")
    assert await second.rollout.run() == Outcome.ROLLED_BACK
    assert not _of(since_resume(second), RollbackTriggered)
    stop = second.rollout._stop  # the dead driver's decision, finished under its name and reason
    assert stop is not None and left.stop is not None
    assert (stop.kind, stop.actor, stop.reason) == ("rollback", left.stop.actor, left.stop.reason)
    assert second.rollout.rollback_reason == trigger
    assert [r["type"] for r in journal_records(tmp_path)].count("rollback_triggered") == 1
    assert first.world.production.inner.calls.count("rollback") == 1
