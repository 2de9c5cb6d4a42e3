"""Mutation tests for core/rollout/context.py (issue 16): what the engine's shared plumbing says and
keeps. Why a proceed waits (the reasons a person is shown), a failed notification journaled as
undelivered, who paused, a failed command's reason, the window's persisted blind time, the unevaluated
gates a blocked deploy names, subscribers that leave, and health URLs with their query strings cut off.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.domain import CommandOutcome, GateGroup, GateStatus, Notification, NotifyResult, Outcome, Phase
from core.events import Event, NotificationSent, Paused, PhaseChanged
from core.rollout.context import _Blocked, _public
from tests.engine_helpers import sim_session


def _gates_of(rollout: Any, group: GateGroup) -> list[Any]:
    return [g for g in rollout.catalogue.values() if g.group == group]


async def test_pending_reasons_name_the_unsatisfied_gates_of_the_phase_and_only_those(tmp_path: Path) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    pre = _gates_of(rollout, GateGroup.PRE_DEPLOY)
    staging = _gates_of(rollout, GateGroup.STAGING)
    assert len(staging) >= 3 and pre  # the catalogue lists pre-deploy gates before staging's
    rollout.phase = Phase.STAGING
    passed, failed, *unseen = staging
    rollout.gates[passed.id] = passed.result(GateStatus.PASS, "fine")
    rollout.gates[failed.id] = failed.result(GateStatus.NEEDS_SIGN_OFF, "nobody signed")
    rollout.gates[pre[0].id] = pre[0].result(GateStatus.FAIL, "another phase's gate")
    assert rollout.pending_reasons() == [
        f"{failed.id}: needs sign off — nobody signed",
        *(f"{g.id}: not evaluated yet" for g in unseen),
    ]
    await session.close()


async def test_pending_reasons_in_the_canary_say_what_the_last_analysis_said(tmp_path: Path) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    rollout.phase = Phase.CANARY
    assert rollout.pending_reasons() == ["no analysis sample yet in this step"]
    rollout.last_analysis = SimpleNamespace(verdict="healthy", no_data_reason=None)
    assert rollout.pending_reasons() == []
    rollout.last_analysis = SimpleNamespace(verdict="no_data", no_data_reason="canary: no requests")
    assert rollout.pending_reasons() == ["last analysis: canary: no requests"]
    rollout.last_analysis = SimpleNamespace(verdict="fired", no_data_reason=None)
    assert rollout.pending_reasons() == ["last analysis: fired"]
    # paused in the canary: the canary's reasons, and that it is paused
    rollout._paused_from, rollout.phase = Phase.CANARY, Phase.PAUSED
    assert rollout.pending_reasons() == ["last analysis: fired", "the rollout is paused"]
    # outside the canary an old analysis (or none) is not a reason
    rollout.phase, rollout._paused_from = Phase.VERIFY, None
    for gate in _gates_of(rollout, GateGroup.POST_DEPLOY):
        rollout.gates[gate.id] = gate.result(GateStatus.PASS, "fine")
    assert rollout.pending_reasons() == []
    rollout.last_analysis = None
    assert rollout.pending_reasons() == []
    await session.close()


class _Notifier:
    def __init__(self, answer: list[NotifyResult] | Exception) -> None:
        self.answer = answer

    async def notify(self, message: Notification) -> list[NotifyResult]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_a_notifier_that_fails_is_journaled_undelivered_with_the_error_named(tmp_path: Path) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    rollout.world.notifier = _Notifier(ConnectionResetError("peer gone"))
    await rollout._notify(Notification(title="t", text="x"))
    rollout.world.notifier = _Notifier(
        [NotifyResult(channel="#deploys", delivered=False, attempts=3, detail="HTTP 503 three times")]
    )
    await rollout._notify(Notification(title="t", text="x"))
    failed, answered = [e for e in rollout.events if isinstance(e, NotificationSent)]
    assert (failed.channel, failed.delivered, failed.detail) == (
        "team channel",
        False,
        "ConnectionResetError",
    )
    assert (answered.channel, answered.delivered, answered.attempts, answered.detail) == (
        "#deploys",
        False,
        3,
        "HTTP 503 three times",
    )
    await session.close()


async def test_a_pause_names_who_paused_and_why_in_the_log_and_the_cluster(tmp_path: Path) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    rollout.phase = Phase.CANARY
    await rollout._enter_pause("alice", "looking at the p99 graph")
    [paused] = [e for e in rollout.events if isinstance(e, Paused)]
    [phase] = [e for e in rollout.events if isinstance(e, PhaseChanged)]
    assert (paused.actor, paused.reason) == ("alice", "looking at the p99 graph")
    assert (phase.previous, phase.reason) == (Phase.CANARY, "looking at the p99 graph")
    await rollout._persist()  # what a running deploy writes next: who paused it, for a resume
    state = await rollout.world.production.read_state()
    assert state is not None and state["paused"] is True and state["paused_by"] == "alice"
    await session.close()


class _Runner:
    def __init__(self, outcome: CommandOutcome) -> None:
        self.outcome = outcome

    async def run(self, command: str, **kwargs: Any) -> CommandOutcome:
        return self.outcome


@pytest.mark.parametrize(
    ("exit_code", "detail", "said"),
    [
        (None, "", "smoke failed (timed out): " + "y" * 200),
        (None, "timed out after 5s; process group killed", "smoke failed (timed out): timed out after 5s"),
        (3, "exit 3", "smoke failed (exit 3): exit 3"),
    ],
)
async def test_a_failed_command_blocks_saying_why_and_the_end_of_its_output(
    tmp_path: Path, exit_code: int | None, detail: str, said: str
) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    output = "x" * 100 + "y" * 200  # only the last 200 characters are worth a reason
    rollout.world.runner = _Runner(
        CommandOutcome(command="make smoke", exit_code=exit_code, output=output, detail=detail)
    )
    with pytest.raises(_Blocked) as blocked:
        await rollout._run_command("smoke", "make smoke", 5.0)
    assert blocked.value.reason.startswith(said)
    if not detail:
        assert blocked.value.reason == said  # exactly the last 200, not 201
    await session.close()


async def test_a_healthy_run_persists_its_windows_with_no_blind_time(tmp_path: Path) -> None:
    session = await sim_session(tmp_path)
    cluster = session.world.production
    windows: list[dict[str, Any]] = []
    write_state = cluster.write_state

    async def recorded(state: dict[str, Any]) -> None:
        if state.get("window"):
            windows.append(state["window"])
        await write_state(state)

    cluster.write_state = recorded  # type: ignore[method-assign]
    async with asyncio.timeout(60):
        assert await session.rollout.run() == Outcome.COMPLETED
    assert windows and all(w["blind_s"] == 0.0 for w in windows)
    await session.close()


async def test_no_window_no_window_progress(tmp_path: Path) -> None:
    """Between windows (none shown) a window's progress is not written: nothing to resume from."""
    session = await sim_session(tmp_path)
    rollout = session.rollout
    rollout.window = None
    win = SimpleNamespace(started_at=rollout.clock.now(), observed_s=30.0, counted=1, samples=[])
    await rollout._persist_window(win)
    assert await rollout.world.production.read_state() is None
    await session.close()


