"""The rollout engine end to end on the simulated world, in virtual time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from core.domain import Outcome, Phase
from core.events import (
    AnalysisSample,
    CommandRefused,
    Event,
    Finished,
    GateSignedOff,
    Paused,
    PhaseChanged,
    RollbackTriggered,
    TrafficChanged,
    WindowStarted,
)
from core.sim.scenarios import SCENARIOS
from tests.engine_helpers import sim_session, until


def applied_weights(events: list[Event]) -> list[int]:
    return [e.effective for e in events if isinstance(e, TrafficChanged) and e.applied]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_reaches_its_expected_outcome(tmp_path: Path, name: str) -> None:
    session = await sim_session(tmp_path, name)
    outcome = await session.rollout.run()
    assert outcome.value == SCENARIOS[name].expected
    assert isinstance(session.rollout.events[-1], Finished)


async def test_healthy_rollout_walks_every_phase_and_window(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    assert await session.rollout.run() == Outcome.COMPLETED
    events = session.rollout.events
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    assert phases == [Phase.PREFLIGHT, Phase.STAGING, Phase.CANARY, Phase.VERIFY, Phase.COMPLETE]
    windows = [(w.name, w.duration_s) for w in events if isinstance(w, WindowStarted)]
    assert windows == [
        ("staging soak", 900),
        ("canary 5 %", 300),
        ("canary 25 %", 300),
        ("canary 50 %", 300),
        ("canary 100 %", 900),
        ("verification", 900),
    ]
    assert applied_weights(events) == [5, 25, 50, 100, 0]
    # the soak and every window ran their full length in simulated time: about an hour
    assert events[-1].duration_s > 3600  # type: ignore[union-attr]
    # every step advanced only after enough healthy samples
    for step in range(4):
        samples = [e for e in events if isinstance(e, AnalysisSample) and e.step == step]
        assert all(s.verdict == "healthy" for s in samples)
        assert len(samples) >= 10


async def test_bad_canary_says_which_rule_fired_with_the_numbers(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    trigger = next(e for e in session.rollout.events if isinstance(e, RollbackTriggered))
    assert trigger.automatic and trigger.actor == "engine" and trigger.rule == "error_rate"
    assert trigger.weight_at_trigger == 25
    fired = [r for r in trigger.readings if r.fired]
    assert fired and fired[0].value is not None and fired[0].value > 0.5
    assert "pp >" in trigger.reason
    assert trigger.samples, "the samples that fired it travel with the event"
    # never promoted past the step that failed
    assert max(applied_weights(session.rollout.events)) == 25
    assert session.rollout.world.production.weight == 0  # type: ignore[attr-defined]


async def test_detection_is_within_one_interval_of_the_fault(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    await session.rollout.run()
    events = session.rollout.events
    at_25 = next(e.ts for e in events if isinstance(e, TrafficChanged) and e.applied and e.effective == 25)
    fired = next(e.ts for e in events if isinstance(e, RollbackTriggered))
    fault_starts = SCENARIOS["bad-canary"].faults[0].after_s
    detection = (fired - at_25).total_seconds() - fault_starts
    assert 0 < detection <= session.plan.analysis.interval * 2


async def test_metrics_outage_pauses_and_never_promotes_blind(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "metrics-outage")
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    first_blind = next(
        i for i, e in enumerate(events) if isinstance(e, AnalysisSample) and e.verdict == "no_data"
    )
    weight_then = applied_weights(events[:first_blind])[-1]
    assert all(w <= weight_then for w in applied_weights(events[first_blind:]))
    pause = next(e for e in events if isinstance(e, Paused))
    assert pause.actor == "engine" and "no data" in pause.reason and "unreachable" in pause.reason
    trigger = next(e for e in events if isinstance(e, RollbackTriggered))
    assert trigger.rule == "no_data" and "POL-010" in trigger.reason


async def test_flaky_health_single_failures_do_not_roll_back(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "flaky-health")
    await session.rollout.run()
    events = session.rollout.events
    step0 = [e for e in events if isinstance(e, AnalysisSample) and e.step == 0]
    assert any(s.health_ok is False for s in step0), "the 5 % step has failing checks"
    assert all(s.verdict != "fired" for s in step0), "but never two in a row"
    trigger = next(e for e in events if isinstance(e, RollbackTriggered))
    assert trigger.rule == "health" and trigger.weight_at_trigger == 50


async def test_late_regression_in_verification_rolls_back_and_documents(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "late-regression")
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    trigger = next(e for e in session.rollout.events if isinstance(e, RollbackTriggered))
    assert trigger.phase == Phase.VERIFY
    records = list((tmp_path / "incidents").glob("*.md"))
    assert len(records) == 1
    text = records[0].read_text()
    assert "error rate" in text.lower() and "checkout" in text
    cluster = session.rollout.world.production
    assert cluster.stable_image.endswith(":1.4.2")  # type: ignore[attr-defined]


async def test_commands_are_refused_with_a_reason_in_the_wrong_phase(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy", interactive=True)
    rollout = session.rollout
    assert not (await rollout.proceed("alice")).ok  # not started
    task = asyncio.create_task(rollout.run())
    await until(lambda: rollout.phase == Phase.PREFLIGHT and len(rollout.gates) >= 8)
    refused = await rollout.proceed("alice")
    assert not refused.ok and "rollback-plan" in refused.reason
    assert not (await rollout.resume("alice")).ok
    assert not (await rollout.decide("rollback", "alice")).ok
    bad = await rollout.sign_off("ci-green", "alice")
    assert not bad.ok and "automated" in bad.reason
    assert any(isinstance(e, CommandRefused) and e.command == "proceed" for e in rollout.events)
    await rollout.abort("alice", "test over")
    assert await task == Outcome.ABORTED


async def test_sign_off_records_actor_and_note_and_proceed_runs_to_complete(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy", interactive=True)
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: "rollback-plan" in rollout.gates)
    assert (await rollout.sign_off("rollback-plan", "alice", "runbook RB-12")).ok
    assert (await rollout.sign_off("dashboards-reviewed", "bob", "")).ok
    signed = [e for e in rollout.events if isinstance(e, GateSignedOff)]
    assert [(e.gate_id, e.actor, e.note) for e in signed] == [
        ("rollback-plan", "alice", "runbook RB-12"),
        ("dashboards-reviewed", "bob", ""),
    ]
    assert rollout.gates["rollback-plan"].sign_offs[0].actor == "alice"
    await until(lambda: rollout.allowed("proceed").ok)
    assert (await rollout.proceed("alice")).ok
    assert await task == Outcome.COMPLETED


@pytest.mark.parametrize("when", ["preflight", "staging", "canary", "verify"])
async def test_rollback_from_any_active_phase_is_journaled(tmp_path: Path, when: str) -> None:
    session = await sim_session(tmp_path, "healthy", approve=True)
    rollout = session.rollout
    fired = False

    def on_event(event: Event) -> None:
        nonlocal fired
        if not fired and isinstance(event, PhaseChanged) and event.phase.value == when:
            fired = True
            asyncio.get_running_loop().create_task(rollout.rollback("carol", f"manual in {when}"))

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.ROLLED_BACK
    lines = [json.loads(line) for line in (tmp_path / "deployments.jsonl").read_text().splitlines()]
    trigger = next(line for line in lines if line["type"] == "rollback_triggered")
    assert trigger["actor"] == "carol" and trigger["automatic"] is False and trigger["phase"] == when
    assert lines[-1]["type"] == "finished" and lines[-1]["outcome"] == "rolled_back"


async def test_pause_stops_the_window_clock_but_triggers_stay_armed(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    rollout = session.rollout

    def on_event(event: Event) -> None:
        if isinstance(event, TrafficChanged) and event.applied and event.effective == 25:
            asyncio.get_running_loop().create_task(rollout.pause("dave", "looking at a dashboard"))

    rollout.subscribe(on_event)
    assert await asyncio.wait_for(rollout.run(), timeout=30) == Outcome.ROLLED_BACK
    events = rollout.events
    paused_at = next(i for i, e in enumerate(events) if isinstance(e, Paused))
    assert events[paused_at].actor == "dave"
    trigger_at = next(i for i, e in enumerate(events) if isinstance(e, RollbackTriggered))
    trigger = events[trigger_at]
    assert trigger.rule == "error_rate" and trigger.automatic  # the triggers stayed armed
    assert paused_at < trigger_at and not any(e.type == "resumed" for e in events[paused_at:trigger_at])
    # the window clock stood still: every sample taken while paused reports the same elapsed time
    while_paused = [e for e in events[paused_at:trigger_at] if isinstance(e, AnalysisSample)]
    assert len(while_paused) >= 2
    assert len({s.elapsed_s for s in while_paused}) == 1
    assert while_paused[0].elapsed_s <= session.plan.analysis.interval


async def test_rollback_retries_a_failing_cluster_and_records_attempts(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    session.rollout.world.production.inner.fail_rollbacks = 2  # type: ignore[attr-defined]
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    failed = [e for e in session.rollout.events if e.type == "rollback_step" and e.action == "attempt_failed"]
    assert len(failed) == 2 and "503" in failed[0].detail


async def test_gates_are_re_checked_on_demand(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy", interactive=True)
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: "rollback-plan" in rollout.gates)

    def ci_reads() -> int:
        return sum(1 for e in rollout.events if e.type == "gate_evaluated" and e.gate.gate_id == "ci-green")

    before = ci_reads()
    assert (await rollout.refresh_gates("alice")).ok
    await until(lambda: ci_reads() > before)
    assert any(e.type == "log" and e.message == "alice re-checks the gates" for e in rollout.events)
    await rollout.abort("alice", "done")
    assert await task == Outcome.ABORTED
    refused = await rollout.refresh_gates("alice")
    assert not refused.ok


async def test_a_rollback_the_api_refuses_keeps_retrying_and_says_so(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    session.rollout.world.production.inner.fail_rollbacks = 7  # type: ignore[attr-defined]
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    failed = [e for e in events if e.type == "rollback_step" and e.action == "attempt_failed"]
    assert len(failed) == 7
    alarm = [
        e for e in events if e.type == "log" and e.message.startswith("ROLLBACK NOT APPLIED after 5 attempts")
    ]
    assert len(alarm) == 1 and alarm[0].level == "error"


def _with_judge(session: object) -> None:
    plan = session.rollout.plan  # type: ignore[attr-defined]
    analysis = plan.analysis.model_copy(
        update={"judge": plan.analysis.judge.model_copy(update={"enabled": True})}
    )
    session.rollout.plan = plan.model_copy(update={"analysis": analysis})  # type: ignore[attr-defined]


async def test_subtle_latency_passes_the_fixed_triggers_but_not_the_enabled_judge(tmp_path: Path) -> None:
    plain = await sim_session(tmp_path / "plain", "subtle-latency")
    assert await plain.rollout.run() == Outcome.COMPLETED  # ×1.3 is under the ×1.5 trigger

    judged = await sim_session(tmp_path / "judged", "subtle-latency")
    _with_judge(judged)
    assert await judged.rollout.run() == Outcome.ROLLED_BACK
    trigger = next(e for e in judged.rollout.events if isinstance(e, RollbackTriggered))
    assert trigger.rule == "judge" and trigger.weight_at_trigger == 5
    assert "statistical judge at 5 %" in trigger.reason and "fail" in trigger.reason


async def test_enabled_judge_passes_a_healthy_canary(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _with_judge(session)
    assert await session.rollout.run() == Outcome.COMPLETED
    verdicts = [
        e.message for e in session.rollout.events if e.type == "log" and "statistical judge" in e.message
    ]
    assert len(verdicts) == 3 and all(": score 100/100: pass" in v for v in verdicts)
