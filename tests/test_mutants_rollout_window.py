"""Observation windows as a release manager sees them: the judge, a person ending a window (issue 16).

Written against the survivors of `make mutate MUTATE_MODULES=core.rollout` in rollout/window.py: the
statistical judge's verdicts (what is logged at which level, what rolls back with which reading and
samples, what a person is asked), a proceed or a promote-early ending a window (what the journal says
was skipped, and that the request is spent on that window only). Blind and thin intervals, the
samples' fields and the health checks are in test_mutants_rollout_window_blind.py. All in memory, in
virtual time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.domain import Outcome, Phase
from core.events import (
    AnalysisSample,
    Event,
    LogLine,
    Paused,
    PhaseChanged,
    Resumed,
    RollbackTriggered,
    RuleReading,
    TrafficChanged,
    WindowStarted,
)
from core.plan import CanarySpec, CanaryStep, ManualGateSpec
from core.session import Session, demo_plan
from tests.engine_helpers import sim_session, until
from tests.test_mutants_rollout import _of

_NO_DATA_2 = (
    "error_rate: no data (2 canary, 2 baseline samples; need 3); "
    "p99: no data (2 canary, 2 baseline samples; need 3)"
)


def _with_judge(session: Session, **changes: Any) -> None:
    """Turn the statistical judge on (off in the demo plan), with ``changes`` to its spec."""
    rollout = session.rollout
    judge = rollout.plan.analysis.judge.model_copy(update={"enabled": True, **changes})
    analysis = rollout.plan.analysis.model_copy(update={"judge": judge})
    rollout.plan = rollout.plan.model_copy(update={"analysis": analysis})


def _short_steps(session: Session) -> None:
    """5 % for one minute (two samples, fewer than the judge's three), then 100 %."""
    canary = CanarySpec(steps=[CanaryStep(weight=5, observe=60), CanaryStep(weight=100, observe=60)])
    session.rollout.plan = session.rollout.plan.model_copy(update={"canary": canary})


def _engine_says(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.level, e.message) for e in _of(events, LogLine) if e.source == "engine"]


def _judged(events: list[Event]) -> list[tuple[str, str]]:
    return [(level, m) for level, m in _engine_says(events) if m.startswith("statistical judge")]


def _on_sample(session: Session, when: Callable[[AnalysisSample], bool], act: Callable[[], Any]) -> None:
    """Run the coroutine ``act()`` as a task at the first sample ``when`` accepts."""
    done: list[asyncio.Task[Any]] = []

    def on_event(event: Event) -> None:
        if isinstance(event, AnalysisSample) and not done and when(event):
            done.append(asyncio.get_running_loop().create_task(act()))

    session.rollout.subscribe(on_event)


async def _signed_off(session: Session) -> asyncio.Task[Outcome]:
    """An interactive run past its manual gates and the preflight proceed (a person watching)."""
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: "rollback-plan" in rollout.gates)
    assert (await rollout.sign_off("rollback-plan", "alice", "runbook RB-12")).ok
    assert (await rollout.sign_off("dashboards-reviewed", "bob", "")).ok
    await until(lambda: rollout.allowed("proceed").ok)
    assert (await rollout.proceed("alice")).ok
    return task


# --- the statistical judge ---------------------------------------------------------------------


