"""The policy pack: which gates a change must pass, who may sign or override them, and the freeze calendar.

The catalogue is data, not code paths: the engine, the checklist and the sign-off
ledger all read the same :class:`GateDef`, so the rules cannot drift apart.
Per-change rules (two reviewers for security-sensitive work, two people for an
emergency freeze bypass) are resolved once in :func:`gates_for`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from core.domain import GateGroup, GateResult, GateStatus
from core.plan import ChangeClass, FreezePeriod, FreezeSpec, Plan

ALL_CLASSES: frozenset[ChangeClass] = frozenset({"standard", "normal", "emergency", "major"})


class ClassRule(BaseModel):
    """What a change class means under POL-012 and what it must carry."""

    model_config = ConfigDict(frozen=True)

    name: ChangeClass
    summary: str
    needs_incident: bool = False
    needs_reason: bool = False
    needs_change_record: bool = False
    allows_security_sensitive: bool = True
    allows_migrations: bool = True


CLASS_RULES: dict[ChangeClass, ClassRule] = {
    "standard": ClassRule(
        name="standard",
        summary="pre-approved routine change; low risk, no schema or security impact",
        allows_security_sensitive=False,
        allows_migrations=False,
    ),
    "normal": ClassRule(name="normal", summary="reviewed change on the regular path; every gate applies"),
    "emergency": ClassRule(
        name="emergency",
        summary="fixes a live incident; needs the incident and a reason, may bypass the freeze "
        "only with two people's override",
        needs_incident=True,
        needs_reason=True,
    ),
    "major": ClassRule(
        name="major",
        summary="high-impact change; needs an approved change record, rollback plan signed by two",
        needs_change_record=True,
    ),
}


class GateDef(BaseModel):
    """One checklist item of the workflow, resolved for one change."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    policy: str
    group: GateGroup
    automated: bool
    required_for: frozenset[ChangeClass] = ALL_CLASSES
    overridable: bool = False  # resolved for the change's class by gates_for
    overridable_for: frozenset[ChangeClass] = frozenset()
    override_signers: int = 1  # distinct people needed for an override
    signers: int = 1  # distinct people needed for a manual sign-off
    author_may_sign: bool = True  # False: the change author cannot sign or override it
    skippable_for: frozenset[ChangeClass] = frozenset()
    side_effects: bool = False  # runs something (deploy, migration, E2E): never run by `check`
    why: str = ""  # why automated or manual: the closing note of the checklist

    def result(
        self, status: GateStatus, evidence: str = "", *, detail: str = "", at: dt.datetime | None = None
    ) -> GateResult:
        """A finding about this gate, carrying its title, policy and group."""
        return GateResult(
            gate_id=self.id,
            title=self.title,
            policy=self.policy,
            group=self.group,
            status=status,
            evidence=evidence,
            detail=detail,
            checked_at=at,
        )


_PRE = GateGroup.PRE_DEPLOY
_MIG = GateGroup.MIGRATIONS
_STG = GateGroup.STAGING
_POST = GateGroup.POST_DEPLOY
_EMERGENCY: frozenset[ChangeClass] = frozenset({"emergency"})

