"""The policy pack: which gates each change class gets, classification rules, the freeze calendar."""

from __future__ import annotations

import datetime as dt

import pytest

from core.domain import GateGroup
from core.plan import FreezePeriod, FreezeSpec, Plan, parse_plan
from core.policy import classification_problems, freeze_status, gate_def, gates_for

BASE = """
service: checkout
version: {from: "1.0.0", to: "1.1.0", image: "reg/checkout:1.1.0"}
change: {id: CHG-1, class: %(klass)s, author: alice %(change)s}
targets:
  staging: {namespace: s, deployment: checkout}
  production: {namespace: p, deployment: checkout}
%(extra)s
"""


def plan(klass: str = "normal", change: str = "", extra: str = "") -> Plan:
    return parse_plan(BASE % {"klass": klass, "change": change, "extra": extra}, "t.yaml", env={})


def ids(p: Plan) -> list[str]:
    return [g.id for g in gates_for(p)]


def test_normal_change_gets_every_pre_deploy_and_staging_gate_in_order():
    got = ids(plan())
    assert got[:10] == [
        "ci-green", "code-reviewed", "change-class", "freeze-window", "no-sev-incident",
        "monitoring-normal", "error-budget", "dependencies-healthy", "rollback-plan", "dashboards-reviewed",
    ]  # fmt: skip
    assert "staging-e2e" in got and "verify-smoke" in got
    assert not any(g.startswith("migrations-") for g in got)


def test_migration_gates_only_when_the_plan_has_migrations():
    got = ids(plan(extra="migrations: {files: [m.sql], staging_command: ./migrate}"))
    assert [g for g in got if g.startswith("migrations-")] == [
        "migrations-lint", "migrations-staging-data", "migrations-online-ddl",
        "migrations-lock-monitoring", "migrations-staging-run",
    ]  # fmt: skip
    groups = [g.group for g in gates_for(plan(extra="migrations: {files: [m.sql]}"))]
    assert groups == sorted(groups, key=[GateGroup.PRE_DEPLOY, GateGroup.MIGRATIONS, GateGroup.STAGING,
                                         GateGroup.POST_DEPLOY].index)  # fmt: skip


def test_emergency_may_spend_the_error_budget_and_override_the_freeze_with_two_people():
    p = plan("emergency", ", incident: INC-1, reason: payments down")
    assert "error-budget" not in ids(p)
    freeze = gate_def(p, "freeze-window")
    assert freeze is not None and freeze.overridable and freeze.override_signers == 2
    normal_freeze = gate_def(plan(), "freeze-window")
    assert normal_freeze is not None and not normal_freeze.overridable


def test_security_sensitive_needs_two_reviewers_and_major_rollback_plan_two_signers():
    review = gate_def(plan(change=", security_sensitive: true"), "code-reviewed")
    assert review is not None and "2 reviewer" in review.title and not review.author_may_sign
    rollback = gate_def(plan("major", ", change_record: CR-1"), "rollback-plan")
    assert rollback is not None and rollback.signers == 2
    assert gate_def(plan(), "rollback-plan").signers == 1  # type: ignore[union-attr]


def test_plan_manual_gates_are_added_and_may_only_raise_signers():
    p = plan(
        extra="gates:\n  manual:\n"
        "    - {id: legal-ok, title: Legal approved, policy: POL-012, group: staging, signers: 2}\n"
        "    - {id: rollback-plan, title: Runbook linked, signers: 2}\n"
        "    - {id: ci-green, title: sneaky}\n"
    )
    legal = gate_def(p, "legal-ok")
    assert (
        legal is not None and legal.group == GateGroup.STAGING and legal.signers == 2 and not legal.automated
    )
    rb = gate_def(p, "rollback-plan")
    assert rb is not None and rb.title == "Runbook linked" and rb.signers == 2
    ci = gate_def(p, "ci-green")
    assert ci is not None and ci.automated and ci.title != "sneaky"


@pytest.mark.parametrize(
    ("klass", "change", "extra", "expected"),
    [
        ("normal", "", "", []),
        ("emergency", "", "", ["needs change.incident", "needs change.reason"]),
        ("emergency", ", incident: INC-7, reason: outage", "", []),
        ("major", "", "", ["needs change.change_record"]),
        (
            "standard",
            ", security_sensitive: true",
            "",
            ["security-sensitive change cannot be classified standard"],
        ),
        (
            "standard",
            "",
            "migrations: {files: [a.sql]}",
            ["database migrations cannot be classified standard"],
        ),
        ("standard", "", "gates: {skip: [dashboards-reviewed]}", []),
        ("normal", "", "gates: {skip: [dashboards-reviewed]}", ["may not skip 'dashboards-reviewed'"]),
        ("normal", "", "gates: {skip: [no-such-gate]}", ["unknown gate 'no-such-gate'"]),
    ],
)
def test_classification_rules(klass, change, extra, expected):
    problems = classification_problems(plan(klass, change, extra))
    assert len(problems) == len(expected), problems
    for text, want in zip(problems, expected, strict=True):
        assert want in text


