"""The rollback procedure as the cluster, the journal and the team see it (issue 16, core.rollout).

Written against the survivors of `make mutate MUTATE_MODULES=core.rollout` in steps/rollback.py (split
from test_mutants_rollout.py, whose helpers it uses): each trigger's rule and step, the procedure's
steps and their order, its retries and alarm, verification that fails or is blind, a failing channel
or incident record, refused bookkeeping, and a rollback resumed after a kill at each of its points.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from core.domain import CanaryMetrics, Outcome, Phase, RollbackReport
from core.events import (
    Event,
    HealthChecked,
    LogLine,
    NotificationSent,
    PhaseChanged,
    RollbackStep,
    RollbackTriggered,
    TrafficChanged,
)
from core.ports import PortError
from tests.engine_helpers import sim_session
from tests.resume_helpers import open_driver, run_killed_at
from tests.test_mutants_rollout import (
    BEFORE_CANARY,
    CANARY_START,
    OLD_IMAGE,
    _journal,
    _of,
    _traffic,
)


async def test_an_automatic_rollback_names_its_rule_and_step_and_runs_every_step_of_the_procedure(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    journal = _journal(session)
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    assert journal == [
        *BEFORE_CANARY,
        *CANARY_START,
        "pending=rollback",  # persisted before acting: a resume finishes the rollback
        "rollback",
        "pending=None",
        f"done=rollback.applied (stable runs {OLD_IMAGE})",
    ]
    events = session.rollout.events
    trigger = _of(events, RollbackTriggered)[0]
    assert (trigger.rule, trigger.step, trigger.weight_at_trigger, trigger.phase) == (
        "error_rate",
        1,
        25,
        "canary",
    )
    assert (trigger.actor, trigger.automatic) == ("engine", True)
    assert (
        trigger.reason.startswith("error rate above baseline: canary ") and "pp > 0.50 pp" in trigger.reason
    )
    assert [r.rule for r in trigger.readings if r.fired] == ["error_rate"]
    assert 1 <= len(trigger.samples) <= 5 and all(s.weight == 25 for s in trigger.samples[-1:])
    assert _traffic(events)[-1] == (0, 0, True, "rollback", "engine")
    steps = [(s.action, s.ok, s.detail) for s in _of(events, RollbackStep)]
    assert steps[:4] == [
        ("weight_reset", True, "canary weight 0"),
        ("undo_stable", True, f"stable runs {OLD_IMAGE}"),
        ("verify", True, steps[2][2]),
        ("communicate", True, "team channel notified"),
    ]
    assert steps[2][2].startswith("health green; error rate ") and "(baseline " in steps[2][2]
    assert steps[4][:2] == ("document", True) and steps[4][2].startswith("incident record ")
    assert len(steps) == 5
    # the outcome is journaled before the team hears of it
    kinds = [type(e).__name__ for e in events if isinstance(e, PhaseChanged | NotificationSent)]
    assert kinds[-2:] == ["PhaseChanged", "NotificationSent"]
    assert _of(events, PhaseChanged)[-1].phase == Phase.ROLLED_BACK
    sent = session.rollout.world.notifier.sent  # type: ignore[attr-defined]
    assert len(sent) == 1 and "NOT RESTORED" not in sent[0].text
    assert session.rollout.weight == 0


async def test_a_refusing_rollback_api_is_retried_with_doubling_delays_and_an_alarm_beside(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    session.rollout.world.production.inner.fail_rollbacks = 7  # type: ignore[attr-defined]
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    failed = [s for s in _of(events, RollbackStep) if s.action == "attempt_failed"]
    error = "PATCH deployments/checkout: 503 Service Unavailable (simulated)"
    assert [(s.ok, s.detail) for s in failed] == [(False, f"attempt {n}: {error}") for n in range(1, 8)]
    applied = next(e for e in events if isinstance(e, TrafficChanged) and e.detail == "rollback")
    times = [s.ts for s in failed] + [applied.ts]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [
        1,
        2,
        4,
        8,
        16,
        30,
        30,
    ]
    alarm = [e for e in _of(events, LogLine) if e.level == "error"]
    assert [e.message for e in alarm] == [
        f"ROLLBACK NOT APPLIED after 5 attempts ({error}); still retrying every 30s — act on the cluster "
        "by hand if you can"
    ]
    assert alarm[0].ts == failed[4].ts
    sent = session.rollout.world.notifier.sent  # type: ignore[attr-defined]
    assert len(sent) == 2 and sent[0].level == "critical"
    assert sent[0].text.endswith(f"\nNOT RESTORED: rollback not applied after 5 attempts: {error}")
    assert "NOT RESTORED" not in sent[1].text
    # the alarm went out beside the retries: attempt 6 came 16 s after the 5th, not after the channel
    assert _of(events, NotificationSent)[0].ts == failed[4].ts


async def test_a_manual_rollback_mid_canary_is_the_persons_with_their_reason(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout

    def on_event(event: Event) -> None:
        if isinstance(event, TrafficChanged) and event.applied and event.effective == 25:
            asyncio.get_running_loop().create_task(rollout.rollback("carol", "dashboards look wrong"))

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.ROLLED_BACK
    trigger = _of(rollout.events, RollbackTriggered)[0]
    assert (trigger.actor, trigger.automatic, trigger.weight_at_trigger) == ("carol", False, 25)
    assert _traffic(rollout.events)[-1] == (0, 0, True, "rollback", "carol")
    phases = _of(rollout.events, PhaseChanged)
    assert [(p.phase, p.reason) for p in phases[-2:]] == [
        (Phase.ROLLING_BACK, trigger.reason),
        (Phase.ROLLED_BACK, trigger.reason),
    ]
    assert "dashboards look wrong" in trigger.reason


@pytest.mark.parametrize(
    ("scenario", "rule", "step", "weight", "phase", "title"),
    [
        ("bad-canary", "error_rate", 1, 25, "canary", "error rate above baseline: canary "),
        ("slow-canary", "p99_latency", 2, 50, "canary", "p99 latency above baseline: canary p99 "),
        ("flaky-health", "health", 2, 50, "canary", "consecutive failed health checks: health: 2 "),
        ("late-regression", "error_rate", None, 100, "verify", "error rate above baseline: canary "),
    ],
)
async def test_each_trigger_rolls_back_under_its_own_rule_at_its_own_step(
    tmp_path: Path, scenario: str, rule: str, step: int | None, weight: int, phase: str, title: str
) -> None:
    session = await sim_session(tmp_path, scenario)
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    [trigger] = _of(events, RollbackTriggered)
    assert (trigger.rule, trigger.step, trigger.weight_at_trigger, trigger.phase) == (
        rule,
        step,
        weight,
        phase,
    )
    assert trigger.reason.startswith(title)
    fired = [r for r in trigger.readings if r.fired]
    assert [r.rule for r in fired] == [rule]
    assert trigger.reason == f"{title.split(':')[0]}: {fired[0].text}"
    assert [s.action for s in _of(events, RollbackStep)] == [
        "weight_reset",
        "undo_stable",
        "verify",
        "communicate",
        "document",
    ]


async def test_a_stable_service_still_failing_after_the_rollback_is_reported_not_restored(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    world: Any = session.rollout.world
    ready = session.plan.targets.production.health.ready  # type: ignore[union-attr]
    check = world.probe.check

    async def failing_after_rollback(url: str, **kwargs: Any) -> Any:
        if url == ready and "rollback" in world.production.calls:
            assert kwargs.get("timeout_s") == session.plan.targets.production.health.timeout  # type: ignore[union-attr]
            raise PortError("connection refused (test)")
        return await check(url, **kwargs)

    world.probe.check = failing_after_rollback
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    steps = {s.action: s for s in _of(events, RollbackStep)}
    verify = steps["verify"]
    assert not verify.ok and verify.detail.startswith("not restored after 5m: health failing; error rate ")
    applied = next(e for e in events if isinstance(e, TrafficChanged) and e.detail == "rollback")
    assert (verify.ts - applied.ts).total_seconds() == session.plan.verification.restore_timeout
    checks = [e for e in _of(events, HealthChecked) if e.ts >= applied.ts]
    assert len(checks) == 11  # every interval of the 5 minutes, both ends included
    assert {(e.url, e.ok, e.detail) for e in checks} == {(ready, False, "connection refused (test)")}
    errors = [e.message for e in _of(events, LogLine) if e.level == "error"]
    assert errors == [f"SERVICE NOT RESTORED: {verify.detail}; keep watching"]
    [sent] = world.notifier.sent
    assert sent.level == "critical" and sent.text.endswith(f"\nNOT RESTORED: {verify.detail}")
    assert steps["communicate"].ok


async def test_a_rollback_blind_to_metrics_says_what_is_known(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "metrics-outage")
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    verify = next(s for s in _of(events, RollbackStep) if s.action == "verify")
    assert not verify.ok
    assert verify.detail == (
        "traffic restored (canary 0 %), health green, metrics unknown (error rate no data after 5m: "
        "prometheus unreachable: connection refused (simulated outage))"
    )
    warnings = [
        e.message for e in _of(events, LogLine) if e.level == "warning" and "rolled back" in e.message
    ]
    assert warnings == [f"rolled back: {verify.detail}; keep watching"]
    assert not [e for e in _of(events, LogLine) if e.level == "error"]


async def test_a_failing_channel_and_an_unwritable_record_never_stop_the_rollback(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    world: Any = session.rollout.world

    async def broken(message: object) -> list[object]:
        raise RuntimeError("channel down")

    world.notifier.notify = broken
    (tmp_path / "not-a-dir").write_text("")
    session.rollout.incident_dir = tmp_path / "not-a-dir" / "incidents"
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    sent = _of(events, NotificationSent)
    assert [(n.channel, n.delivered, n.detail) for n in sent] == [("team channel", False, "RuntimeError")]
    steps = {s.action: (s.ok, s.detail) for s in _of(events, RollbackStep)}
    assert steps["communicate"] == (False, "not delivered: team channel: RuntimeError")
    ok, detail = steps["document"]
    assert not ok and detail.startswith("incident record not written: ")
    assert steps["verify"][0] and world.production.weight == 0


@pytest.mark.parametrize("nth", [1, 2, 3])
async def test_a_rollback_applied_before_a_kill_is_recorded_once_by_the_next_driver(
    tmp_path: Path, nth: int
) -> None:
    # killed before the procedure's 1st, 2nd or 3rd step line: each step is journaled exactly once
    first = await open_driver(None, tmp_path, scenario="bad-canary")
    world = first.world
    outcome, _ = await run_killed_at(first, match="journal rollback_step", nth=nth)
    assert outcome is None
    inner: Any = world.production.inner  # type: ignore[attr-defined]
    before = len(inner.calls)
    second = await open_driver(world, tmp_path, scenario="bad-canary")
    assert await second.rollout.run() == Outcome.ROLLED_BACK
    assert inner.calls[before:] == []  # not rolled back twice
    steps = [(s.action, s.ok) for s in _of(second.rollout.events, RollbackStep)]
    assert [a for a, _ in steps] == ["weight_reset", "undo_stable", "verify", "communicate", "document"]
    assert all(ok for _, ok in steps)
    undo = next(s for s in _of(second.rollout.events, RollbackStep) if s.action == "undo_stable")
    assert undo.detail == ("applied before a restart" if nth <= 2 else f"stable runs {OLD_IMAGE}")
    rollbacks = [t for t in _traffic(second.rollout.events) if t[3] == "rollback"]
    assert rollbacks == [(0, 0, True, "rollback", "engine")]
    assert second.rollout.weight == 0


async def test_a_cluster_refusing_the_rollbacks_bookkeeping_does_not_hold_the_rollback_up(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    inner: Any = session.rollout.world.production.inner  # type: ignore[attr-defined]
    write = inner.write_state

    async def refusing(state: dict[str, Any]) -> None:
        if state.get("pending") == "rollback" or "rollback.applied" in state.get("completed", []):
            raise PortError("PUT state: 409 conflict (test)")
        await write(state)

    inner.write_state = refusing
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    assert inner.calls[-2:] == ["weight:25", "rollback"] and inner.weight == 0


async def test_the_alarm_sent_beside_the_retries_is_awaited_before_the_final_message(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    world: Any = session.rollout.world
    world.production.inner.fail_rollbacks = 7
    notify = world.notifier.notify

    async def slow_alarm(message: Any) -> Any:
        if "NOT RESTORED" in message.text:
            await world.clock.sleep(600)  # a channel answering slowly: longer than the retries take
        return await notify(message)

    world.notifier.notify = slow_alarm
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    texts = [m.text for m in world.notifier.sent]
    assert len(texts) == 2 and "NOT RESTORED" in texts[0] and "NOT RESTORED" not in texts[1]
    sent = _of(events, NotificationSent)
    assert len(sent) == 2 and sent[0].ts <= sent[1].ts  # the final message waited for the alarm
    # the retries did not wait for the alarm: the rollback was applied while it was still going out
    applied = next(e for e in events if isinstance(e, TrafficChanged) and e.detail == "rollback")
    assert applied.ts < sent[0].ts


@pytest.mark.parametrize(
    ("restored", "says"), [(True, "stable restored to the previous revision"), (False, "stable untouched")]
)
async def test_a_rollback_report_without_detail_says_what_became_of_stable(
    tmp_path: Path, restored: bool, says: str
) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    inner: Any = session.rollout.world.production.inner  # type: ignore[attr-defined]
    rollback = inner.rollback

    async def terse() -> RollbackReport:
        await rollback()
        return RollbackReport(weight_reset=True, stable_restored=restored)

    inner.rollback = terse
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    steps = {s.action: (s.ok, s.detail) for s in _of(session.rollout.events, RollbackStep)}
    assert steps["undo_stable"] == (True, says)
    assert steps["weight_reset"] == (True, "canary weight 0")


async def test_a_rollback_decided_but_not_yet_journaled_is_carried_out_by_the_next_driver(
    tmp_path: Path,
) -> None:
    first = await open_driver(None, tmp_path, scenario="bad-canary")
    world = first.world
    outcome, _ = await run_killed_at(first, match="journal rollback_triggered")
    assert outcome is None  # the decision was persisted in the cluster; nothing of it journaled or done
    inner: Any = world.production.inner  # type: ignore[attr-defined]
    assert inner.calls[-1] == "weight:25"
    second = await open_driver(world, tmp_path, scenario="bad-canary")
    assert await second.rollout.run() == Outcome.ROLLED_BACK
    assert inner.calls[-1] == "rollback" and inner.calls.count("rollback") == 1
    [trigger] = _of(second.rollout.events, RollbackTriggered)
    assert (trigger.rule, trigger.actor) == ("error_rate", "engine")
    phases = [(p.phase, p.reason) for p in _of(second.rollout.events, PhaseChanged)]
    assert phases[-2:] == [(Phase.ROLLING_BACK, trigger.reason), (Phase.ROLLED_BACK, trigger.reason)]


@pytest.mark.parametrize(
    ("after", "ok", "detail"),
    [
        # exactly 0.50 % + the 0.50 pp limit: restored (≤), with its numbers
        (0.01, True, "health green; error rate 1.00 % (baseline 0.50 %)"),
        (0.02, False, "not restored after 5m: health ok; error rate 2.00 %"),
        (
            None,
            False,
            "traffic restored (canary 0 %), health green, metrics unknown (error rate no data after 5m: "
            "no metrics)",
        ),
    ],
)
async def test_restored_means_the_error_rate_back_within_the_limit_of_the_baseline_before(
    tmp_path: Path, after: float | None, ok: bool, detail: str
) -> None:
    # the baseline read 0.50 % while the canary ran; after the rollback the service reads `after`
    session = await sim_session(tmp_path, "bad-canary")
    world: Any = session.rollout.world
    read = world.metrics.canary_metrics

    async def fixed_baseline(window_s: float) -> CanaryMetrics:
        metrics = await read(window_s)
        rate = after if "rollback" in world.production.calls else 0.005
        baseline = metrics.baseline.model_copy(update={"error_rate": rate})
        return metrics.model_copy(update={"baseline": baseline})

    world.metrics.canary_metrics = fixed_baseline
    assert 0.01 * 100 == 0.005 * 100 + 0.5
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    verify = next(s for s in _of(session.rollout.events, RollbackStep) if s.action == "verify")
    assert (verify.ok, verify.detail) == (ok, detail)


async def test_the_cluster_hears_the_rollback_is_over_before_the_lease_is_handed_back(tmp_path: Path) -> None:
    # in memory, with a hand-back of our own: what the cluster says the moment the lease goes
    session = await sim_session(tmp_path, "bad-canary")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    at_hand_back: list[tuple[dict[str, Any], int]] = []
    write, writes = inner.write_state, []

    async def counting(state: dict[str, Any]) -> None:
        writes.append(state)
        await write(state)

    inner.write_state = counting

    async def hand_back() -> None:
        at_hand_back.append((dict(inner.state), len(rollout.world.notifier.sent)))  # type: ignore[attr-defined]
        writes.clear()

    rollout.hand_back_lease = hand_back
    assert await rollout.run() == Outcome.ROLLED_BACK
    [(state, sent)] = at_hand_back
    assert (state["outcome"], state["pending"], state["weight"]) == ("rolled_back", None, 0)
    assert sent == 0  # the team channel hears of it only after the lease is back
    # and once the lease is back the driver writes nothing more: the outcome is already there
    assert writes == [] and inner.state["outcome"] == "rolled_back"


async def test_a_refused_outcome_write_keeps_the_lease_until_the_outcome_is_written(tmp_path: Path) -> None:
    """Handed back with the cluster still saying "unfinished", the next driver would resume a finished
    rollback as its own: the lease stays until `_finish` has written the outcome; the message still goes."""
    session = await sim_session(tmp_path, "bad-canary")
    rollout = session.rollout
    inner: Any = rollout.world.production.inner  # type: ignore[attr-defined]
    write = inner.write_state
    refused: list[dict[str, Any]] = []

    async def refusing_the_outcome(state: dict[str, Any]) -> None:
        if state.get("outcome") and not refused:
            refused.append(state)
            raise PortError("PUT state: 409 conflict (test)")
        await write(state)

    inner.write_state = refusing_the_outcome
    handed: list[bool] = []

    async def hand_back() -> None:
        handed.append(True)

    rollout.hand_back_lease = hand_back
    assert await rollout.run() == Outcome.ROLLED_BACK
    assert handed == [] and len(refused) == 1  # kept: released when the session closes
    assert inner.state["outcome"] == "rolled_back"  # written by the finish, holding the lease
    assert len(rollout.world.notifier.sent) == 1  # type: ignore[attr-defined]
    assert [s.action for s in _of(rollout.events, RollbackStep)][-2:] == ["communicate", "document"]


@pytest.mark.parametrize(
    ("health_fails", "detail"),
    [
        (True, "not restored after 5m: health failing; error rate no data"),
        (
            False,
            "traffic restored (canary 0 %), health green, metrics unknown (error rate no data after 5m: "
            "no metrics)",
        ),
    ],
)
async def test_a_rollback_in_a_world_without_metrics_verifies_health_only(
    tmp_path: Path, health_fails: bool, detail: str
) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    world: Any = session.rollout.world
    ready = session.plan.targets.production.health.ready  # type: ignore[union-attr]
    check = world.probe.check

    async def after_rollback(url: str, **kwargs: Any) -> Any:
        if url == ready and health_fails and "rollback" in world.production.calls:
            raise PortError("connection refused (test)")
        return await check(url, **kwargs)

    world.probe.check = after_rollback
    # the metrics go as the rollback is decided (a world that has none from then on)
    session.rollout.subscribe(
        lambda e: setattr(world, "metrics", None) if isinstance(e, RollbackTriggered) else None
    )
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    verify = next(s for s in _of(session.rollout.events, RollbackStep) if s.action == "verify")
    assert (verify.ok, verify.detail) == (False, detail)


async def test_a_restore_verified_without_a_baseline_names_no_baseline(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    rollout = session.rollout
    # no baseline was read before the rollback (e.g. rolled back before the first sample)
    rollout.subscribe(
        lambda e: setattr(rollout, "_baseline_ref", None) if isinstance(e, RollbackTriggered) else None
    )
    assert await rollout.run() == Outcome.ROLLED_BACK
    verify = next(s for s in _of(rollout.events, RollbackStep) if s.action == "verify")
    assert verify.ok
    assert verify.detail.startswith("health green; error rate ") and verify.detail.endswith(" %")


async def test_each_channels_delivery_is_journaled_with_its_attempts_and_every_failure_named(
    tmp_path: Path,
) -> None:
    from core.domain import NotifyResult

    session = await sim_session(tmp_path, "bad-canary")
    world: Any = session.rollout.world

    async def three_channels(message: Any) -> list[NotifyResult]:
        return [
            NotifyResult(channel="#deploys", delivered=True, attempts=2),
            NotifyResult(channel="#oncall", delivered=False, attempts=3, detail="HTTP 500"),
            NotifyResult(channel="email", delivered=False, attempts=1, detail="timed out"),
        ]

    world.notifier.notify = three_channels
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    sent = _of(session.rollout.events, NotificationSent)
    assert [(n.channel, n.delivered, n.attempts, n.detail) for n in sent] == [
        ("#deploys", True, 2, ""),
        ("#oncall", False, 3, "HTTP 500"),
        ("email", False, 1, "timed out"),
    ]
    communicate = next(s for s in _of(session.rollout.events, RollbackStep) if s.action == "communicate")
    assert (communicate.ok, communicate.detail) == (
        False,
        "not delivered: #oncall: HTTP 500; email: timed out",
    )


async def test_an_alarm_that_breaks_beside_the_retries_does_not_break_the_rollback(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    world: Any = session.rollout.world
    world.production.inner.fail_rollbacks = 6
    notify = world.notifier.notify

    def broken_results() -> Any:
        raise RuntimeError("the channel's answer cannot be read (test)")
        yield  # a generator: it breaks only as the procedure reads it, past the notifier's guard

    async def alarm_breaks(message: Any) -> Any:
        if "NOT RESTORED" in message.text:
            await world.clock.sleep(600)  # still going out when the procedure waits for it
            return broken_results()
        return await notify(message)

    world.notifier.notify = alarm_breaks
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    steps = [
        (s.action, s.ok) for s in _of(session.rollout.events, RollbackStep) if s.action != "attempt_failed"
    ]
    assert steps == [
        ("weight_reset", True),
        ("undo_stable", True),
        ("verify", True),
        ("communicate", True),
        ("document", True),
    ]
    assert len(world.notifier.sent) == 1  # the final message went out, after the broken alarm