CATALOGUE: tuple[GateDef, ...] = (
    # Step 1: pre-deployment gates
    GateDef(
        id="ci-green",
        title="All CI gates green (lint, tests, SAST, dependency scan, coverage)",
        policy="POL-015",
        group=_PRE,
        automated=True,
        overridable_for=_EMERGENCY,
        override_signers=2,
        why="commit statuses and check runs are on the code host",
    ),
    GateDef(
        id="code-reviewed",
        title="Code reviewed and approved (1 reviewer, 2 for security-sensitive)",
        policy="POL-004",
        group=_PRE,
        automated=True,
        author_may_sign=False,
        why="approvals on the pull request, author and stale approvals excluded",
    ),
    GateDef(
        id="change-class",
        title="Change classification correct (Standard/Normal/Emergency/Major)",
        policy="POL-012",
        group=_PRE,
        automated=True,
        author_may_sign=False,
        why="the class rules are checkable against the change's fields",
    ),
    GateDef(
        id="freeze-window",
        title="Not in a freeze window (no Friday deploys, no holidays)",
        policy="POL-012",
        group=_PRE,
        automated=True,
        overridable_for=_EMERGENCY,
        override_signers=2,
        why="a calendar evaluated in the plan's timezone",
    ),
    GateDef(
        id="no-sev-incident",
        title="No active SEV1/SEV2 incidents",
        policy="POL-007",
        group=_PRE,
        automated=True,
        overridable_for=_EMERGENCY,
        why="firing alerts from Alertmanager and open incidents from PagerDuty",
    ),
    GateDef(
        id="monitoring-normal",
        title="Monitoring dashboards normal (no firing alerts for the service)",
        policy="POL-008",
        group=_PRE,
        automated=True,
        overridable_for=ALL_CLASSES,
        why="dashboards are drawn from the alerts and metrics the tool can read",
    ),
    GateDef(
        id="error-budget",
        title="Error budget not exhausted",
        policy="POL-008",
        group=_PRE,
        automated=True,
        # an emergency fix is usually why the budget burns; POL-008 lets it spend the rest
        required_for=frozenset({"standard", "normal", "major"}),
        why="remaining budget from the SLO query in Prometheus",
    ),
    GateDef(
        id="dependencies-healthy",
        title="Dependencies healthy",
        policy="POL-008",
        group=_PRE,
        automated=True,
        overridable_for=ALL_CLASSES,
        why="each dependency's ready endpoint over HTTP",
    ),
    GateDef(
        id="rollback-plan",
        title="Rollback plan documented",
        policy="POL-007",
        group=_PRE,
        automated=False,
        why="whether a plan is adequate is a person's judgement",
    ),
    GateDef(
        id="dashboards-reviewed",
        title="Dashboards reviewed by a person",
        policy="POL-008",
        group=_PRE,
        automated=False,
        skippable_for=frozenset({"standard"}),
        why="a person looks for anomalies no alert encodes",
    ),
    # Step 2: database migrations
    GateDef(
        id="migrations-lint",
        title="Migrations backward compatible (expand-contract)",
        policy="POL-012",
        group=_MIG,
        automated=True,
        overridable_for=frozenset({"normal", "major", "emergency"}),
        override_signers=2,
        author_may_sign=False,
        why="the linter finds drops, renames, type changes, NOT NULL without default, locking DDL",
    ),
    GateDef(
        id="migrations-staging-data",
        title="Migrations tested on staging with production-scale data",
        policy="POL-012",
        group=_MIG,
        automated=False,
        why="data volume on staging is not visible to the tool",
    ),
    GateDef(
        id="migrations-online-ddl",
        title="Online DDL for large tables (pt-online-schema-change, gh-ost)",
        policy="POL-012",
        group=_MIG,
        automated=False,
        why="table sizes and the chosen tool are outside the plan",
    ),
    GateDef(
        id="migrations-lock-monitoring",
        title="Lock monitoring configured (alert on > 30 s)",
        policy="POL-012",
        group=_MIG,
        automated=False,
        why="the alert lives in the database's monitoring, not in the plan",
    ),
    GateDef(
        id="migrations-staging-run",
        title="Migrations run on staging first, staging healthy after",
        policy="POL-012",
        group=_MIG,
        automated=True,
        side_effects=True,
        why="runs the plan's staging migration command, then probes staging",
    ),
    # Step 3: staging
    GateDef(
        id="staging-deploy",
        title="Deployed to staging",
        policy="POL-007",
        group=_STG,
        automated=True,
        side_effects=True,
        why="through the Cluster port",
    ),
    GateDef(
        id="staging-e2e",
        title="E2E test suite passes on staging (Gate 3)",
        policy="POL-015",
        group=_STG,
        automated=True,
        side_effects=True,
        overridable_for=_EMERGENCY,
        override_signers=2,
        why="the plan's E2E command, exit code 0",
    ),
    GateDef(
        id="staging-health-live",
        title="/health/live returns 200",
        policy="POL-007",
        group=_STG,
        automated=True,
        why="HTTP probe",
    ),
    GateDef(
        id="staging-health-ready",
        title="/health/ready returns 200 with all dependencies",
        policy="POL-007",
        group=_STG,
        automated=True,
        why="HTTP probe with the dependency detail",
    ),
    GateDef(
        id="staging-new-errors",
        title="No new errors in structured logs",
        policy="POL-008",
        group=_STG,
        automated=True,
        overridable_for=ALL_CLASSES,
        why="an error-count query over the staging logs/metrics",
    ),
    # Step 5: post-deployment verification
    GateDef(
        id="verify-error-rate",
        title="Error rate within normal range",
        policy="POL-008",
        group=_POST,
        automated=True,
        why="Prometheus error rate against the SLO or the baseline",
    ),
    GateDef(
        id="verify-latency-slo",
        title="Latency p50/p95/p99 within SLO",
        policy="POL-008",
        group=_POST,
        automated=True,
        why="Prometheus latency quantiles against the plan's SLO",
    ),
    GateDef(
        id="verify-no-new-alerts",
        title="No new alerts firing",
        policy="POL-008",
        group=_POST,
        automated=True,
        overridable_for=ALL_CLASSES,
        why="alerts that started after the deploy began",
    ),
    GateDef(
        id="verify-smoke",
        title="Smoke tests passing",
        policy="POL-015",
        group=_POST,
        automated=True,
        why="the smoke command and HTTP smoke checks",
    ),
    GateDef(
        id="verify-synthetics",
        title="Synthetic monitors green",
        policy="POL-015",
        group=_POST,
        automated=True,
        why="HTTP synthetic checks",
    ),
    GateDef(
        id="verify-business",
        title="Business metrics normal",
        policy="POL-008",
        group=_POST,
        automated=True,
        overridable_for=ALL_CLASSES,
        why="PromQL business metrics within their bounds",
    ),
)

