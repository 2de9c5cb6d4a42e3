"""Sign-off and override ledger: every refusal with its reason, and what a gate shows afterwards
(issue 16; written against the survivors of `make mutate MUTATE_MODULES=core.signoff`).

Gates are built here rather than taken from the policy so each rule (signers, override signers,
author_may_sign, overridable) is set explicitly by the test that depends on it.
"""

from __future__ import annotations

import datetime as dt

from core.domain import GateGroup, GateResult, GateStatus
from core.policy import GateDef
from core.signoff import SignOffLedger
from tests.test_gates_predeploy import make_plan

T = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)


def _manual(signers: int = 1, author_may_sign: bool = True) -> GateDef:
    return GateDef(
        id="review",
        title="Review",
        policy="POL-004",
        group=GateGroup.PRE_DEPLOY,
        automated=False,
        signers=signers,
        author_may_sign=author_may_sign,
    )


def _auto(override_signers: int = 1, overridable: bool = True, author_may_sign: bool = True) -> GateDef:
    return GateDef(
        id="ci",
        title="CI",
        policy="POL-007",
        group=GateGroup.PRE_DEPLOY,
        automated=True,
        overridable=overridable,
        override_signers=override_signers,
        author_may_sign=author_may_sign,
    )


def _result(gate_id: str, status: GateStatus, evidence: str = "ev") -> GateResult:
    return GateResult(
        gate_id=gate_id,
        title=gate_id,
        policy="P",
        group=GateGroup.PRE_DEPLOY,
        status=status,
        evidence=evidence,
    )


# --- signing ---------------------------------------------------------------------------------------


def test_sign_refusals_say_why() -> None:
    ledger = SignOffLedger(author="alice")
    assert ledger.sign(_auto(), "bob", "", T) == (
        False,
        "ci is checked automatically; it can be overridden, not signed off",
        False,
    )
    assert ledger.sign(_manual(), "  ", "", T) == (
        False,
        "a sign-off needs a person's name (--as NAME)",
        False,
    )
    assert ledger.sign(_manual(author_may_sign=False), " Alice ", "", T) == (
        False,
        " Alice  is the change author and cannot sign off review",
        False,
    )
    assert ledger.records_for("review", "sign") == []


def test_the_author_may_sign_a_gate_that_allows_it_and_nobody_is_the_author_when_unknown() -> None:
    assert SignOffLedger(author="alice").sign(_manual(), "alice", "mine", T) == (
        True,
        "review signed off by alice",
        True,
    )
    assert SignOffLedger().sign(_manual(author_may_sign=False), "alice", "", T)[0]


def test_two_signers_counted_once_each_and_named_when_complete() -> None:
    ledger = SignOffLedger(author="alice")
    gate = _manual(signers=2)
    assert ledger.sign(gate, "bob", "looks good", T) == (
        True,
        "1 of 2 sign-offs; a different person must sign too",
        False,
    )
    assert not ledger.signed("review")
    assert ledger.sign(gate, "BOB ", "", T) == (
        False,
        "BOB  already signed review; the next one must be a different person",
        False,
    )
    assert ledger.sign(gate, "carol", "", T) == (True, "review signed off by bob and carol", True)
    assert ledger.signed("review")
    assert ledger.sign(gate, "dave", "", T) == (False, "review is already signed off", True)


def test_the_signer_count_is_the_one_recorded_not_a_later_lower_one() -> None:
    ledger = SignOffLedger()
    ledger.sign(_manual(signers=2), "bob", "", T)
    # the gate's definition shrank to one signer: the record still asks for two
    assert ledger.sign(_manual(signers=1), "carol", "", T)[2] is True
    assert ledger.signed("review")
    again = SignOffLedger()
    again.sign(_manual(signers=3), "bob", "", T)
    again.sign(_manual(signers=1), "carol", "", T)
    assert not again.signed("review")  # max of the recorded needs: 3


def test_nothing_is_signed_or_overridden_without_records() -> None:
    ledger = SignOffLedger()
    assert not ledger.signed("review") and not ledger.overridden("ci")


# --- overriding ------------------------------------------------------------------------------------


def test_override_refusals_say_why_in_order() -> None:
    ledger = SignOffLedger(author="alice", deployer="dave")
    assert ledger.override(_manual(), "bob", "r", T) == (
        False,
        "review is a sign-off gate; sign it instead of overriding it",
    )
    assert ledger.override(_auto(overridable=False), "bob", "r", T) == (
        False,
        "POL-007 does not allow overriding ci for this change class",
    )
    assert ledger.override(_auto(), "bob", " ", T) == (False, "an override needs a reason")
    assert ledger.override(_auto(), "bob", "r", T, current=_result("ci", GateStatus.SKIPPED)) == (
        False,
        "ci is skipped; there is nothing to override",
    )
    assert ledger.override(_auto(), " ALICE", "r", T) == (
        False,
        "an override needs a second person:  ALICE is the change author",
    )
    assert ledger.override(_auto(), "Dave", "r", T) == (
        False,
        "an override needs a second person: Dave is running this deploy",
    )
    assert ledger.override(_auto(), "", "r", T) == (False, "a sign-off needs a person's name (--as NAME)")
    assert ledger.to_records() == []