async def test_a_passing_judge_is_logged_as_information_with_each_metrics_finding(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _with_judge(session)
    assert await session.rollout.run() == Outcome.COMPLETED
    judged = _judged(session.rollout.events)
    assert [level for level, _ in judged] == ["info"] * 3  # 5, 25 and 50 %; 100 % has no baseline
    for (_, message), weight in zip(judged, (5, 25, 50), strict=True):
        head, findings = message.split(" — ")
        assert head == f"statistical judge at {weight} %: score 100/100: pass"
        error_rate, p99 = findings.split("; ")
        assert error_rate.startswith("error_rate: pass (p=") and error_rate.endswith("allowed ×1.25)")
        assert p99.startswith("p99: pass (p=") and p99.endswith("allowed ×1.1)")


async def test_a_failing_judge_rolls_back_with_its_score_and_the_last_five_samples(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "subtle-latency")
    _with_judge(session)
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    events = session.rollout.events
    [trigger] = _of(events, RollbackTriggered)
    assert (trigger.rule, trigger.actor, trigger.automatic, trigger.weight_at_trigger) == (
        "judge",
        "engine",
        True,
        5,
    )
    # the verdict itself, not "nobody to decide": a fail is not a question for a person
    assert trigger.reason.startswith("statistical judge at 5 %: score 50/100: fail — error_rate: pass (")
    assert "; p99: fail (" in trigger.reason and "nobody to decide" not in trigger.reason
    assert trigger.readings == [
        RuleReading(rule="judge", value=50.0, limit=75.0, unit="score", fired=True, text=trigger.reason)
    ]
    at_5 = [s for s in _of(events, AnalysisSample) if s.step == 0]
    assert len(at_5) == 10 and trigger.samples == at_5[-5:]
    assert not _judged(events)  # a fail is the rollback's reason, not a log line


async def test_a_failing_judge_rolls_back_even_when_a_person_ended_the_window(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "subtle-latency")
    _with_judge(session)
    rollout = session.rollout
    _on_sample(session, lambda s: s.step == 0 and s.elapsed_s == 240, lambda: rollout.proceed("alice"))
    assert await rollout.run() == Outcome.ROLLED_BACK
    [trigger] = _of(rollout.events, RollbackTriggered)
    assert trigger.rule == "judge" and trigger.weight_at_trigger == 5
    assert trigger.reason.startswith("statistical judge at 5 %: score 50/100: fail")
    at_5 = [s for s in _of(rollout.events, AnalysisSample) if s.step == 0]
    assert len(at_5) == 8 and trigger.samples == at_5[-5:]
    assert _engine_says(rollout.events)[-1] == (
        "warning",
        "alice proceeds from 5 % to 25 % after 4m of 5m: skipped the remaining 1m of canary 5 %; "
        "25 % gets its full window",
    )


async def test_a_proceed_before_the_judge_has_data_warns_and_moves_exactly_one_step(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _with_judge(session)
    rollout = session.rollout
    _on_sample(session, lambda s: s.step == 0, lambda: rollout.proceed("alice"))
    assert await rollout.run() == Outcome.COMPLETED
    events = rollout.events
    one = "(1 canary, 1 baseline samples; need 3)"
    assert [said for said in _engine_says(events) if said[0] == "warning"] == [
        (
            "warning",
            "alice proceeds from 5 % to 25 % after 30s of 5m: skipped the remaining 4m30s of canary 5 %; "
            "25 % gets its full window",
        ),
        # one sample is no evidence either way: said, not held against the step a person moved on
        (
            "warning",
            f"statistical judge at 5 %: no data for any metric — error_rate: no data {one}; p99: no data {one}",
        ),
    ]
    # the proceed is spent on 5 %: 25 % runs its whole window and nobody's proceed is left over
    counted = [s.elapsed_s for s in _of(events, AnalysisSample) if s.step == 1]
    assert counted == [30.0 * n for n in range(1, 11)]
    assert not [m for _, m in _engine_says(events) if "came as its window ended" in m]
    assert [level for level, _ in _judged(events)] == ["warning", "info", "info"]


async def test_a_judge_without_data_rolls_back_headless_nobody_to_decide(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _with_judge(session)
    _short_steps(session)
    rollout = session.rollout
    assert await rollout.run() == Outcome.ROLLED_BACK
    [trigger] = _of(rollout.events, RollbackTriggered)
    verdict = f"statistical judge at 5 %: no data for any metric — {_NO_DATA_2}"
    assert trigger.rule == "judge" and trigger.automatic and trigger.weight_at_trigger == 5
    assert trigger.reason == f"{verdict}; nobody to decide: rollback if unsure (POL-010)"
    # the reading is the verdict, which did not fire: no score, the limit it would be held to
    assert trigger.readings == [
        RuleReading(rule="judge", value=None, limit=75.0, unit="score", fired=False, text=verdict)
    ]
    samples = [s for s in _of(rollout.events, AnalysisSample) if s.step == 0]
    assert len(samples) == 2 and trigger.samples == samples


async def test_a_judge_with_no_metrics_says_so_without_a_dangling_dash(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _with_judge(session, metrics=[])
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    [trigger] = _of(session.rollout.events, RollbackTriggered)
    assert trigger.reason == (
        "statistical judge at 5 %: no data for any metric; nobody to decide: rollback if unsure (POL-010)"
    )


async def test_a_marginal_judge_rolls_back_headless_with_its_score_and_the_last_five_samples(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "subtle-latency")
    _with_judge(session, marginal_score=50.0)  # 50/100 is marginal here: a question, not a fail
    rollout = session.rollout
    assert await rollout.run() == Outcome.ROLLED_BACK
    [trigger] = _of(rollout.events, RollbackTriggered)
    verdict = trigger.reason.removesuffix("; nobody to decide: rollback if unsure (POL-010)")
    assert verdict.startswith("statistical judge at 5 %: score 50/100: marginal — error_rate: pass (")
    assert (trigger.rule, trigger.actor, trigger.automatic) == ("judge", "engine", True)
    assert trigger.readings == [
        RuleReading(rule="judge", value=50.0, limit=50.0, unit="score", fired=False, text=verdict)
    ]
    at_5 = [s for s in _of(rollout.events, AnalysisSample) if s.step == 0]
    assert len(at_5) == 10 and trigger.samples == at_5[-5:]


async def test_a_marginal_judge_asks_the_person_watching_and_resuming_promotes(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "subtle-latency", interactive=True)
    # p99 fails and the error rate passes: 50/100, which this spec calls marginal
    _with_judge(session, marginal_score=50.0)
    rollout = session.rollout
    task = await _signed_off(session)
    await until(lambda: rollout.phase == Phase.PAUSED)
    [paused] = _of(rollout.events, Paused)
    assert paused.actor == "engine"
    assert paused.reason.startswith("statistical judge at 5 %: score 50/100: marginal — error_rate: pass (")
    assert paused.reason.endswith("): resume to promote, or roll back")
    # the pause holds: time passes, nothing moves on by itself; the engine looks once an interval
    clock: Any = rollout.clock
    sleep, naps = clock.sleep, []

    async def counted_sleep(seconds: float) -> None:
        naps.append(seconds)
        await sleep(seconds)

    clock.sleep = counted_sleep
    now = clock.now()
    await sleep(600)
    assert rollout.phase == Phase.PAUSED and rollout.weight == 5 and clock.now() > now
    assert set(naps) == {30.0} and 10 <= len(naps) <= 20  # once an interval, never a busy loop
    clock.sleep = sleep
    assert (await rollout.resume("carol")).ok
    await until(lambda: rollout.weight == 25)
    assert not _of(rollout.events, RollbackTriggered)
    await rollout.abort("carol", "test over")
    assert await task == Outcome.ABORTED


async def test_a_judge_without_data_pauses_for_the_person_watching(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy", interactive=True)
    _with_judge(session)
    _short_steps(session)
    rollout = session.rollout
    task = await _signed_off(session)
    await until(lambda: rollout.phase == Phase.PAUSED)
    [paused] = _of(rollout.events, Paused)
    assert paused.reason == (
        f"statistical judge at 5 %: no data for any metric — {_NO_DATA_2}: resume to promote, or roll back"
    )
    assert (await rollout.rollback("carol", "no evidence")).ok
    assert await task == Outcome.ROLLED_BACK
    assert rollout.weight == 0 and not _of(rollout.events, Resumed)


# --- a person ends a window ----------------------------------------------------------------------


async def test_promote_early_skips_the_rest_of_the_bake_and_says_how_much(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    _on_sample(session, lambda s: s.step == 3 and s.elapsed_s == 60, lambda: rollout.promote_early("alice"))
    assert await rollout.run() == Outcome.COMPLETED
    events = rollout.events
    assert ("warning", "alice promoted early: skipped the remaining 14m of the 100 % bake") in _engine_says(
        events
    )
    bake = [s for s in _of(events, AnalysisSample) if s.step == 3]
    assert [s.elapsed_s for s in bake] == [30.0, 60.0]  # nothing counted after the request
    [window] = [e for e in _of(events, WindowStarted) if e.name == "canary 100 %"]
    verify = next(e for e in _of(events, PhaseChanged) if e.phase == Phase.VERIFY)
    assert (verify.ts - window.ts).total_seconds() < 120


async def test_each_proceed_names_the_step_it_leaves_and_the_one_it_moves_to(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    _on_sample(session, lambda s: s.step == 1 and s.elapsed_s == 90, lambda: rollout.proceed("alice"))
    _on_sample(session, lambda s: s.step == 2 and s.elapsed_s == 120, lambda: rollout.proceed("bob"))
    windows_at_changes: list[Any] = []
    rollout.subscribe(
        lambda e: (
            windows_at_changes.append(rollout.window) if isinstance(e, TrafficChanged) and e.applied else None
        )
    )
    assert await rollout.run() == Outcome.COMPLETED
    said = [m for level, m in _engine_says(rollout.events) if level == "warning"]
    assert said == [
        "alice proceeds from 25 % to 50 % after 1m30s of 5m: skipped the remaining 3m30s of canary 25 %; "
        "50 % gets its full window",
        "bob proceeds from 50 % to 100 % after 2m of 5m: skipped the remaining 3m of canary 50 %; "
        "100 % gets its full window",
    ]
    bake = [s.elapsed_s for s in _of(rollout.events, AnalysisSample) if s.step == 3]
    assert bake == [30.0 * n for n in range(1, 31)]  # one proceed, one step: 100 % bakes 15 minutes
    # between windows there is none (no countdown on the screen): each weight change, the promotion
    assert windows_at_changes and set(windows_at_changes) == {None}


async def test_a_proceed_with_under_a_second_left_says_so_without_rounding_up(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    canary = CanarySpec(steps=[CanaryStep(weight=5, observe=60.5), CanaryStep(weight=100, observe=60)])
    session.rollout.plan = session.rollout.plan.model_copy(update={"canary": canary})
    rollout = session.rollout
    _on_sample(session, lambda s: s.step == 0 and s.elapsed_s == 60, lambda: rollout.proceed("alice"))
    assert await rollout.run() == Outcome.COMPLETED
    assert (
        "warning",
        "alice proceeds from 5 % to 100 % after 1m of 1m: skipped the remaining 0s of canary 5 %; 100 % gets its full window",
    ) in _engine_says(rollout.events)


async def test_a_sign_off_during_verification_never_shortens_an_analysis_interval(tmp_path: Path) -> None:
    plan = demo_plan("healthy")
    notes = ManualGateSpec(id="release-notes", title="Release notes", group="post_deploy", signers=3)
    gates = plan.gates.model_copy(update={"manual": [*plan.gates.manual, notes]})
    session = await sim_session(tmp_path, "healthy", gates=gates)  # the deployer signs the first
    rollout = session.rollout
    clock: Any = rollout.clock
    replies: list[Any] = []

    async def sign(after: float, actor: str) -> None:
        await clock.sleep(after)
        replies.append(await rollout.sign_off("release-notes", actor, ""))  # wakes the engine's nap

    verifying = lambda s: s.phase == Phase.VERIFY  # noqa: E731
    _on_sample(session, lambda s: verifying(s) and s.elapsed_s == 30, lambda: sign(10.0, "carol"))
    _on_sample(session, lambda s: verifying(s) and s.elapsed_s == 90, lambda: sign(29.5, "dave"))
    assert await rollout.run() == Outcome.COMPLETED
    assert [r.ok for r in replies] == [True, True]
    verify = [s for s in _of(rollout.events, AnalysisSample) if s.phase == Phase.VERIFY]
    gaps = {(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(verify)}
    assert gaps == {30.0}  # every interval whole: a command wakes the nap, the interval goes on
    assert [s.elapsed_s for s in verify] == [30.0 * n for n in range(1, len(verify) + 1)]


async def test_the_progress_written_to_the_cluster_counts_the_windows_intervals_with_data(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    written: list[tuple[float, int]] = []

    def on_event(event: Event) -> None:
        # each sample is journaled before its interval is counted: the progress shows the ones before it
        progress = rollout.progress
        if isinstance(event, AnalysisSample) and event.step == 0 and progress and progress.window:
            written.append((progress.window.observed_s, progress.window.samples))

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.COMPLETED
    assert written == [(30.0 * n, n) for n in range(10)]
