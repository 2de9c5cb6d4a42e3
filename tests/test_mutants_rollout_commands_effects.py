"""What each person's command changes in the rollout and what it journals (issue 16; who may give it
when is in test_mutants_rollout_commands.py).

Written against `make mutate MUTATE_MODULES=core.rollout` in core/rollout/commands.py: a refusal is
journaled with who tried what, how they are known (self-declared or authenticated, their groups) and
why; a sign-off or override is journaled the same way and re-records the gate as people should see it;
proceed, promote early and refresh leave the request the flow acts on and wake it; pause, resume,
rollback, abort and decide journal the actor and the reason. The rollout is put by hand in the state a
command meets, without running the flow. All in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.domain import GateStatus, Phase
from core.events import (
    CommandRefused,
    GateEvaluated,
    GateOverridden,
    GateSignedOff,
    LogLine,
    Paused,
    PhaseChanged,
    Resumed,
    RollbackTriggered,
)
from core.plan import ManualGateSpec
from core.rollout import Rollout
from core.session import demo_plan
from tests.rollout_commands_helpers import LAST_STEP, at, decision, of, sample, window
from tests.rollout_steps_helpers import driver

# each test takes well under a second: a mutant that makes a wait endless fails here, not in minutes
pytestmark = pytest.mark.timeout(10)

SRE = {"identity": "authenticated", "groups": ["sre", "oncall"]}


def _refusals(rollout: Rollout) -> list[tuple[str, str, str, str, list[str]]]:
    return [(e.command, e.actor, e.reason, e.identity, e.groups) for e in of(rollout, CommandRefused)]


async def test_an_api_refusal_is_journaled_with_who_tried_what_and_how_they_are_known(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY)
    result = await rollout.refuse("rollback", "mallory", "not in the deployers group", **SRE)  # type: ignore[arg-type]
    assert result.model_dump() == {"ok": False, "reason": "not in the deployers group"}
    assert _refusals(rollout) == [
        ("rollback", "mallory", "not in the deployers group", "authenticated", ["sre", "oncall"])
    ]
    await rollout.refuse("pause", "bob", "typed name")  # the embedded mode: a typed name, no groups
    assert _refusals(rollout)[1] == ("pause", "bob", "typed name", "self-declared", [])


async def test_every_refused_command_is_journaled_with_the_engines_reason_and_the_callers_identity(
    tmp_path: Path,
) -> None:
    rollout = await at(tmp_path, Phase.PREFLIGHT)  # running, not paused, at the pre-deploy gates
    refused = [
        await rollout.proceed("alice", **SRE),  # type: ignore[arg-type]
        await rollout.promote_early("alice", **SRE),  # type: ignore[arg-type]
        await rollout.resume("alice", **SRE),  # type: ignore[arg-type]
        await rollout.decide("rollback", "alice", **SRE),  # type: ignore[arg-type]
    ]
    assert [r.ok for r in refused] == [False] * 4
    commands = ["proceed", "promote_early", "resume", "decide"]
    assert [(c, r) for c, _, r, _, _ in _refusals(rollout)] == [
        (c, rollout.allowed(c).reason) for c in commands
    ]
    assert [r.reason for r in refused] == [rollout.allowed(c).reason for c in commands]
    assert {(a, i, tuple(g)) for _, a, _, i, g in _refusals(rollout)} == {
        ("alice", "authenticated", ("sre", "oncall"))
    }
    # nothing else happened: no request left for the flow, no phase change
    assert (rollout._proceed_requested, rollout._decision, rollout.phase) == (None, None, Phase.PREFLIGHT)


async def test_refused_stop_pause_and_refresh_commands_are_journaled_with_the_callers_identity(
    tmp_path: Path,
) -> None:
    rollout = await at(tmp_path, Phase.ROLLING_BACK)
    for give in (
        rollout.rollback("alice", **SRE),  # type: ignore[arg-type]
        rollout.abort("alice", "enough", **SRE),  # type: ignore[arg-type]
        rollout.pause("alice", **SRE),  # type: ignore[arg-type]
        rollout.refresh_gates("alice", **SRE),  # type: ignore[arg-type]
    ):
        assert (await give).model_dump() == {"ok": False, "reason": "the rollout is rolling back"}
    assert _refusals(rollout) == [
        (command, "alice", "the rollout is rolling back", "authenticated", ["sre", "oncall"])
        for command in ("rollback", "abort", "pause", "refresh")
    ]
    assert (
        rollout._stop is None and rollout._refresh_requested is None and rollout.phase == Phase.ROLLING_BACK
    )


async def test_a_refusal_given_without_an_identity_is_journaled_as_self_declared(tmp_path: Path) -> None:
    # the embedded mode: the name was typed (--as), no groups
    rollout = await at(tmp_path, Phase.ROLLING_BACK)
    for give in (
        rollout.rollback("bob"),
        rollout.abort("bob", "enough"),
        rollout.pause("bob"),
        rollout.resume("bob"),
        rollout.promote_early("bob"),
        rollout.proceed("bob"),
        rollout.refresh_gates("bob"),
        rollout.decide("rollback", "bob"),
    ):
        assert not (await give).ok
    assert [(c, i, g) for c, _, _, i, g in _refusals(rollout)] == [
        (command, "self-declared", [])
        for command in (
            "rollback",
            "abort",
            "pause",
            "resume",
            "promote_early",
            "proceed",
            "refresh",
            "decide",
        )
    ]


# --- sign-off and override --------------------------------------------------------------------------


async def test_a_sign_off_is_refused_outside_the_gates_for_an_unknown_gate_and_for_an_automated_one(
    tmp_path: Path,
) -> None:
    canary = await at(tmp_path, Phase.CANARY)
    assert not (await canary.sign_off("rollback-plan", "alice", **SRE)).ok  # type: ignore[arg-type]
    assert _refusals(canary) == [
        ("sign_off", "alice", "no gates are open in canary", "authenticated", ["sre", "oncall"])
    ]
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    unknown = await rollout.sign_off("nope", "alice", **SRE)  # type: ignore[arg-type]
    automated = await rollout.sign_off("ci-green", "alice", **SRE)  # type: ignore[arg-type]
    # the engine's own words for an automated gate: it tells the person what to do instead
    assert [unknown.reason, automated.reason] == [
        "no gate 'nope' in this plan",
        "ci-green is automated; override it instead",
    ]
    assert _refusals(rollout) == [
        ("sign_off", "alice", "no gate 'nope' in this plan", "authenticated", ["sre", "oncall"]),
        (
            "sign_off",
            "alice",
            "ci-green is automated; override it instead",
            "authenticated",
            ["sre", "oncall"],
        ),
    ]
    assert not of(rollout, GateSignedOff) and not rollout.ledger.to_records()


async def test_a_sign_off_is_journaled_with_its_signer_and_re_records_the_gate_as_signed(
    tmp_path: Path,
) -> None:
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    waited = rollout.catalogue["rollback-plan"].result(
        GateStatus.NEEDS_SIGN_OFF, "needs a person's sign-off", at=rollout.clock.now()
    )
    rollout.gates["rollback-plan"] = waited
    result = await rollout.sign_off("rollback-plan", "alice", "runbook RB-12", **SRE)  # type: ignore[arg-type]
    assert result.model_dump() == {"ok": True, "reason": ""}
    [signed] = of(rollout, GateSignedOff)
    assert (signed.gate_id, signed.actor, signed.note, signed.complete, signed.identity, signed.groups) == (
        "rollback-plan",
        "alice",
        "runbook RB-12",
        True,
        "authenticated",
        ["sre", "oncall"],
    )
    # the gate is recorded again, as evaluated (its check time kept), now signed: the flow reads it
    [recorded] = of(rollout, GateEvaluated)
    assert (
        recorded.gate.status == GateStatus.SIGNED
        and recorded.gate.evidence == "signed by alice: runbook RB-12"
    )
    assert recorded.gate.checked_at == waited.checked_at is not None
    assert rollout.gates["rollback-plan"] == recorded.gate
    assert rollout._wake.is_set()  # the flow waiting at the gates looks again now
    # the ledger (persisted with the progress: what a resume knows) keeps how the signer is known
    [record] = rollout.ledger.records_for("rollback-plan", "sign")
    assert (record.actor, record.identity, record.groups) == ("alice", "authenticated", ("sre", "oncall"))


async def test_a_sign_off_of_a_gate_never_evaluated_records_it_signed(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    assert (await rollout.sign_off("rollback-plan", "alice")).ok
    [recorded] = of(rollout, GateEvaluated)
    assert (recorded.gate.gate_id, recorded.gate.status) == ("rollback-plan", GateStatus.SIGNED)
    assert recorded.gate.evidence == "signed by alice"  # no note given: none shown
    [signed] = of(rollout, GateSignedOff)
    assert (signed.note, signed.identity, signed.groups) == ("", "self-declared", [])


async def test_a_second_sign_off_is_refused_by_the_ledger_and_journaled(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    assert (await rollout.sign_off("rollback-plan", "alice")).ok
    again = await rollout.sign_off("rollback-plan", "bob", **SRE)  # type: ignore[arg-type]
    assert again.model_dump() == {"ok": False, "reason": "rollback-plan is already signed off"}
    assert _refusals(rollout) == [
        ("sign_off", "bob", "rollback-plan is already signed off", "authenticated", ["sre", "oncall"])
    ]
    assert len(of(rollout, GateSignedOff)) == 1


async def test_a_two_person_gate_says_another_person_must_sign_after_the_first(tmp_path: Path) -> None:
    plan = demo_plan()
    manual = [
        m.model_copy(update={"signers": 2}) if m.id == "rollback-plan" else m for m in plan.gates.manual
    ]
    plan = plan.model_copy(update={"gates": plan.gates.model_copy(update={"manual": manual})})
    assert all(isinstance(m, ManualGateSpec) for m in manual)
    session = await driver(tmp_path, plan, interactive=True, approvals=[])
    rollout = session.rollout
    rollout.phase = Phase.PREFLIGHT
    first = await rollout.sign_off("rollback-plan", "alice")
    assert first.model_dump() == {"ok": True, "reason": "recorded; another person must sign too"}
    assert [e.complete for e in of(rollout, GateSignedOff)] == [False]
    assert not rollout.gates["rollback-plan"].status.satisfied
    assert (await rollout.sign_off("rollback-plan", "bob")).model_dump() == {"ok": True, "reason": ""}
    assert [e.complete for e in of(rollout, GateSignedOff)] == [False, True]


async def test_an_override_is_refused_outside_the_gates_and_for_an_unknown_gate(tmp_path: Path) -> None:
    canary = await at(tmp_path, Phase.CANARY)
    assert not (await canary.override("monitoring-normal", "carol", "hotfix", **SRE)).ok  # type: ignore[arg-type]
    assert _refusals(canary) == [
        ("override", "carol", "no gates are open in canary", "authenticated", ["sre", "oncall"])
    ]
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    unknown = await rollout.override("nope", "carol", "hotfix", **SRE)  # type: ignore[arg-type]
    assert unknown.model_dump() == {"ok": False, "reason": "no gate 'nope' in this plan"}
    # the ledger's own refusals are journaled the same way
    empty = await rollout.override("monitoring-normal", "carol", " ", **SRE)  # type: ignore[arg-type]
    assert empty.model_dump() == {"ok": False, "reason": "an override needs a reason"}
    assert _refusals(rollout) == [
        ("override", "carol", "no gate 'nope' in this plan", "authenticated", ["sre", "oncall"]),
        ("override", "carol", "an override needs a reason", "authenticated", ["sre", "oncall"]),
    ]
    assert not of(rollout, GateOverridden) and not rollout.ledger.to_records()


async def test_an_override_is_journaled_with_who_and_why_and_keeps_what_the_gate_had_found(
    tmp_path: Path,
) -> None:
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    failed = rollout.catalogue["monitoring-normal"].result(
        GateStatus.FAIL, "3 red checks", at=rollout.clock.now()
    )
    rollout.gates["monitoring-normal"] = failed
    result = await rollout.override("monitoring-normal", "carol", "flaky suite, see INC-9", **SRE)  # type: ignore[arg-type]
    assert result.model_dump() == {"ok": True, "reason": ""}
    [overridden] = of(rollout, GateOverridden)
    assert (
        overridden.gate_id,
        overridden.actor,
        overridden.reason,
        overridden.identity,
        overridden.groups,
    ) == ("monitoring-normal", "carol", "flaky suite, see INC-9", "authenticated", ["sre", "oncall"])
    [recorded] = of(rollout, GateEvaluated)
    assert recorded.gate.status == GateStatus.OVERRIDDEN
    assert recorded.gate.evidence == "overridden (carol: flaky suite, see INC-9); was fail: 3 red checks"
    assert rollout.gates["monitoring-normal"] == recorded.gate
    assert rollout._wake.is_set()
    [record] = rollout.ledger.records_for("monitoring-normal", "override")
    assert (record.actor, record.identity, record.groups) == ("carol", "authenticated", ("sre", "oncall"))


async def test_a_passing_gate_cannot_be_overridden_ahead_of_a_later_failure(tmp_path: Path) -> None:
    # an override answers a gate that is failing now; recorded on a pass it would silently cover the
    # gate's next failure (apply() shows a failing re-check with an override on record as overridden)
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    now = rollout.clock.now()
    rollout.gates["monitoring-normal"] = rollout.catalogue["monitoring-normal"].result(
        GateStatus.PASS, "ok", at=now
    )
    result = await rollout.override("monitoring-normal", "carol", "just in case", **SRE)  # type: ignore[arg-type]
    reason = "monitoring-normal is pass; there is nothing to override"
    assert result.model_dump() == {"ok": False, "reason": reason}
    assert _refusals(rollout) == [("override", "carol", reason, "authenticated", ["sre", "oncall"])]
    assert not rollout.ledger.records_for("monitoring-normal", "override") and not of(rollout, GateOverridden)
    # the gate failing at the next refresh is shown failing, and blocks
    await rollout._record_gate(
        rollout.catalogue["monitoring-normal"].result(GateStatus.FAIL, "p99 alert", at=now)
    )
    assert rollout.gates["monitoring-normal"].status == GateStatus.FAIL


async def test_an_override_of_a_gate_never_evaluated_says_it_was_pending(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    assert (await rollout.override("monitoring-normal", "carol", "hotfix")).ok
    [recorded] = of(rollout, GateEvaluated)
    assert recorded.gate.evidence == "overridden (carol: hotfix); was pending: not evaluated yet"
    [overridden] = of(rollout, GateOverridden)
    assert (overridden.identity, overridden.groups) == ("self-declared", [])


# --- proceed, promote early, refresh ----------------------------------------------------------------


async def test_a_proceed_leaves_who_and_the_step_it_was_given_at_and_wakes_the_flow(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY, step_index=1)
    rollout.window = window(rollout)
    rollout.last_analysis = sample(rollout, "healthy")
    assert (await rollout.proceed("alice")).model_dump() == {"ok": True, "reason": ""}
    assert (rollout._proceed_requested, rollout._proceed_step) == ("alice", 1)
    assert [(e.level, e.message, e.source) for e in of(rollout, LogLine)] == [
        ("info", "alice proceeds", "alice")
    ]
    assert rollout._wake.is_set() and not of(rollout, CommandRefused)


async def test_promote_early_leaves_who_journals_what_it_skips_as_a_warning_and_wakes_the_flow(
    tmp_path: Path,
) -> None:
    rollout = await at(tmp_path, Phase.CANARY, step_index=LAST_STEP)
    rollout.window = window(rollout, left_s=420.0)
    rollout.last_analysis = sample(rollout, "healthy")
    assert (await rollout.promote_early("alice")).model_dump() == {"ok": True, "reason": ""}
    assert rollout._promote_early_requested == "alice"
    assert rollout._proceed_requested is None  # never a proceed
    assert [(e.level, e.message, e.source) for e in of(rollout, LogLine)] == [
        ("warning", "alice promotes early: skip the remaining 7m of the 100 % bake", "alice")
    ]
    assert rollout._wake.is_set()


async def test_a_refresh_leaves_who_asked_and_wakes_the_flow(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.STAGING)
    assert (await rollout.refresh_gates("alice")).model_dump() == {"ok": True, "reason": ""}
    assert rollout._refresh_requested == "alice" and rollout._wake.is_set()


# --- pause, resume, rollback, abort, decide ---------------------------------------------------------


async def test_a_pause_is_journaled_with_its_actor_and_reason_or_says_who_paused(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY)
    assert (await rollout.pause("alice", "lunch")).model_dump() == {"ok": True, "reason": ""}
    assert [(e.actor, e.reason) for e in of(rollout, Paused)] == [("alice", "lunch")]
    assert (rollout.phase, rollout._paused_from) == (Phase.PAUSED, Phase.CANARY)
    other = await at(tmp_path, Phase.STAGING)
    await other.pause("bob")
    assert [(e.actor, e.reason) for e in of(other, Paused)] == [("bob", "paused by bob")]


async def test_a_resume_returns_to_the_phase_it_was_paused_from_and_says_who(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY)
    await rollout.pause("engine", "no data")
    rollout._paused_by_engine_at = rollout.clock.now()
    rollout._wake.clear()
    assert (await rollout.resume("alice")).model_dump() == {"ok": True, "reason": ""}
    assert [e.actor for e in of(rollout, Resumed)] == ["alice"]
    [*_, back] = of(rollout, PhaseChanged)
    assert (back.previous, back.phase, back.reason) == (Phase.PAUSED, Phase.CANARY, "resumed by alice")
    assert (rollout.phase, rollout._paused_from, rollout._paused_by_engine_at) == (Phase.CANARY, None, None)
    assert rollout._resumed.is_set() and rollout._wake.is_set()


async def test_a_resume_without_a_phase_to_return_to_starts_at_preflight(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.PAUSED, paused_from=None)  # paused before any phase began
    rollout._resumed.clear()
    assert (await rollout.resume("alice")).ok
    assert rollout.phase == Phase.PREFLIGHT and rollout._resumed.is_set()


async def test_a_manual_rollback_is_journaled_as_a_persons_with_its_reason(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY)
    assert (await rollout.rollback("alice")).model_dump() == {"ok": True, "reason": ""}
    [triggered] = of(rollout, RollbackTriggered)
    assert (triggered.actor, triggered.automatic, triggered.rule, triggered.reason) == (
        "alice",
        False,
        "manual",
        "manual rollback",
    )
    other = await at(tmp_path, Phase.VERIFY)
    await other.rollback("bob", "checkout errors", **SRE)  # type: ignore[arg-type]
    assert [(e.actor, e.reason) for e in of(other, RollbackTriggered)] == [("bob", "checkout errors")]


async def test_an_abort_is_journaled_with_its_actor_and_reason_or_says_who_aborted(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.CANARY)
    assert (await rollout.abort("alice", "wrong image")).model_dump() == {"ok": True, "reason": ""}
    assert (rollout._stop.kind, rollout._stop.actor, rollout._stop.reason) == (
        "abort",
        "alice",
        "wrong image",
    )  # type: ignore[union-attr]
    other = await at(tmp_path, Phase.CANARY)
    await other.abort("bob", "")
    assert other._stop.reason == "aborted by bob"  # type: ignore[union-attr]
    # persisted before it is acted on (a resume finishes it) as a person's abort, not the engine's
    stop = other.progress.stop  # type: ignore[union-attr]
    assert (stop.kind, stop.actor, stop.reason, stop.automatic) == ("abort", "bob", "aborted by bob", False)  # type: ignore[union-attr]
    assert [(e.message, e.source) for e in of(other, LogLine)] == [
        ("abort requested by bob: aborted by bob", "bob")
    ]


async def test_a_decision_must_be_one_of_the_options_offered(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.VERIFY)
    rollout._decision_pending = decision(rollout)
    wrong = await rollout.decide("retry", "alice", **SRE)  # type: ignore[arg-type]
    assert wrong.model_dump() == {"ok": False, "reason": "choose one of: rollback, fix_forward"}
    assert _refusals(rollout) == [
        ("decide", "alice", "choose one of: rollback, fix_forward", "authenticated", ["sre", "oncall"])
    ]
    assert rollout._decision is None


async def test_a_decision_is_journaled_with_its_actor_and_wakes_the_flow(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.VERIFY)
    rollout._decision_pending = decision(rollout)
    assert (await rollout.decide("fix_forward", "alice")).model_dump() == {"ok": True, "reason": ""}
    assert rollout._decision == "fix_forward"
    assert [(e.message, e.source) for e in of(rollout, LogLine)] == [("alice decided: fix-forward", "alice")]
    assert rollout._wake.is_set() and not of(rollout, Resumed)


async def test_a_decision_given_while_paused_resumes_the_rollout_as_the_same_person(tmp_path: Path) -> None:
    rollout = await at(tmp_path, Phase.VERIFY)
    rollout._decision_pending = decision(rollout)
    await rollout.pause("engine", "verification failed")
    assert (await rollout.decide("rollback", "alice", **SRE)).ok  # type: ignore[arg-type]
    assert [e.actor for e in of(rollout, Resumed)] == ["alice"]
    assert rollout.phase == Phase.VERIFY and rollout._decision == "rollback"


async def test_the_resume_a_decision_implies_is_refused_as_the_deciding_person_if_a_signal_came_meanwhile(
    tmp_path: Path,
) -> None:
    rollout = await at(tmp_path, Phase.VERIFY)
    rollout._decision_pending = decision(rollout)
    await rollout.pause("engine", "verification failed")

    def signal_while_journaling(event: Any) -> None:
        if isinstance(event, LogLine) and event.message == "alice decided: rollback":
            rollout._interrupted = ("SIGTERM", 143)

    rollout.subscribe(signal_while_journaling)
    assert (await rollout.decide("rollback", "alice", **SRE)).ok  # type: ignore[arg-type]
    # the rollout stays paused where the signal stopped it; the log says who was refused, as whom
    assert rollout.phase == Phase.PAUSED and not of(rollout, Resumed)
    stopping = rollout.allowed("resume").reason
    assert _refusals(rollout) == [("resume", "alice", stopping, "authenticated", ["sre", "oncall"])]


async def test_neither_the_deployer_nor_the_change_author_overrides_a_gate_of_this_deploy(
    tmp_path: Path,
) -> None:
    """An override needs a second person: the one running the deploy (the engine's actor) and the
    change's author are both refused, by name; a third person is not."""
    rollout = await at(tmp_path, Phase.PREFLIGHT)
    author = rollout.plan.change.author
    assert author and author != rollout.actor
    rollout.gates["monitoring-normal"] = rollout.catalogue["monitoring-normal"].result(
        GateStatus.FAIL, "3 red checks", at=rollout.clock.now()
    )
    deployer = await rollout.override("monitoring-normal", rollout.actor, "trust me", **SRE)  # type: ignore[arg-type]
    assert deployer.reason == f"an override needs a second person: {rollout.actor} is running this deploy"
    by_author = await rollout.override("monitoring-normal", author, "trust me", **SRE)  # type: ignore[arg-type]
    assert by_author.reason == f"an override needs a second person: {author} is the change author"
    assert (await rollout.override("monitoring-normal", "carol", "flaky, INC-9", **SRE)).ok  # type: ignore[arg-type]