CATALOGUE_BY_ID: dict[str, GateDef] = {g.id: g for g in CATALOGUE}
GROUP_ORDER: tuple[GateGroup, ...] = (_PRE, _MIG, _STG, _POST)


def required_approvals(plan: Plan) -> int:
    """POL-004: one reviewer, two for security-sensitive changes."""
    return 2 if plan.change.security_sensitive else 1


def has_migrations(plan: Plan) -> bool:
    m = plan.migrations
    return m is not None and bool(m.files or m.staging_command or m.production_command)


def _resolve(gate: GateDef, plan: Plan) -> GateDef:
    klass = plan.change.class_
    update: dict[str, object] = {"overridable": klass in gate.overridable_for}
    if gate.id == "rollback-plan" and klass == "major":
        update["signers"] = 2
    if gate.id == "code-reviewed":
        update["title"] = f"Code reviewed and approved ({required_approvals(plan)} reviewer(s) needed)"
    return gate.model_copy(update=update)


def gates_for(plan: Plan) -> list[GateDef]:
    """The gates this change must pass, in workflow order, with per-change rules applied."""
    klass = plan.change.class_
    manual_by_id = {m.id: m for m in plan.gates.manual}
    out: list[GateDef] = []
    for gate in CATALOGUE:
        if klass not in gate.required_for:
            continue
        if gate.group == _MIG and not has_migrations(plan):
            continue
        resolved = _resolve(gate, plan)
        spec = manual_by_id.pop(gate.id, None)
        if spec is not None and not gate.automated:
            # the plan may rename a catalogue sign-off or ask for more signers, never fewer
            resolved = resolved.model_copy(
                update={
                    "title": spec.title,
                    "signers": max(resolved.signers, spec.signers),
                    "author_may_sign": resolved.author_may_sign and spec.author_may_sign,
                }
            )
        out.append(resolved)
    for spec in manual_by_id.values():
        if spec.id in CATALOGUE_BY_ID:
            continue  # an automated gate cannot be turned into a sign-off by the plan
        out.append(
            GateDef(
                id=spec.id,
                title=spec.title,
                policy=spec.policy,
                group=GateGroup(spec.group),
                automated=False,
                signers=spec.signers,
                author_may_sign=spec.author_may_sign,
                why="declared by the plan as a manual check",
            )
        )
    order = {g: i for i, g in enumerate(GROUP_ORDER)}
    return sorted(out, key=lambda g: order[g.group])  # stable: catalogue order within a group