# --- freeze calendar ------------------------------------------------------------------------

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_thursday_is_open_and_friday_is_frozen_until_saturday():
    spec = FreezeSpec()
    assert freeze_status(at(2026, 11, 26, 15, 0), spec, "UTC").open
    friday = freeze_status(at(2026, 11, 27, 9, 30), spec, "UTC")
    assert not friday.open and friday.reasons[0].startswith("Friday")
    assert friday.next_open == at(2026, 11, 28, 0, 0)


def test_no_weekends_pushes_the_next_window_to_monday():
    decision = freeze_status(at(2026, 11, 27, 9, 0), FreezeSpec(no_weekends=True), "UTC")
    assert decision.next_open == at(2026, 11, 30, 0, 0)
    assert freeze_status(at(2026, 11, 29, 12, 0), FreezeSpec(no_weekends=True), "UTC").reasons == (
        "Sunday (no weekend deploys)",
    )


def test_holiday_in_the_plans_timezone():
    spec = FreezeSpec(holidays=[dt.date(2026, 12, 24)])  # the 25th is a Friday
    # 23:30 UTC on the 23rd is already the 24th in Berlin
    berlin = freeze_status(at(2026, 12, 23, 23, 30), spec, "Europe/Berlin")
    assert not berlin.open and berlin.reasons == ("holiday 2026-12-24",)
    assert berlin.next_open is not None and berlin.next_open.isoformat() == "2026-12-26T00:00:00+01:00"
    assert freeze_status(at(2026, 12, 23, 23, 30), spec, "UTC").open


def test_timezone_edge_at_midnight():
    spec = FreezeSpec()
    # Thursday 23:59:59 in Berlin is open, one second later it is Friday there
    assert freeze_status(at(2026, 11, 26, 22, 59, 59), spec, "Europe/Berlin").open
    assert not freeze_status(at(2026, 11, 26, 23, 0, 0), spec, "Europe/Berlin").open
    # Friday 05:00 UTC is still Thursday evening in Los Angeles
    assert freeze_status(at(2026, 11, 27, 5, 0), spec, "America/Los_Angeles").open
    assert not freeze_status(at(2026, 11, 27, 8, 0), spec, "America/Los_Angeles").open


def test_explicit_periods_with_dates_and_naive_local_datetimes():
    spec = FreezeSpec(
        no_fridays=False,
        periods=[
            FreezePeriod(start=dt.date(2026, 12, 20), end=dt.date(2026, 12, 22), reason="year-end close"),
            FreezePeriod(start=dt.datetime(2026, 12, 23, 8, 0), end=dt.datetime(2026, 12, 23, 18, 0)),
        ],
    )
    tz = "Europe/Berlin"
    assert freeze_status(at(2026, 12, 19, 22, 59), spec, tz).open
    inside = freeze_status(at(2026, 12, 22, 22, 0), spec, tz)  # 23:00 local on the last frozen day
    assert not inside.open and "year-end close" in inside.reasons[0]
    assert inside.next_open is not None and inside.next_open.isoformat() == "2026-12-23T00:00:00+01:00"
    assert freeze_status(at(2026, 12, 23, 6, 59), spec, tz).open  # 07:59 local
    afternoon = freeze_status(at(2026, 12, 23, 12, 0), spec, tz)
    assert not afternoon.open and afternoon.next_open is not None
    assert afternoon.next_open.isoformat() == "2026-12-23T18:00:00+01:00"


def test_deny_wins_and_chained_freezes_find_the_first_real_opening():
    spec = FreezeSpec(
        no_fridays=True,
        no_weekends=True,
        holidays=[dt.date(2026, 12, 28)],  # Monday
        periods=[FreezePeriod(start=dt.datetime(2026, 12, 29, 0, 0), end=dt.datetime(2026, 12, 29, 9, 0))],
    )
    decision = freeze_status(at(2026, 12, 25, 10, 0), spec, "UTC")  # Friday
    assert decision.next_open == at(2026, 12, 29, 9, 0)


def test_long_freezes_jump_to_their_end_and_endless_fridays_give_up():
    spec = FreezeSpec(periods=[FreezePeriod(start=dt.date(2026, 1, 1), end=dt.date(2027, 12, 30))])
    decision = freeze_status(at(2026, 6, 1, 12, 0), spec, "UTC")
    assert decision.next_open == at(2028, 1, 1, 0, 0)  # the 31st is a Friday
    endless = FreezeSpec(holidays=[dt.date(2026, 6, 1) + dt.timedelta(days=i) for i in range(500)])
    stuck = freeze_status(at(2026, 6, 1, 12, 0), endless, "UTC")
    assert not stuck.open and stuck.next_open is None
