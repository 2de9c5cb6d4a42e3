"""Step 1 gates against in-memory ports: CI, reviews, classification, freeze, incidents, health, budget."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import respx

from core.clock import VirtualClock
from core.domain import Alert, CheckRun, CommandOutcome, GateStatus, ProbeResult, QueryResult, Review
from core.gates import ci, dependencies, error_budget, freeze, incidents, monitoring, review
from core.gates.base import GateContext
from core.gates.change_class import check_change_class
from core.plan import Plan, parse_plan
from core.ports import PortError

PLAN = """
service: checkout
version: {from: "1.0.0", to: "1.1.0", image: "reg/checkout:1.1.0"}
change: {id: CHG-1, class: %(klass)s, author: alice, repo: shop/checkout, commit: abc123, pull_request: 7 %(change)s}
targets:
  staging: {namespace: s, deployment: checkout, health: {live: "http://stg/health/live", ready: "http://stg/health/ready"}}
  production: {namespace: p, deployment: checkout}
%(extra)s
"""


def make_plan(klass: str = "normal", change: str = "", extra: str = "") -> Plan:
    return parse_plan(PLAN % {"klass": klass, "change": change, "extra": extra}, "t.yaml", env={})


@dataclass
class FakeCodeHost:
    runs: list[CheckRun] = field(default_factory=list)
    review_list: list[Review] = field(default_factory=list)
    error: str | None = None

    async def checks(self, repo: str, commit: str) -> list[CheckRun]:
        if self.error:
            raise PortError(self.error)
        return self.runs

    async def reviews(self, repo: str, pull_request: int) -> list[Review]:
        if self.error:
            raise PortError(self.error)
        return self.review_list


@dataclass
class FakeAlerts:
    alerts: list[Alert] = field(default_factory=list)
    error: str | None = None
    asked: list[list[str] | None] = field(default_factory=list)

    async def active_alerts(self, matchers: list[str] | None = None) -> list[Alert]:
        self.asked.append(matchers)
        if self.error:
            raise PortError(self.error)
        return self.alerts


@dataclass
class FakeMetrics:
    answers: dict[str, QueryResult] = field(default_factory=dict)
    default: QueryResult = field(default_factory=lambda: QueryResult(value=None, reason="no data: empty"))
    queries: list[str] = field(default_factory=list)

    async def query(self, promql: str) -> QueryResult:
        self.queries.append(promql)
        return self.answers.get(promql, self.default)

    async def canary_metrics(self, window_s: float):  # pragma: no cover - gates never ask
        raise AssertionError("not used by gates")

    async def close(self) -> None:
        return None


@dataclass
class FakeProbe:
    answers: dict[str, ProbeResult] = field(default_factory=dict)

    async def check(self, url, *, expect_status=200, expect_body=None, timeout_s=5.0) -> ProbeResult:
        return self.answers.get(url, ProbeResult(url=url, ok=False, detail="unreachable (ConnectError)"))


@dataclass
class FakeRunner:
    outcome: CommandOutcome | None = None
    lines: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    hook: Callable[[], Awaitable[None]] | None = None

    async def run(self, command, *, timeout_s, on_line=None, env=None) -> CommandOutcome:
        self.commands.append(command)
        if self.hook is not None:
            await self.hook()
        for line in self.lines:
            if on_line is not None:
                out = on_line(line)
                if out is not None:
                    await out
        return self.outcome or CommandOutcome(command=command, exit_code=0, output="\n".join(self.lines))


def make_ctx(plan: Plan | None = None, *, now: dt.datetime | None = None, **ports) -> GateContext:
    clock = VirtualClock(now or dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC))
    return GateContext(
        plan=plan or make_plan(),
        clock=clock,
        probe=ports.get("probe", FakeProbe()),
        runner=ports.get("runner", FakeRunner()),
        alerts=ports.get("alerts", FakeAlerts()),
        metrics=ports.get("metrics", FakeMetrics()),
        codehost=ports.get("codehost", FakeCodeHost()),
        deploy_started_at=clock.now(),
        staging=ports.get("staging"),
        base_dir=ports.get("base_dir"),
        on_log=ports.get("on_log"),
        dry_run=ports.get("dry_run", False),
    )


# --- CI -----------------------------------------------------------------------------------


def runs(**states: str) -> list[CheckRun]:
    return [CheckRun(name=n.replace("_", "-"), state=s) for n, s in states.items()]  # type: ignore[arg-type]


async def test_ci_all_green_and_names_normalised():
    host = FakeCodeHost(
        runs=[
            CheckRun(name="ci / Lint", state="success"),
            CheckRun(name="Tests", state="success"),
            CheckRun(name="SAST", state="success"),
            CheckRun(name="dependency scan", state="success"),
            CheckRun(name="coverage", state="neutral"),
        ]
    )
    res = await ci.check_ci(make_ctx(codehost=host))
    assert res.status == GateStatus.PASS and res.evidence == "5/5 required checks green"
    assert res.policy == "POL-015"


async def test_ci_failure_is_named_with_counts():
    host = FakeCodeHost(runs=runs(lint="success", tests="success", sast="failure", dependency_scan="success"))
    res = await ci.check_ci(make_ctx(codehost=host))
    assert res.status == GateStatus.FAIL
    assert res.evidence == "3/5 required checks green; sast: failure, coverage: missing"


async def test_ci_pending_blocks_without_failing_and_worst_duplicate_wins():
    host = FakeCodeHost(
        runs=[
            *runs(
                lint="success", tests="pending", sast="success", dependency_scan="success", coverage="success"
            ),
            CheckRun(name="lint", state="error"),
        ]
    )
    res = await ci.check_ci(make_ctx(codehost=host))
    assert res.status == GateStatus.FAIL and "lint: error" in res.evidence
    host.runs = host.runs[:-1]
    res = await ci.check_ci(make_ctx(codehost=host))
    assert res.status == GateStatus.PENDING and "tests: pending" in res.evidence


async def test_ci_unconfigured_and_unreachable_are_errors_that_say_why():
    res = await ci.check_ci(make_ctx(codehost=None))
    assert res.status == GateStatus.ERROR and "gates.ci.token" in res.evidence
    res = await ci.check_ci(
        make_ctx(make_plan(extra=""), codehost=FakeCodeHost(error="GitHub https://api.github.com: HTTP 401"))
    )
    assert res.status == GateStatus.ERROR and "HTTP 401" in res.evidence


async def test_ci_command_provider_passes_on_exit_zero_and_keeps_output():
    plan = make_plan(extra="gates: {ci: {provider: command, command: ./ci-status.sh}}")
    runner = FakeRunner(outcome=CommandOutcome(command="x", exit_code=0, output="jenkins: build 91 SUCCESS"))
    res = await ci.check_ci(make_ctx(plan, runner=runner))
    assert res.status == GateStatus.PASS and "jenkins: build 91 SUCCESS" in res.evidence
    runner.outcome = CommandOutcome(command="x", exit_code=2, output="build 92 FAILED")
    assert (await ci.check_ci(make_ctx(plan, runner=runner))).status == GateStatus.FAIL
    runner.outcome = CommandOutcome(command="x", exit_code=None, detail="timed out after 60s")
    res = await ci.check_ci(make_ctx(plan, runner=runner))
    assert res.status == GateStatus.ERROR and "timed out" in res.evidence


# --- reviews --------------------------------------------------------------------------------


def rv(name: str, state: str, minute: int = 0) -> Review:
    return Review(
        reviewer=name,
        state=state,
        commit="abc123",
        submitted_at=dt.datetime(2026, 11, 20, 9, minute, tzinfo=dt.UTC),
    )  # type: ignore[arg-type]


async def test_one_approval_is_enough_for_a_normal_change():
    res = await review.check_review(make_ctx(codehost=FakeCodeHost(review_list=[rv("bob", "APPROVED")])))
    assert res.status == GateStatus.PASS and res.evidence.startswith("1 approval(s) (bob), 1 needed")


async def test_security_sensitive_needs_two_and_the_author_does_not_count():
    plan = make_plan(change=", security_sensitive: true")
    host = FakeCodeHost(review_list=[rv("bob", "APPROVED"), rv("alice", "APPROVED")])
    res = await review.check_review(make_ctx(plan, codehost=host))
    assert res.status == GateStatus.FAIL
    assert "1 approval(s) (bob), 2 needed" in res.evidence and "author's own review ignored" in res.evidence
    host.review_list.append(rv("carol", "APPROVED"))
    assert (await review.check_review(make_ctx(plan, codehost=host))).status == GateStatus.PASS


async def test_latest_decisive_review_counts_and_changes_requested_blocks():
    host = FakeCodeHost(
        review_list=[rv("bob", "APPROVED", 1), rv("bob", "COMMENTED", 5), rv("carol", "CHANGES_REQUESTED", 3)]
    )
    res = await review.check_review(make_ctx(codehost=host))
    assert res.status == GateStatus.FAIL and "changes requested by carol" in res.evidence
    host.review_list.append(rv("carol", "APPROVED", 9))
    res = await review.check_review(make_ctx(codehost=host))
    assert res.status == GateStatus.PASS and "2 approval(s) (bob, carol), 1 needed" in res.evidence
    host.review_list.append(rv("bob", "DISMISSED", 10))
    res = await review.check_review(make_ctx(codehost=host))
    assert res.evidence.startswith("1 approval(s) (carol), 1 needed")


async def test_review_needs_a_pull_request():
    plan = make_plan()
    plan = plan.model_copy(update={"change": plan.change.model_copy(update={"pull_request": None})})
    res = await review.check_review(make_ctx(plan))
    assert res.status == GateStatus.ERROR and "change.pull_request" in res.evidence


# --- classification and freeze -----------------------------------------------------------------


async def test_change_class_gate_flags_contradictions():
    res = await check_change_class(make_ctx(make_plan("standard", ", security_sensitive: true")))
    assert res.status == GateStatus.FAIL and "cannot be classified standard" in res.evidence
    ok = await check_change_class(
        make_ctx(make_plan("emergency", ", incident: INC-9, reason: checkout down"))
    )
    assert ok.status == GateStatus.PASS and "incident INC-9" in ok.evidence


async def test_freeze_gate_shows_the_next_open_window():
    friday = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
    res = await freeze.check_freeze(make_ctx(make_plan(extra="gates: {timezone: Europe/Berlin}"), now=friday))
    assert res.status == GateStatus.FAIL
    assert "Friday" in res.evidence and "next open window Sat 2026-11-28 00:00 CET" in res.evidence
    emergency = make_plan("emergency", ", incident: INC-1, reason: down")
    res = await freeze.check_freeze(make_ctx(emergency, now=friday))
    assert "override by two people" in res.evidence
    res = await freeze.check_freeze(make_ctx(now=dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)))
    assert res.status == GateStatus.PASS and res.evidence.startswith("open: Thu 2026-11-26")


# --- incidents, monitoring ------------------------------------------------------------------------


async def test_active_sev_alert_blocks_with_its_name():
    alerts = FakeAlerts([Alert(name="CheckoutDown", labels={"severity": "SEV1"}, summary="5xx at 40 %")])
    res = await incidents.check_incidents(make_ctx(alerts=alerts))
    assert res.status == GateStatus.FAIL and "CheckoutDown [SEV1]: 5xx at 40 %" in res.evidence
    assert alerts.asked == [['severity=~"SEV1|SEV2|sev1|sev2|critical"']]


async def test_incidents_unreachable_or_unconfigured_is_an_error():
    res = await incidents.check_incidents(
        make_ctx(alerts=FakeAlerts(error="Alertmanager http://am:9093: unreachable"))
    )
    assert res.status == GateStatus.ERROR and "unreachable" in res.evidence
    res = await incidents.check_incidents(make_ctx(alerts=None))
    assert res.status == GateStatus.ERROR and "alertmanager.url" in res.evidence


@respx.mock
async def test_pagerduty_high_priority_incidents_count_and_the_token_stays_secret():
    route = respx.get("https://pd.example.com/incidents").mock(
        return_value=httpx.Response(
            200,
            json={
                "incidents": [
                    {"incident_number": 41, "title": "DB failover", "priority": {"summary": "P1"}},
                    {"incident_number": 42, "title": "Slow report", "priority": {"summary": "P4"}},
                    {"incident_number": 43, "title": "Pager storm", "urgency": "high"},
                ]
            },
        )
    )
    plan = make_plan(
        extra="gates: {incidents: {pagerduty_url: 'https://pd.example.com', pagerduty_token: s3cr3t-pd}}"
    )
    res = await incidents.check_incidents(make_ctx(plan))
    assert route.called and route.calls[0].request.headers["Authorization"] == "Token token=s3cr3t-pd"
    assert (
        res.status == GateStatus.FAIL
        and "2 active SEV1/SEV2" in res.evidence
        and "41 DB failover [P1]" in res.evidence
    )
    route.mock(return_value=httpx.Response(401, json={"error": "bad token s3cr3t-pd"}))
    res = await incidents.check_incidents(make_ctx(plan))
    assert res.status == GateStatus.ERROR and "HTTP 401" in res.evidence
    assert "s3cr3t-pd" not in res.evidence + res.detail


async def test_monitoring_uses_the_service_label_by_default():
    alerts = FakeAlerts([Alert(name="HighLatency", labels={"severity": "warning", "service": "checkout"})])
    res = await monitoring.check_monitoring(make_ctx(alerts=alerts))
    assert res.status == GateStatus.FAIL and "HighLatency [warning]" in res.evidence
    assert alerts.asked == [['service="checkout"']]
    alerts.alerts = []
    assert (await monitoring.check_monitoring(make_ctx(alerts=alerts))).status == GateStatus.PASS


# --- error budget, dependencies ----------------------------------------------------------------------


async def test_error_budget_remaining_and_exhausted():
    plan = make_plan()
    query = error_budget.budget_query(plan)
    assert 'service="checkout"' in query and "[30d]" in query
    metrics = FakeMetrics({query: QueryResult(value=0.0004)})
    res = await error_budget.check_error_budget(make_ctx(plan, metrics=metrics))
    assert res.status == GateStatus.PASS and res.evidence.startswith("60.0 % of error budget left")
    metrics.answers[query] = QueryResult(value=0.0015)
    res = await error_budget.check_error_budget(make_ctx(plan, metrics=metrics))
    assert res.status == GateStatus.FAIL and res.evidence.startswith("exhausted: 0.0 %")


async def test_error_budget_without_data_is_never_healthy():
    res = await error_budget.check_error_budget(make_ctx(metrics=FakeMetrics()))
    assert res.status == GateStatus.ERROR and res.evidence == "no data: empty"
    res = await error_budget.check_error_budget(make_ctx(metrics=None))
    assert res.status == GateStatus.ERROR and "prometheus.url" in res.evidence


async def test_dependencies_name_the_unhealthy_one():
    plan = make_plan(
        extra="gates: {dependencies: [{name: payments, url: 'http://pay/ready'}, {name: db, url: 'http://db/ready'}]}"
    )
    probe = FakeProbe(
        {"http://pay/ready": ProbeResult(url="http://pay/ready", ok=True, status=200, latency_ms=3)}
    )
    res = await dependencies.check_dependencies(make_ctx(plan, probe=probe))
    assert res.status == GateStatus.FAIL and res.evidence == "1/2 unhealthy: db: unreachable (ConnectError)"
    probe.answers["http://db/ready"] = ProbeResult(url="http://db/ready", ok=True, status=200)
    res = await dependencies.check_dependencies(make_ctx(plan, probe=probe))
    assert res.status == GateStatus.PASS and res.evidence == "2/2 dependencies healthy"
