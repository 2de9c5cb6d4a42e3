"""The engine's preflight, verification and completion steps (issue 16; staging and migrations are in
test_mutants_rollout_steps.py).

Written against `make mutate MUTATE_MODULES=core.rollout` in steps/preflight.py, steps/verification.py
and steps/completion.py: the command-line approvals are signed once; a failed verification asks, rolls
back or fixes forward as the plan says; completion notifies and closes tickets once and rolls feature
flags out while watching production. All in memory, in virtual time.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.domain import Alert, CanaryMetrics, GateStatus, Outcome, Phase, ProbeResult, WorkloadSample
from core.events import (
    AnalysisSample,
    DecisionRequired,
    GateEvaluated,
    GateSignedOff,
    LogLine,
    Paused,
    PhaseChanged,
    RollbackTriggered,
    WindowStarted,
)
from core.plan import Plan
from core.ports import PortError
from core.session import Session, demo_plan
from tests.engine_helpers import until
from tests.resume_helpers import run_killed_at
from tests.rollout_steps_helpers import driver, finished_reason, left_in_cluster, log_lines, since_resume
from tests.test_mutants_rollout import _of

# --- preflight ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "why"),
    [
        ("no-such-gate", "no such gate in this plan"),
        ("ci-green", "ci-green is checked automatically; it can be overridden, not signed off"),
    ],
)
async def test_an_approval_that_cannot_be_signed_blocks_before_anything_is_touched(
    tmp_path: Path, approval: str, why: str
) -> None:
    session = await driver(tmp_path, demo_plan(), approvals=["rollback-plan", approval])
    assert await session.rollout.run() == Outcome.BLOCKED
    assert finished_reason(session) == f"--approve {approval}: {why}"
    [phase] = [p for p in _of(session.rollout.events, PhaseChanged) if p.phase == Phase.PREFLIGHT]
    assert phase.reason == "checking pre-deploy gates"
    assert session.world.staging.calls == []  # type: ignore[attr-defined]


async def test_command_line_approvals_are_signed_once_even_across_a_resume(tmp_path: Path) -> None:
    plan = demo_plan()
    first = await driver(tmp_path, plan, interactive=True, approvals=["rollback-plan"])
    rollout = first.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: "dashboards-reviewed" in rollout.gates)  # the gates are waiting for it
    signed = [(e.gate_id, e.actor, e.note, e.complete) for e in _of(rollout.events, GateSignedOff)]
    assert signed == [("rollback-plan", "tester", "approved on the command line", True)]
    gate = rollout.gates["rollback-plan"]
    assert (gate.status, gate.evidence) == (
        GateStatus.SIGNED,
        "signed by tester: approved on the command line",
    )
    # a pause and resume persist the progress with its sign-off; then the driver dies at the gates
    assert (await rollout.pause("alice", "coffee")).ok and (await rollout.resume("alice")).ok
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    resumed = await driver(tmp_path, plan, first.world)  # approves both gates
    # signing rollback-plan again would be refused ("already signed off") and block the resumed deploy
    assert await resumed.rollout.run() == Outcome.COMPLETED
    assert [e.gate_id for e in _of(since_resume(resumed), GateSignedOff)] == ["dashboards-reviewed"]
    assert [r.actor for r in resumed.rollout.ledger.records_for("rollback-plan", "sign")] == ["tester"]


async def test_interactive_pre_deploy_gates_wait_for_a_proceed(tmp_path: Path) -> None:
    session = await driver(tmp_path, demo_plan(), interactive=True)
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: rollout.allowed("proceed").ok)
    await session.clock.sleep(600)  # type: ignore[attr-defined]
    assert rollout.phase == Phase.PREFLIGHT  # satisfied gates alone do not start the deploy
    assert ("info", "all gates satisfied: press p to proceed") in log_lines(session)
    assert (await rollout.abort("alice", "test over")).ok
    assert await task == Outcome.ABORTED


# --- post-deploy verification ----------------------------------------------------------------------

ALERT_EVIDENCE = "1 new alert(s) since the deploy started: CheckoutSlowPayments (warning)"
ORDER = "sim://checkout/synthetic/order"


async def _verification_fails(tmp_path: Path, on_failure: str, **kwargs: Any) -> Session:
    """The demo (with a smoke command) where two checks fail in verification: an alert for the service
    that started during the canary (after the deploy began) and the place-order synthetic monitor."""
    plan = demo_plan()
    verification = plan.verification.model_copy(
        update={"on_failure": on_failure, "smoke_command": "make smoke"}
    )
    session = await driver(tmp_path, plan.model_copy(update={"verification": verification}), **kwargs)
    world: Any = session.world
    check = world.probe.check

    async def probe(url: str, **kw: Any) -> ProbeResult:
        if url == ORDER and session.rollout.phase == Phase.VERIFY:
            return ProbeResult(url=url, ok=False, status=500, detail="order API down")
        return await check(url, **kw)  # type: ignore[no-any-return]

    def on_event(event: Any) -> None:
        if isinstance(event, PhaseChanged) and event.phase == Phase.VERIFY and not world.alerts.alerts:
            started = session.clock.now() - timedelta(minutes=20)
            labels = {"severity": "warning", "service": "checkout"}
            world.alerts.alerts.append(Alert(name="CheckoutSlowPayments", labels=labels, starts_at=started))

    world.probe.check = probe
    session.rollout.subscribe(on_event)
    return session


def _summary(session: Session) -> str:
    gates = session.rollout.gates
    assert (gates["verify-no-new-alerts"].status, gates["verify-synthetics"].status) == (GateStatus.FAIL,) * 2
    assert gates["verify-no-new-alerts"].evidence == ALERT_EVIDENCE
    assert gates["verify-smoke"].status == GateStatus.PASS  # the smoke command ran, and passed
    assert "pre-deploy baseline 0.42 %" in gates["verify-error-rate"].evidence
    return f"verify-no-new-alerts: {ALERT_EVIDENCE}; verify-synthetics: {gates['verify-synthetics'].evidence}"


async def test_a_failed_verification_headless_takes_the_command_lines_rollback(tmp_path: Path) -> None:
    session = await _verification_fails(tmp_path, "ask")
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    summary = _summary(session)
    [asked] = _of(session.rollout.events, DecisionRequired)
    question = f"verification failed ({summary}). Roll back (recommended, POL-010) or fix forward?"
    assert (asked.question, asked.options, asked.recommended) == (
        question,
        ["rollback", "fix_forward"],
        "rollback",
    )
    assert ("info", "headless: decision taken from the command line: rollback") in log_lines(
        session, Phase.VERIFY
    )
    [trigger] = _of(session.rollout.events, RollbackTriggered)
    assert (trigger.actor, trigger.automatic, trigger.rule) == ("engine", True, "verification")
    assert trigger.reason == f"verification failed: {summary}"
    # the checks ran at the window's start as well as at its end, and the window is verification's
    windows = [
        (w.name, w.duration_s) for w in _of(session.rollout.events, WindowStarted) if w.phase == Phase.VERIFY
    ]
    assert windows == [("verification", 900.0)]
    checks = [
        g for g in _of(session.rollout.events, GateEvaluated) if g.gate.gate_id == "verify-no-new-alerts"
    ]
    assert [g.gate.status for g in checks] == [GateStatus.FAIL, GateStatus.FAIL]


async def test_a_failed_verification_fixed_forward_completes_with_the_failures_on_record(
    tmp_path: Path,
) -> None:
    session = await _verification_fails(tmp_path, "ask", decision_default="fix_forward")
    assert await session.rollout.run() == Outcome.COMPLETED
    summary = _summary(session)
    logs = log_lines(session, Phase.VERIFY)
    assert ("info", "headless: decision taken from the command line: fix_forward") in logs
    assert ("warning", f"fix-forward chosen; failing checks stay on record: {summary}") in logs
    assert _of(session.rollout.events, RollbackTriggered) == []
    assert left_in_cluster(session).results["verify"] == summary
    [message] = session.world.notifier.sent  # type: ignore[attr-defined]
    assert message.text.endswith(f". Fix-forward chosen with failing checks: {summary}")


@pytest.mark.parametrize("on_failure", ["rollback", "fix_forward"])
async def test_a_plan_that_decides_up_front_is_not_asked(tmp_path: Path, on_failure: str) -> None:
    # the command line's default (rollback) does not overrule the plan's fix_forward
    session = await _verification_fails(tmp_path, on_failure)
    outcome = await session.rollout.run()
    assert _of(session.rollout.events, DecisionRequired) == []
    assert not [m for _, m in log_lines(session) if m.startswith("headless: decision")]
    summary = _summary(session)
    if on_failure == "rollback":
        assert outcome == Outcome.ROLLED_BACK
        [trigger] = _of(session.rollout.events, RollbackTriggered)
        assert trigger.reason == f"verification failed: {summary}"
    else:
        assert outcome == Outcome.COMPLETED
        assert left_in_cluster(session).results["verify"] == summary


@pytest.mark.parametrize("choice", ["rollback", "fix_forward"])
async def test_an_interactive_verification_failure_pauses_until_a_person_decides(
    tmp_path: Path, choice: str
) -> None:
    session = await _verification_fails(tmp_path, "ask", interactive=True)
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: rollout.allowed("proceed").ok)
    assert (await rollout.proceed("alice")).ok
    await until(lambda: rollout._decision_pending is not None, turns=2_000_000)
    assert rollout.phase == Phase.PAUSED
    clock: Any = session.clock
    sleep, naps = clock.sleep, []

    async def sleeping(seconds: float) -> None:
        if rollout._decision_pending is not None:
            naps.append(seconds)
        await sleep(seconds)

    clock.sleep = sleeping
    [paused] = _of(rollout.events, Paused)
    assert (paused.actor, paused.reason) == ("engine", "verification failed: decide rollback or fix-forward")
    await sleep(3600)  # the test's own wait, not recorded
    assert not task.done() and rollout._decision_pending is not None  # waits for a person, however long
    # the wait looks for a decision (or a stop) once per analysis interval, not in a busy loop
    assert naps and set(naps) == {30.0}
    assert (await rollout.decide(choice, "alice")).ok
    outcome = await task
    assert rollout._decision_pending is None
    assert outcome == (Outcome.ROLLED_BACK if choice == "rollback" else Outcome.COMPLETED)
    assert not [m for _, m in log_lines(session) if m.startswith("headless: decision")]


# --- completion -----------------------------------------------------------------------------------


def _completion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Plan, list[Any], list[Any]]:
    """The demo with a tickets webhook and a feature flag; the ticket system and the flag endpoint
    are recorded fakes (the flag endpoint accepts every percentage)."""
    from core import completion
    from core.completion import TicketResult
    from core.plan import CompletionSpec, FeatureFlagSpec

    tickets: list[Any] = []
    flags: list[Any] = []

    async def close_tickets(plan: Plan, *, deploy_id: str = "", summary: str = "", **_: Any) -> list[Any]:
        tickets.append((plan.change.id, deploy_id, summary))
        return [
            TicketResult(ticket="SHOP-311", closed=True, via="webhook", detail="HTTP 200"),
            TicketResult(ticket="SHOP-312", closed=False, via="github"),
        ]

    async def set_flag(client: Any, flag: Any, percent: int, timeout_s: float) -> str:
        flags.append((flag.name, percent))
        return "flags.example answered HTTP 503" if flag.url.endswith("/refuses") else ""

    monkeypatch.setattr(completion, "close_tickets", close_tickets)
    monkeypatch.setattr(completion, "_set_flag", set_flag)
    flag = FeatureFlagSpec(name="new-checkout", url="https://flags.example/set", steps=[10, 100], observe=60)
    spec = CompletionSpec(tickets_webhook="https://tickets.example/hook", feature_flags=[flag])
    return demo_plan().model_copy(update={"completion": spec}), tickets, flags


def _said_by(session: Session, source: str) -> list[tuple[str, str]]:
    return [(e.level, e.message) for e in _of(session.rollout.events, LogLine) if e.source == source]


async def test_completion_closes_the_tickets_and_rolls_the_flags_out_while_watching_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, tickets, flags = _completion(tmp_path, monkeypatch)
    session = await driver(tmp_path, plan)
    assert await session.rollout.run() == Outcome.COMPLETED
    rollout = session.rollout
    [phase] = [p for p in _of(rollout.events, PhaseChanged) if p.phase == Phase.COMPLETE]
    assert phase.reason == "deploy complete"
    [(change, deploy_id, summary)] = tickets
    assert change == "CHG-2041"
    assert deploy_id == rollout.deploy_id
    assert summary.startswith("checkout 1.4.2 → 1.5.0 complete in 1h")
    assert summary.endswith(
        "canary 5 % → 25 % → 50 % → 100 % → 0 %; change CHG-2041; signed off by "
        "tester (dashboards-reviewed), tester (rollback-plan)"
    )
    assert _said_by(session, "completion") == [
        ("info", "ticket SHOP-311: closed via webhook HTTP 200"),
        ("warning", "ticket SHOP-312: NOT closed via github"),
    ]
    assert flags == [("new-checkout", 10), ("new-checkout", 100)]
    assert _said_by(session, "feature flags") == [
        ("info", "flag new-checkout at 10 %: ok observed 1m"),
        ("info", "flag new-checkout at 100 %: ok observed 1m"),
    ]
    # each flag step was watched on production against the baseline measured before the deploy
    watched = [s for s in _of(rollout.events, AnalysisSample) if s.phase == Phase.COMPLETE]
    assert [(s.weight, s.elapsed_s, s.window_s, s.verdict) for s in watched] == [(100, 0, 0, "healthy")] * 2
    assert rollout._baseline_ref is not None and rollout._baseline_ref.error_rate is not None
    assert watched[0].baseline_error_rate == pytest.approx(rollout._baseline_ref.error_rate * 100)


@pytest.mark.parametrize("problem", ["no_data", "fired", "refused"])
async def test_a_flag_step_that_hurts_production_is_set_back_to_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    plan, _, flags = _completion(tmp_path, monkeypatch)
    if problem == "refused":  # the flag endpoint refuses the first step: nothing to set back
        [flag] = plan.completion.feature_flags
        refusing = flag.model_copy(update={"url": "https://flags.example/refuses"})
        plan = plan.model_copy(
            update={"completion": plan.completion.model_copy(update={"feature_flags": [refusing]})}
        )
    session = await driver(tmp_path, plan)
    real = session.world.metrics
    # both the error rate and p99 of the new version are far over their limits
    hurt = WorkloadSample(requests=30_000, error_rate=0.08, p99=2.0)

    class Hurt:
        async def canary_metrics(self, window_s: float) -> CanaryMetrics:
            if problem == "no_data":
                raise PortError("prometheus: connection refused")
            read = await real.canary_metrics(window_s)  # type: ignore[union-attr]
            return read.model_copy(update={"canary": hurt})

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    def on_event(event: Any) -> None:
        if isinstance(event, PhaseChanged) and event.phase == Phase.COMPLETE:
            session.world.metrics = Hurt()  # type: ignore[assignment]

    session.rollout.subscribe(on_event)
    assert await session.rollout.run() == Outcome.COMPLETED
    [(level, message)] = _said_by(session, "feature flags")
    assert level == "warning"
    if problem == "refused":
        assert flags == [("new-checkout", 10)]
        assert message == "flag new-checkout at 10 %: failed flags.example answered HTTP 503"
        return
    assert flags == [("new-checkout", 10), ("new-checkout", 0)]  # stopped at 10 %, set back to 0 %
    head = "flag new-checkout at 10 %: failed, set back to 0 % observation failed: "
    if problem == "no_data":
        assert message == head + "no data: prometheus: connection refused; flag set back to 0 %"
    else:
        error = "canary 8.00 % vs baseline 0.42 %: +7.58 pp > 0.50 pp"
        assert message.startswith(f"{head}{error}; canary p99 ")  # every rule that fired, in turn
        assert message.endswith("; flag set back to 0 %")


@pytest.mark.parametrize("kill_at", ["journal notification_sent", "journal finished"])
async def test_a_completion_resumed_after_a_kill_notifies_and_closes_tickets_only_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_at: str
) -> None:
    plan, tickets, flags = _completion(tmp_path, monkeypatch)
    session = await driver(tmp_path, plan)
    world: Any = session.world
    outcome, _ = await run_killed_at(session, match=kill_at)
    assert outcome is None
    resumed = await driver(tmp_path, plan, world)
    assert await resumed.rollout.run() == Outcome.COMPLETED
    assert len(world.notifier.sent) == 1
    assert len(tickets) == 1 and flags == [("new-checkout", 10), ("new-checkout", 100)]


async def test_an_approval_short_of_its_signers_is_journaled_incomplete_and_blocks(tmp_path: Path) -> None:
    plan = demo_plan()
    manual = [
        m.model_copy(update={"signers": 2}) if m.id == "rollback-plan" else m for m in plan.gates.manual
    ]
    plan = plan.model_copy(update={"gates": plan.gates.model_copy(update={"manual": manual})})
    session = await driver(tmp_path, plan)
    assert await session.rollout.run() == Outcome.BLOCKED
    signed = [(e.gate_id, e.complete) for e in _of(session.rollout.events, GateSignedOff)]
    assert signed == [("rollback-plan", False), ("dashboards-reviewed", True)]  # a second person must sign
    assert finished_reason(session).startswith("blocked at pre-deploy gates: rollback-plan")