def gate_def(plan: Plan, gate_id: str) -> GateDef | None:
    return next((g for g in gates_for(plan) if g.id == gate_id), None)


def skip_allowed(plan: Plan, gate: GateDef) -> bool:
    return gate.id in plan.gates.skip and plan.change.class_ in gate.skippable_for


def classification_problems(plan: Plan) -> list[str]:
    """POL-012 rules a change's class contradicts; empty means the classification holds."""
    change = plan.change
    rule = CLASS_RULES[change.class_]
    problems: list[str] = []
    if rule.needs_incident and not (change.incident or "").strip():
        problems.append(f"{change.class_} change needs change.incident (the incident it fixes)")
    if rule.needs_reason and not (change.reason or "").strip():
        problems.append(f"{change.class_} change needs change.reason (why it cannot wait)")
    if rule.needs_change_record and not (change.change_record or "").strip():
        problems.append(f"{change.class_} change needs change.change_record (an approved change record id)")
    if change.security_sensitive and not rule.allows_security_sensitive:
        problems.append("security-sensitive change cannot be classified standard; use normal or major")
    if has_migrations(plan) and not rule.allows_migrations:
        problems.append("change with database migrations cannot be classified standard; use normal")
    for gate_id in plan.gates.skip:
        gate = CATALOGUE_BY_ID.get(gate_id)
        if gate is None:
            problems.append(f"gates.skip names unknown gate '{gate_id}'")
        elif change.class_ not in gate.skippable_for:
            problems.append(f"gates.skip: {change.class_} changes may not skip '{gate_id}'")
    return problems


# --- freeze calendar (POL-012) --------------------------------------------------------------


class FreezeDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    open: bool
    local_time: dt.datetime
    reasons: tuple[str, ...] = ()
    next_open: dt.datetime | None = None  # local time; None when open or beyond the search horizon


#: how far ahead the next open window is searched; a year of freeze is a plan error, not a calendar
_HORIZON_STEPS = 400


def _period_bounds(period: FreezePeriod, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in aware datetimes; a date end freezes that whole day."""

    def at(value: dt.datetime | dt.date, end: bool) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=tz)
        day = value + dt.timedelta(days=1) if end else value
        return dt.datetime.combine(day, dt.time(0), tzinfo=tz)

    return at(period.start, False), at(period.end, True)


def _next_midnight(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=tz)


def _blocks(local: dt.datetime, spec: FreezeSpec, tz: ZoneInfo) -> list[tuple[str, dt.datetime]]:
    """Every rule that denies a deploy at `local`, with when that denial ends."""
    out: list[tuple[str, dt.datetime]] = []
    day = local.date()
    weekday = local.weekday()
    if spec.no_fridays and weekday == 4:
        out.append(("Friday (no Friday deploys)", _next_midnight(local, tz)))
    if spec.no_weekends and weekday in (5, 6):
        out.append((f"{local.strftime('%A')} (no weekend deploys)", _next_midnight(local, tz)))
    if day in spec.holidays:
        out.append((f"holiday {day.isoformat()}", _next_midnight(local, tz)))
    for period in spec.periods:
        start, end = _period_bounds(period, tz)
        if start <= local < end:
            label = period.reason or "freeze period"
            out.append(
                (
                    f"{label} ({start.astimezone(tz):%Y-%m-%d %H:%M} to {end.astimezone(tz):%Y-%m-%d %H:%M})",
                    end,
                )
            )
    return out


def freeze_status(now: dt.datetime, spec: FreezeSpec, timezone: str) -> FreezeDecision:
    """Whether `now` is open for deploys; any denying rule wins, and all of them must end to reopen."""
    tz = ZoneInfo(timezone)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    local = now.astimezone(tz)
    blocks = _blocks(local, spec, tz)
    if not blocks:
        return FreezeDecision(open=True, local_time=local)
    t = local
    for _ in range(_HORIZON_STEPS):
        current = _blocks(t, spec, tz)
        if not current:
            return FreezeDecision(
                open=False, local_time=local, reasons=tuple(r for r, _ in blocks), next_open=t
            )
        t = max(end for _, end in current).astimezone(tz)
    return FreezeDecision(open=False, local_time=local, reasons=tuple(r for r, _ in blocks))