def test_an_override_of_a_failed_or_errored_gate_is_recorded_with_who_and_why() -> None:
    ledger = SignOffLedger(author="alice", deployer="dave")
    assert ledger.override(_auto(), "bob", "flake", T, current=_result("ci", GateStatus.ERROR)) == (
        True,
        "ci overridden by bob",
    )
    assert ledger.overridden("ci")
    assert ledger.override(_auto(), "carol", "again", T) == (False, "ci is already overridden")


def test_two_person_override_counts_distinct_people() -> None:
    ledger = SignOffLedger()
    gate = _auto(override_signers=2)
    assert ledger.override(gate, "bob", "INC-4", T) == (
        True,
        "1 of 2 overrides; a different person must confirm",
    )
    assert not ledger.overridden("ci")
    assert ledger.override(gate, "bob", "again", T) == (
        False,
        "bob already overrode ci; the next one must be a different person",
    )
    assert ledger.override(gate, "carol", "agreed", T) == (True, "ci overridden by bob and carol")
    assert ledger.overridden("ci")


def test_without_a_known_author_or_deployer_anyone_named_may_override() -> None:
    assert SignOffLedger().override(_auto(), "alice", "r", T)[0]


# --- how a gate is shown -------------------------------------------------------------------------


def test_a_signed_gate_shows_who_signed_with_their_notes() -> None:
    ledger = SignOffLedger()
    gate = _manual(signers=2)
    ledger.sign(gate, "bob", "RB-12", T)
    partial = ledger.apply(_result("review", GateStatus.NEEDS_SIGN_OFF))
    assert partial.status == GateStatus.NEEDS_SIGN_OFF
    assert partial.evidence == "1 of 2 sign-offs (bob); needs another person"
    assert [s.actor for s in partial.sign_offs] == ["bob"]
    ledger.sign(gate, "carol", "", T)
    shown = ledger.apply(_result("review", GateStatus.NEEDS_SIGN_OFF))
    assert (shown.status, shown.evidence) == (GateStatus.SIGNED, "signed by bob: RB-12; carol")
    assert [(s.actor, s.note, s.at) for s in shown.sign_offs] == [("bob", "RB-12", T), ("carol", "", T)]


def test_results_without_matching_records_are_shown_as_they_are() -> None:
    ledger = SignOffLedger()
    ledger.sign(_manual(), "bob", "", T)
    failed = _result("ci", GateStatus.FAIL)
    assert ledger.apply(failed) == failed  # signatures of another gate change nothing here
    pending = _result("other", GateStatus.NEEDS_SIGN_OFF)
    assert ledger.apply(pending) == pending
    ledger.override(_auto(), "carol", "r", T)
    passed = _result("ci", GateStatus.PASS)
    assert ledger.apply(passed) == passed


def test_an_overridden_gate_shows_who_why_and_what_it_was() -> None:
    ledger = SignOffLedger()
    gate = _auto(override_signers=2)
    ledger.override(gate, "bob", "INC-4 fix", T)
    partial = ledger.apply(_result("ci", GateStatus.FAIL, "3 tests failed"))
    assert partial.status == GateStatus.FAIL
    assert partial.evidence == "3 tests failed [override 1 of 2: bob: INC-4 fix]"
    assert [s.note for s in partial.sign_offs] == ["INC-4 fix"]
    ledger.override(gate, "carol", "SEV1", T)
    shown = ledger.apply(_result("ci", GateStatus.FAIL, "3 tests failed"))
    assert shown.status == GateStatus.OVERRIDDEN
    assert shown.evidence == "overridden (bob: INC-4 fix; carol: SEV1); was fail: 3 tests failed"
    assert [s.actor for s in shown.sign_offs] == ["bob", "carol"]


# --- who the ledger knows, and resume --------------------------------------------------------------


def test_the_author_comes_from_the_plan_unless_given() -> None:
    plan = make_plan()
    assert SignOffLedger(plan).author == plan.change.author
    assert SignOffLedger(plan, author="zoe").author == "zoe"
    assert SignOffLedger().author == "" and SignOffLedger().deployer == ""


def test_a_resumed_ledger_keeps_records_author_and_deployer() -> None:
    ledger = SignOffLedger(author="alice", deployer="dave")
    ledger.sign(_manual(signers=2), "bob", "n", T)
    ledger.override(_auto(), "carol", "why", T)
    records = ledger.to_records()
    assert records == [
        {
            "kind": "sign",
            "gate_id": "review",
            "actor": "bob",
            "text": "n",
            "at": "2026-11-24T10:00:00Z",
            "needed": 2,
        },
        {
            "kind": "override",
            "gate_id": "ci",
            "actor": "carol",
            "text": "why",
            "at": "2026-11-24T10:00:00Z",
            "needed": 1,
        },
    ]
    again = SignOffLedger.from_records(records, author="alice", deployer="dave")
    assert again.to_records() == records and again.overridden("ci") and not again.signed("review")
    assert again.override(_auto(), "dave", "r", T)[1] == "ci is already overridden"
    assert again.sign(_manual(signers=2, author_may_sign=False), "alice", "", T)[1] == (
        "alice is the change author and cannot sign off review"
    )
    assert again.deployer == "dave"


def test_a_resumed_ledger_takes_the_author_from_the_plan_and_knows_no_deployer_unless_told() -> None:
    plan = make_plan()
    again = SignOffLedger.from_records([], plan)
    assert (again.author, again.deployer) == (plan.change.author, "")
    ok, why = again.override(_auto(), plan.change.author, "r", T)
    assert not ok and why.endswith("is the change author")