async def test_a_blocked_gate_group_names_each_unevaluated_gate_and_whether_a_person_must_sign(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    waiting = rollout._unsatisfied(GateGroup.PRE_DEPLOY, set())
    gates = {g.id: g for g in _gates_of(rollout, GateGroup.PRE_DEPLOY)}
    assert [r.gate_id for r in waiting] == list(gates)
    for result in waiting:
        if gates[result.gate_id].automated:
            assert (result.status, result.evidence) == (GateStatus.PENDING, "not evaluated yet")
        else:
            assert (result.status, result.evidence) == (
                GateStatus.NEEDS_SIGN_OFF,
                "needs a person's sign-off",
            )
        assert result.title == gates[result.gate_id].title
    assert any(not g.automated for g in gates.values()) and any(g.automated for g in gates.values())
    await session.close()


async def test_a_subscriber_that_leaves_hears_nothing_more_and_may_leave_twice(tmp_path: Path) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    heard: list[Event] = []
    leave = rollout.subscribe(heard.append)
    await rollout._emit(PhaseChanged, previous=Phase.PENDING, reason="one")
    leave()
    leave()  # a dashboard closing twice must not raise
    await rollout._emit(PhaseChanged, previous=Phase.PENDING, reason="two")
    assert [e.reason for e in heard] == ["one"]  # type: ignore[union-attr]
    await session.close()


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://shop.example.com/healthz?token=s3cret", "https://shop.example.com/healthz"),
        ("https://shop.example.com/healthz?a=1?b=2", "https://shop.example.com/healthz"),
        ("https://shop.example.com/ready", "https://shop.example.com/ready"),
        ("https://shop.example.com/a b?token=s3cret", "https://shop.example.com/a b"),
    ],
)
def test_a_health_url_is_journaled_without_its_query_string(url: str, public: str) -> None:
    assert _public(url) == public
    assert "s3cret" not in json.dumps(_public(url))


