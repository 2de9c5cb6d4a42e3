"""Observation windows without evidence, and what each sample carries (issue 16, rollout/window.py).

Written against the survivors of `make mutate MUTATE_MODULES=core.rollout` in rollout/window.py: a
blind interval moves the window's end out and is never counted, three pause the rollout with a
rollback countdown, data coming back ends that pause by itself, too few requests is waiting rather
than blindness; each sample shows the numbers read, the weight, the window's data time and the blind
count; a health check that fails or cannot be made is journaled. The judge and a person ending a
window are in test_mutants_rollout_window.py. All in memory, in virtual time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.domain import CanaryMetrics, Outcome, Phase
from core.events import (
    AnalysisSample,
    Event,
    HealthChecked,
    LogLine,
    Paused,
    PhaseChanged,
    Resumed,
    RollbackTriggered,
    WindowStarted,
)
from core.ports import PortError
from core.session import Session
from tests.engine_helpers import sim_session
from tests.resume_helpers import open_driver, run_killed_at
from tests.test_mutants_rollout import _of

_DOWN = "prometheus unreachable (test)"
_AT_5 = "canary 5 %"


def _script(
    session: Session, change: Callable[[str, int, CanaryMetrics], CanaryMetrics | None]
) -> list[tuple[AnalysisSample, CanaryMetrics | None]]:
    """Route every metrics read through ``change(window name, nth read in it, the real read)``: what
    it returns is what the engine reads; None is a failed read (Prometheus unreachable). Returns each
    sample with the read it was made from (None: failed), as the run goes."""
    rollout = session.rollout
    metrics: Any = rollout.world.metrics
    read = metrics.canary_metrics
    counts: dict[str, int] = {}
    fresh: list[CanaryMetrics | None] = [None]
    pairs: list[tuple[AnalysisSample, CanaryMetrics | None]] = []

    async def scripted(window_s: float) -> CanaryMetrics:
        name = rollout.window.name if rollout.window is not None else ""
        counts[name] = counts.get(name, 0) + 1
        fresh[0] = change(name, counts[name], await read(window_s))
        if fresh[0] is None:
            raise PortError(_DOWN)
        return fresh[0]

    def on_event(event: Event) -> None:
        if isinstance(event, AnalysisSample):
            pairs.append((event, fresh[0]))
            fresh[0] = None

    metrics.canary_metrics = scripted
    rollout.subscribe(on_event)
    return pairs


def _blind_at_5(reads: set[int]) -> Callable[[str, int, CanaryMetrics], CanaryMetrics | None]:
    return lambda name, n, real: None if name == _AT_5 and n in reads else real


def _samples(events: list[Event], step: int | None) -> list[AnalysisSample]:
    return [s for s in _of(events, AnalysisSample) if s.step == step and s.phase != Phase.VERIFY]


def _blind_view(samples: list[AnalysisSample]) -> list[tuple[Any, ...]]:
    """What the screen shows per sample: verdict, data time, blind count, blind time, countdown."""
    return [(s.verdict, s.elapsed_s, s.blind_intervals, s.blind_s, s.rollback_in_s) for s in samples]


def _ends(events: list[Event], name: str) -> list[float]:
    """Each announced end of the window ``name``, in seconds after it started."""
    windows = [e for e in _of(events, WindowStarted) if e.name == name]
    return [(w.ends_at - windows[0].ts).total_seconds() for w in windows]


async def test_blind_intervals_move_the_end_out_pause_at_three_and_data_back_resumes(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _script(session, _blind_at_5({2, 3, 4, 5, 6}))
    rollout = session.rollout
    assert await rollout.run() == Outcome.COMPLETED
    events = rollout.events
    at_5 = _samples(events, 0)
    assert _blind_view(at_5[:7]) == [
        ("healthy", 30.0, 0, None, None),
        ("no_data", 30.0, 1, 30.0, None),
        ("no_data", 30.0, 2, 60.0, None),
        ("no_data", 30.0, 3, 90.0, 600.0),  # this read pauses: the countdown starts at its timeout
        ("no_data", 30.0, 4, 120.0, 570.0),
        ("no_data", 30.0, 5, 150.0, 540.0),
        ("healthy", 30.0, 0, None, None),  # read while paused: ends the pause, not counted
    ]
    assert {s.no_data_reason for s in at_5[1:6]} == {_DOWN}
    assert [s.phase for s in at_5[:7]] == [Phase.CANARY] * 4 + [Phase.PAUSED] * 3
    # ten intervals with data, the blind ones and the one that ended the pause not among them
    assert [s.elapsed_s for s in at_5[7:]] == [30.0 * n for n in range(2, 11)]
    # every interval not counted moves the end out to "now + the data time still missing" (270 s):
    # the blind ones, those of the blind pause, and the read that ended it; it lands where the
    # window really ends, 6 uncounted intervals late
    assert _ends(events, _AT_5) == [300.0, 330.0, 360.0, 390.0, 420.0, 450.0, 480.0]
    assert (at_5[-1].ts - at_5[0].ts).total_seconds() + 30.0 == 480.0
    [paused] = _of(events, Paused)
    assert (paused.actor, paused.ts) == ("engine", at_5[3].ts)
    assert paused.reason == (
        f"no data for 3 analysis intervals ({_DOWN}); never promoting blind: resumes by itself when data "
        "is back, rolls back if still blind in 10m (POL-010); roll back now with r"
    )
    [resumed] = _of(events, Resumed)
    assert (resumed.actor, resumed.blind_s, resumed.ts) == ("engine", 180.0, at_5[6].ts)
    assert [e.message for e in _of(events, LogLine) if e.ts == resumed.ts] == [
        "data is back after 3m blind: resuming; the window counts only intervals with data"
    ]
    back = [(e.previous, e.phase, e.reason) for e in _of(events, PhaseChanged) if e.ts == resumed.ts]
    assert back == [(Phase.PAUSED, Phase.CANARY, "data is back after 3m blind")]
    assert not _of(events, RollbackTriggered)


async def test_a_second_blind_stretch_counts_its_own_blind_time(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _script(session, _blind_at_5({2, 3, 4, 5, 8, 9, 10, 11}))
    rollout = session.rollout
    assert await rollout.run() == Outcome.COMPLETED
    events = rollout.events
    at_5 = _samples(events, 0)
    # blind from read 8 on: its blind time starts after read 7, not at the first stretch
    assert _blind_view(at_5[7:11]) == [
        ("no_data", 60.0, 1, 30.0, None),
        ("no_data", 60.0, 2, 60.0, None),
        ("no_data", 60.0, 3, 90.0, 600.0),
        ("no_data", 60.0, 4, 120.0, 570.0),
    ]
    assert [r.blind_s for r in _of(events, Resumed)] == [150.0, 150.0]
    assert len(_of(events, Paused)) == 2


async def test_still_blind_at_the_timeout_rolls_back_saying_how_long(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _script(session, _blind_at_5(set(range(2, 100))))
    rollout = session.rollout
    assert await asyncio.wait_for(rollout.run(), 30) == Outcome.ROLLED_BACK
    events = rollout.events
    [paused] = _of(events, Paused)
    [trigger] = _of(events, RollbackTriggered)
    assert (trigger.ts - paused.ts).total_seconds() == 600.0
    assert (trigger.rule, trigger.actor, trigger.automatic) == ("no_data", "engine", True)
    assert trigger.reason == (
        f"no data for 11m30s, still blind 10m after pausing ({_DOWN}); rollback if unsure (POL-010)"
    )
    last = _samples(events, 0)[-1]
    assert (last.blind_intervals, last.blind_s, last.rollback_in_s) == (23, 690.0, 0.0)


async def test_a_persons_pause_is_not_the_engines_blind_pause(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _script(session, _blind_at_5(set(range(3, 100))))
    rollout = session.rollout

    def on_event(event: Event) -> None:
        if isinstance(event, AnalysisSample) and event.step == 0 and event.verdict == "healthy":
            asyncio.get_running_loop().create_task(rollout.pause("dave", "looking at a dashboard"))

    rollout.subscribe(on_event)
    task = asyncio.create_task(rollout.run())
    clock: Any = rollout.clock
    await clock.sleep(3600)
    # blind for an hour while a person holds it: no engine pause, no countdown, no rollback
    assert rollout.phase == Phase.PAUSED and not task.done()
    assert [p.actor for p in _of(rollout.events, Paused)] == ["dave"]
    blind = _samples(rollout.events, 0)[2:]
    assert len(blind) > 50
    assert {(s.elapsed_s, s.rollback_in_s) for s in blind} == {(30.0, None)}
    assert [s.blind_intervals for s in blind[:3]] == [1, 2, 3]
    # paused, nothing counts: the end stays the missing data time (4m30s) ahead of each read
    start = next(e for e in _of(rollout.events, WindowStarted) if e.name == _AT_5)
    ends = _ends(rollout.events, _AT_5)
    assert ends[-len(blind) :] == [(s.ts - start.ts).total_seconds() + 270.0 for s in blind]
    await rollout.abort("dave", "test over")
    assert await task == Outcome.ABORTED


def _thin(name: str, n: int, real: CanaryMetrics) -> CanaryMetrics:
    """Reads 2 to 5 at 5 % answer, but with ten canary requests: too few to judge."""
    if name != _AT_5 or not 2 <= n <= 5:
        return real
    return real.model_copy(update={"canary": real.canary.model_copy(update={"requests": 10.0})})


async def test_too_few_requests_waits_for_evidence_without_pausing(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _script(session, _thin)
    rollout = session.rollout
    assert await rollout.run() == Outcome.COMPLETED
    events = rollout.events
    at_5 = _samples(events, 0)
    # not counted, not blind: no blind count, no countdown, no pause
    assert _blind_view(at_5[:6]) == [
        ("healthy", 30.0, 0, None, None),
        *[("no_data", 30.0, 0, None, None)] * 4,
        ("healthy", 60.0, 0, None, None),
    ]
    assert len(at_5) == 14 and not _of(events, Paused)
    assert _ends(events, _AT_5) == [300.0, 330.0, 360.0, 390.0, 420.0]


async def test_after_a_persons_pause_a_proceed_says_how_much_of_the_window_it_skips(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _script(session, _thin)
    rollout = session.rollout
    seen: list[AnalysisSample] = []
    previews: list[str | None] = []
    tasks: list[asyncio.Task[Any]] = []

    async def proceed() -> None:
        previews.append(rollout.proceed_preview())
        assert (await rollout.proceed("alice")).ok

    def on_event(event: Event) -> None:
        if not isinstance(event, AnalysisSample) or event.step != 0:
            return
        seen.append(event)
        loop = asyncio.get_running_loop()
        if len(seen) == 1:
            tasks.append(loop.create_task(rollout.pause("dave", "looking at a dashboard")))
        elif len(seen) == 20:  # ten minutes paused: four thin reads, then fifteen with data
            tasks.append(loop.create_task(rollout.resume("dave")))
        elif len(seen) > 20 and event.phase == Phase.CANARY and not previews:
            tasks.append(loop.create_task(proceed()))

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.COMPLETED
    # nothing read while paused counted, nor the stub of the interval the resume cut short (read at
    # once, at the resume's instant)
    assert [s.elapsed_s for s in seen] == [30.0] * 21
    assert seen[20].ts == seen[19].ts and seen[20].phase == Phase.CANARY
    # the pause did not eat the window: 4m30s of its 5 minutes were still to observe
    assert previews == ["skips the remaining 4m30s of the 5 % window; 25 % then gets its full 5m window"]
    said = [
        e.message for e in _of(rollout.events, LogLine) if e.source == "engine" and "proceeds" in e.message
    ]
    assert said == [
        "alice proceeds from 5 % to 25 % after 30s of 5m: skipped the remaining 4m30s of canary 5 %; "
        "25 % gets its full window"
    ]


def _real(name: str, n: int, real: CanaryMetrics) -> CanaryMetrics:
    return real


async def test_each_sample_shows_what_was_read_at_the_weight_it_was_read(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    pairs = _script(session, _real)
    rollout = session.rollout
    assert await rollout.run() == Outcome.COMPLETED
    pairs = [(s, r) for s, r in pairs if s.phase in (Phase.CANARY, Phase.VERIFY) and s.weight < 100]
    assert len(pairs) == 30
    for sample, read in pairs:
        assert read is not None
        c, b = read.canary, read.baseline
        assert (sample.canary_error_rate, sample.baseline_error_rate) == (
            c.error_rate * 100,  # type: ignore[operator]
            b.error_rate * 100,  # type: ignore[operator]
        )
        assert (sample.canary_p50_ms, sample.canary_p95_ms, sample.canary_p99_ms) == (
            c.p50 * 1000,  # type: ignore[operator]
            c.p95 * 1000,  # type: ignore[operator]
            c.p99 * 1000,  # type: ignore[operator]
        )
        assert sample.baseline_p99_ms == b.p99 * 1000  # type: ignore[operator]
        assert (sample.canary_requests, sample.baseline_requests) == (c.requests, b.requests)
        assert sample.health_ok is True and sample.verdict == "healthy"
    samples = [s for s in _of(rollout.events, AnalysisSample) if s.phase in (Phase.CANARY, Phase.VERIFY)]
    assert sorted({(s.phase.value, s.weight) for s in samples}) == [
        ("canary", 5),
        ("canary", 25),
        ("canary", 50),
        ("canary", 100),
        ("verify", 100),
    ]
    verify = [s for s in samples if s.phase == Phase.VERIFY]
    assert [s.elapsed_s for s in verify] == [30.0 * n for n in range(1, len(verify) + 1)]
    assert {s.window_s for s in verify} == {session.plan.verification.duration}


async def test_at_100_and_after_it_the_baseline_is_the_one_measured_at_the_last_partial_step(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "healthy")
    pairs = _script(session, _real)
    rollout = session.rollout
    assert await rollout.run() == Outcome.COMPLETED
    pairs = [(s, r) for s, r in pairs if s.phase in (Phase.CANARY, Phase.VERIFY)]
    last_50 = max(i for i, (s, _) in enumerate(pairs) if s.weight == 50)
    ref = pairs[last_50][1].baseline  # type: ignore[union-attr]
    after = pairs[last_50 + 1 :]
    assert len(after) > 30 and {s.weight for s, _ in after} == {100}
    for sample, read in after:
        assert read is not None and read.baseline.requests == 0  # the old version serves nothing now
        assert (sample.baseline_error_rate, sample.baseline_p99_ms, sample.baseline_requests) == (
            ref.error_rate * 100,  # type: ignore[operator]
            ref.p99 * 1000,  # type: ignore[operator]
            ref.requests,
        )


async def test_a_failed_read_is_a_sample_without_numbers_and_its_reason(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    at_5_or_100 = _blind_at_5({2})
    _script(
        session,
        lambda name, n, real: None if name == "canary 100 %" and n == 2 else at_5_or_100(name, n, real),
    )
    assert await session.rollout.run() == Outcome.COMPLETED
    events = session.rollout.events
    blind = _samples(events, 0)[1]
    # one blind interval neither pauses nor, with data back, "resumes"
    assert not _of(events, Paused) and not _of(events, Resumed)
    assert [e.message for e in _of(events, LogLine) if "data is back" in e.message] == []
    assert (blind.verdict, blind.no_data_reason, blind.weight, blind.health_ok) == ("no_data", _DOWN, 5, True)
    numbers = (blind.canary_error_rate, blind.baseline_error_rate, blind.canary_p99_ms, blind.canary_requests)
    assert numbers == (None, None, None, None)
    # at 100 % too: the baseline kept from 50 % is not shown as if this read had measured it
    at_100 = _samples(events, 3)[1]
    assert (at_100.verdict, at_100.no_data_reason, at_100.weight) == ("no_data", _DOWN, 100)
    assert (at_100.baseline_error_rate, at_100.baseline_p99_ms, at_100.baseline_requests) == (
        None,
        None,
        None,
    )


async def test_health_checks_that_fail_or_cannot_be_made_are_journaled(tmp_path: Path) -> None:
    urls = ["sim://checkout-canary/health/ready?token=s3cret", "sim://checkout-canary/health/live"]
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    rollout.plan = rollout.plan.model_copy(
        update={"analysis": rollout.plan.analysis.model_copy(update={"health_urls": urls})}
    )
    probe: Any = rollout.world.probe
    check = probe.check
    calls: list[tuple[str, float]] = []

    async def flaky(url: str, **kwargs: Any) -> Any:
        if rollout.step_index != 0 or rollout.phase != Phase.CANARY:
            return await check(url, **kwargs)
        calls.append((url, kwargs["timeout_s"]))
        if "ready" in url:
            raise PortError("connection refused (test)")
        return await check(url, **kwargs)

    probe.check = flaky
    outcome = await rollout.run()
    events = rollout.events
    checked = _of(events, HealthChecked)
    assert checked and {(c.url, c.ok, c.detail) for c in checked} == {
        ("sim://checkout-canary/health/ready", False, "connection refused (test)")
    }
    assert {t for _, t in calls} == {5.0}
    assert [u for u, _ in calls[:4]] == urls * 2  # a check that cannot be made does not skip the next URL
    at_5 = _samples(events, 0)
    assert at_5 and all(s.health_ok is False for s in at_5)  # one URL failing is a failed check
    assert outcome == Outcome.ROLLED_BACK
    [trigger] = _of(events, RollbackTriggered)
    assert trigger.rule == "health"


async def test_a_restart_after_a_blind_pause_does_not_count_the_pause_as_observed(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _script(session, _blind_at_5({2, 3, 4, 5, 6}))
    # killed as the first interval with data after the pause is journaled (reads 1 and 8 had data)
    outcome, switch = await run_killed_at(session, match="journal analysis step=0", nth=8)
    assert outcome is None, switch.log[-3:]
    first = session.rollout.events
    assert [e.blind_s for e in _of(first, Resumed)] == [180.0]
    start = next(e for e in _of(first, WindowStarted) if e.name == _AT_5)
    again = await open_driver(session.world, tmp_path)
    assert await again.rollout.run() == Outcome.COMPLETED
    events = again.rollout.events
    # six intervals were not counted (five blind, one that ended the pause): the end is 3m out
    window = [e for e in _of(events, WindowStarted) if e.name == _AT_5][-1]
    assert (window.ends_at - start.ts).total_seconds() == 480.0
    # the time nobody watched (read 8 on, the restart) counts; the blind pause does not: 260 s after
    # the start, 260 - 180 s of it had data, and the window goes on until 300 s with data
    assert (window.ts - start.ts).total_seconds() == 260.0
    resumed = [s for s in _samples(events, 0) if s.ts > window.ts]
    assert [s.elapsed_s for s in resumed] == [110.0, 140.0, 170.0, 200.0, 230.0, 260.0, 290.0, 300.0]


async def test_a_trigger_rolls_back_naming_every_rule_that_fired_with_the_last_five_samples(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout

    def spike(name: str, n: int, real: CanaryMetrics) -> CanaryMetrics:
        if name != _AT_5 or n != 8:
            return real
        return real.model_copy(update={"canary": real.canary.model_copy(update={"error_rate": 0.05})})

    _script(session, spike)
    probe: Any = rollout.world.probe
    check = probe.check

    async def failing_from_7(url: str, **kwargs: Any) -> Any:
        if rollout.step_index == 0 and len(_samples(rollout.events, 0)) >= 6:
            raise PortError("connection refused (test)")
        return await check(url, **kwargs)

    probe.check = failing_from_7
    assert await rollout.run() == Outcome.ROLLED_BACK
    at_5 = _samples(rollout.events, 0)
    assert len(at_5) == 8 and at_5[-1].verdict == "fired"
    [trigger] = _of(rollout.events, RollbackTriggered)
    fired = [r for r in at_5[-1].readings if r.fired]
    assert [r.rule for r in fired] == ["error_rate", "health"]  # the 5xx spike and the second failure
    assert (trigger.rule, trigger.actor, trigger.automatic) == ("error_rate", "engine", True)
    assert trigger.reason == f"error rate above baseline: {fired[0].text}; {fired[1].text}"
    assert trigger.readings == at_5[-1].readings and trigger.samples == at_5[-5:]


async def test_data_back_in_the_staging_soak_returns_to_the_soak(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    _script(session, lambda name, n, real: None if name == "staging soak" and 3 <= n <= 7 else real)
    rollout = session.rollout
    assert await rollout.run() == Outcome.COMPLETED
    [resumed] = _of(rollout.events, Resumed)
    back = [(e.previous, e.phase, e.reason) for e in _of(rollout.events, PhaseChanged) if e.ts == resumed.ts]
    assert back == [(Phase.PAUSED, Phase.STAGING, "data is back after 3m blind")]
    # the soak names the side whose read failed, with the read's error
    blind = [s for s in _samples(rollout.events, None) if s.phase != Phase.PENDING and s.verdict == "no_data"]
    assert {s.no_data_reason for s in blind} == {f"no data: baseline: {_DOWN}"} and len(blind) == 5


async def test_a_failed_health_check_is_journaled_with_its_status_and_detail(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "flaky-health")  # 1 check in 3 fails at 5 %, 2 in 4 at 50 %
    rollout = session.rollout
    assert await rollout.run() == Outcome.ROLLED_BACK
    checked = _of(rollout.events, HealthChecked)
    assert {(c.url, c.ok, c.status, c.detail) for c in checked} == {
        ("sim://checkout-canary/health/ready", False, 503, "dependency redis: connection timed out")
    }
    at_5 = _samples(rollout.events, 0)
    assert [s.health_ok for s in at_5] == [True, True, False] * 3 + [True]
    assert [c.ts for c in checked if c.step == 0] == [s.ts for s in at_5 if s.health_ok is False]


async def test_without_health_urls_no_check_is_made_and_samples_say_unknown(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    rollout.plan = rollout.plan.model_copy(
        update={"analysis": rollout.plan.analysis.model_copy(update={"health_urls": []})}
    )
    assert await rollout.run() == Outcome.COMPLETED
    samples = [s for s in _of(rollout.events, AnalysisSample) if s.phase != Phase.STAGING]
    assert samples and {s.health_ok for s in samples} == {None}
    assert not [r for s in samples for r in s.readings if r.rule == "health"]


async def test_a_blind_read_outside_a_window_is_one_blind_interval(tmp_path: Path) -> None:
    # the feature-flag observation after verification reads once, with no window (completion.py)
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    _script(session, lambda name, n, real: None)
    judgement, sample = await rollout._analyse(0.0, 0.0, Phase.VERIFY)
    assert (judgement.verdict, sample.no_data_reason, sample.weight) == ("no_data", _DOWN, 100)
    assert (sample.blind_intervals, sample.blind_s, sample.rollback_in_s) == (1, 30.0, None)
    assert (sample.elapsed_s, sample.window_s) == (0.0, 0.0)
