"""Sign-off and override rules: signer counts, two different people, author exclusion, second person."""

from __future__ import annotations

import datetime as dt

from core.domain import GateGroup, GateResult, GateStatus
from core.policy import gate_def
from core.signoff import SignOffLedger
from tests.test_gates_predeploy import make_plan

T = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)


def pending(
    gate_id: str, status: GateStatus = GateStatus.NEEDS_SIGN_OFF, group=GateGroup.PRE_DEPLOY
) -> GateResult:
    return GateResult(
        gate_id=gate_id, title=gate_id, policy="POL-007", group=group, status=status, evidence="was"
    )


def test_one_sign_off_completes_a_single_signer_gate_and_apply_shows_it():
    plan = make_plan()
    ledger = SignOffLedger(plan)
    gate = gate_def(plan, "rollback-plan")
    assert gate is not None
    assert ledger.sign(gate, "bob", "runbook RB-12", T) == (True, "rollback-plan signed off by bob", True)
    shown = ledger.apply(pending("rollback-plan"))
    assert shown.status == GateStatus.SIGNED and shown.sign_offs[0].actor == "bob"
    assert shown.sign_offs[0].note == "runbook RB-12" and shown.sign_offs[0].at == T
    ok, reason, complete = ledger.sign(gate, "carol", "", T)
    assert not ok and complete and "already signed off" in reason


def test_two_signers_must_be_two_different_people():
    plan = make_plan("major", ", change_record: CR-9")
    ledger = SignOffLedger(plan)
    gate = gate_def(plan, "rollback-plan")
    assert gate is not None and gate.signers == 2
    assert ledger.sign(gate, "bob", "", T) == (
        True,
        "1 of 2 sign-offs; a different person must sign too",
        False,
    )
    partial = ledger.apply(pending("rollback-plan"))
    assert partial.status == GateStatus.NEEDS_SIGN_OFF and "1 of 2 sign-offs (bob)" in partial.evidence
    ok, reason, complete = ledger.sign(gate, "Bob", "", T)
    assert not ok and not complete and "different person" in reason
    ok, _, complete = ledger.sign(gate, "carol", "", T)
    assert ok and complete and ledger.apply(pending("rollback-plan")).status == GateStatus.SIGNED


def test_automated_gates_cannot_be_signed_and_names_are_required():
    plan = make_plan()
    ledger = SignOffLedger(plan)
    ci = gate_def(plan, "ci-green")
    assert ci is not None
    assert ledger.sign(ci, "bob", "", T)[0] is False
    assert "needs a person's name" in ledger.sign(gate_def(plan, "rollback-plan"), "  ", "", T)[1]  # type: ignore[arg-type]


def test_the_author_cannot_override_or_sign_their_own_review_related_gates():
    plan = make_plan(extra="migrations: {files: [m.sql]}")
    ledger = SignOffLedger(plan)
    lint = gate_def(plan, "migrations-lint")
    assert lint is not None and lint.overridable
    ok, reason = ledger.override(lint, "alice", "contract step, column unused since 1.3", T)
    assert not ok and "alice is the change author" in reason


def test_override_needs_policy_permission_a_reason_and_a_second_person():
    plan = make_plan()
    ledger = SignOffLedger(plan, deployer="dave")
    freeze = gate_def(plan, "freeze-window")
    assert freeze is not None
    ok, reason = ledger.override(freeze, "bob", "hotfix", T)
    assert not ok and "POL-012 does not allow overriding freeze-window" in reason
    monitoring = gate_def(plan, "monitoring-normal")
    assert monitoring is not None
    assert ledger.override(monitoring, "bob", "  ", T) == (False, "an override needs a reason")
    ok, reason = ledger.override(monitoring, "dave", "noise", T)
    assert not ok and "dave is running this deploy" in reason
    failed = pending("monitoring-normal", GateStatus.FAIL)
    ok, reason = ledger.override(monitoring, "bob", "DiskFull on unrelated batch node", T, current=failed)
    assert ok and reason == "monitoring-normal overridden by bob"
    shown = ledger.apply(failed)
    assert shown.status == GateStatus.OVERRIDDEN
    assert shown.evidence.startswith("overridden (bob: DiskFull on unrelated batch node); was fail: was")
    # a later refresh that passes stays a pass; one that fails again is still shown overridden
    assert ledger.apply(pending("monitoring-normal", GateStatus.PASS)).status == GateStatus.PASS
    assert ledger.apply(pending("monitoring-normal", GateStatus.ERROR)).status == GateStatus.OVERRIDDEN


def test_nothing_to_override_on_a_passing_gate():
    plan = make_plan()
    gate = gate_def(plan, "monitoring-normal")
    ok, reason = SignOffLedger(plan).override(gate, "bob", "x", T, current=pending("x", GateStatus.PASS))  # type: ignore[arg-type]
    assert not ok and "nothing to override" in reason


def test_emergency_freeze_bypass_needs_two_different_people():
    plan = make_plan("emergency", ", incident: INC-4, reason: card payments failing")
    ledger = SignOffLedger(plan)
    freeze = gate_def(plan, "freeze-window")
    assert freeze is not None
    assert ledger.override(freeze, "bob", "INC-4 fix", T) == (
        True,
        "1 of 2 overrides; a different person must confirm",
    )
    partial = ledger.apply(pending("freeze-window", GateStatus.FAIL))
    assert partial.status == GateStatus.FAIL and "[override 1 of 2: bob: INC-4 fix]" in partial.evidence
    assert not ledger.override(freeze, "bob", "again", T)[0]
    assert ledger.override(freeze, "carol", "agreed, INC-4 is SEV1", T)[0]
    assert ledger.apply(pending("freeze-window", GateStatus.FAIL)).status == GateStatus.OVERRIDDEN


def test_manual_gates_are_signed_not_overridden():
    plan = make_plan()
    ok, reason = SignOffLedger(plan).override(gate_def(plan, "rollback-plan"), "bob", "x", T)  # type: ignore[arg-type]
    assert not ok and "sign it instead" in reason


def test_records_round_trip_for_resume():
    plan = make_plan("emergency", ", incident: INC-4, reason: down")
    ledger = SignOffLedger(plan)
    ledger.sign(gate_def(plan, "rollback-plan"), "bob", "RB-1", T)  # type: ignore[arg-type]
    ledger.override(gate_def(plan, "freeze-window"), "carol", "INC-4", T)  # type: ignore[arg-type]
    records = ledger.to_records()
    assert records[0]["at"] == "2026-11-24T10:00:00Z" and records[1]["needed"] == 2
    again = SignOffLedger.from_records(records, plan)
    assert again.signed("rollback-plan") and not again.overridden("freeze-window")
    assert again.override(gate_def(plan, "freeze-window"), "carol", "dup", T)[0] is False  # type: ignore[arg-type]
    assert again.override(gate_def(plan, "freeze-window"), "erin", "ok", T)[0]  # type: ignore[arg-type]
    assert again.overridden("freeze-window")