async def test_a_pending_decision_is_persisted_with_its_question_options_and_advice(tmp_path: Path) -> None:
    """A resumed driver asks the same question: the cluster keeps what was asked, and nothing once
    it is answered."""
    session = await sim_session(tmp_path)
    rollout = session.rollout
    rollout._decision_pending = SimpleNamespace(
        question="verification failed: roll back or fix forward?",
        options=["rollback", "fix-forward"],
        recommended="rollback",
    )
    await rollout._persist()
    state = await rollout.world.production.read_state()
    assert state is not None and state["decision_pending"] == {
        "question": "verification failed: roll back or fix forward?",
        "options": ["rollback", "fix-forward"],
        "recommended": "rollback",
    }
    rollout._decision_pending = None
    await rollout._persist()
    state = await rollout.world.production.read_state()
    assert state is not None and state["decision_pending"] is None
    await session.close()


async def test_a_decided_stop_stays_whole_in_every_later_write(tmp_path: Path) -> None:
    """The rule that fired and the weight it fired at are what a resumed rollback reports: a later
    write (a phase change, a step done) must not cut the record down to kind, actor and reason."""
    session = await sim_session(tmp_path)
    rollout = session.rollout
    rollout.phase, rollout.weight = Phase.CANARY, 25
    await rollout._persist()
    await rollout._request_stop("rollback", "engine", "error rate 2.1 %", automatic=True, rule="error_rate")
    await rollout._mark("rollback.applied")
    state = await rollout.world.production.read_state()
    assert state is not None and state["stop"] == {
        "kind": "rollback",
        "actor": "engine",
        "reason": "error rate 2.1 %",
        "automatic": True,
        "rule": "error_rate",
        "weight_at_trigger": 25,
    }
    await session.close()


async def test_the_cluster_names_who_paused_only_while_it_is_paused(tmp_path: Path) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    rollout.phase = Phase.CANARY
    await rollout._persist()
    await rollout._enter_pause("engine", "no data", by_engine=True)
    await rollout._persist()
    state = await rollout.world.production.read_state()
    assert state is not None and state["paused_by"] == "engine" and state["engine_paused_at"] is not None
    rollout.phase, rollout._paused_from = Phase.CANARY, None  # resumed
    await rollout._persist()
    state = await rollout.world.production.read_state()
    assert state is not None and (state["paused"], state["paused_by"], state["engine_paused_at"]) == (
        False,
        None,
        None,
    )
    await session.close()


async def test_a_driver_that_lost_its_lease_writes_no_phase_to_the_cluster(tmp_path: Path) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    rollout.phase = Phase.CANARY
    await rollout._persist()
    before = await rollout.world.production.read_state()
    rollout.lease_lost("taken over by another driver")
    await rollout._set_phase(Phase.VERIFY, "verifying")
    assert await rollout.world.production.read_state() == before
    await session.close()


async def test_an_engine_built_with_no_options_is_headless_and_rolls_back_when_unsure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safe defaults of anything that builds a Rollout directly (an embedding, a test): nobody to
    ask (a gate waiting for a person blocks), an unanswered verification failure rolls back, no plan
    file named, incident records under ./incidents."""
    from core.rollout import Rollout

    monkeypatch.chdir(tmp_path)
    session = await sim_session(tmp_path)
    rollout = Rollout(session.plan, session.world, actor="tester")
    assert rollout.interactive is False and rollout.decision_default == "rollback"
    assert rollout.plan_path == "" and rollout.incident_dir == tmp_path / "incidents"
    assert re.fullmatch(r"[0-9a-f]{12}", rollout.deploy_id)  # the id status and the dashboard show
    await session.close()
