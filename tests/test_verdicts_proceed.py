"""Issue 14, item 4: proceed means one step; promoting early is its own, explicit action.

One `p` at 50 % used to skip the whole 15-minute bake at 100 %: a proceed that arrived while the
50 % window was ending stayed pending, and the 100 % window "promoted early after 0s of 15m".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.domain import Outcome, Phase
from core.events import AnalysisSample, Event, LogLine, PhaseChanged, TrafficChanged, WindowStarted
from tests.engine_helpers import sim_session, until


def _window(events: list[Event], name: str) -> WindowStarted:
    return next(e for e in events if isinstance(e, WindowStarted) and e.name == name)


def _bake_seconds(events: list[Event]) -> float:
    """Simulated seconds from the 100 % window's start to the end of the canary phase."""
    start = _window(events, "canary 100 %").ts
    verify = next(e for e in events if isinstance(e, PhaseChanged) and e.phase == Phase.VERIFY)
    return (verify.ts - start).total_seconds()


async def test_a_proceed_as_the_50_window_ends_never_shortens_the_100_bake(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    results = []

    interval = session.plan.analysis.interval

    async def press_during_the_last_interval() -> object:
        await session.clock.sleep(interval / 3)
        return await rollout.proceed("alice")

    def on_event(event: Event) -> None:
        # the sample before the 50 % window's last interval: `p` lands inside that last interval
        if (
            isinstance(event, AnalysisSample)
            and event.step == 2
            and event.elapsed_s == event.window_s - interval
            and not results
        ):
            results.append(asyncio.get_running_loop().create_task(press_during_the_last_interval()))

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.COMPLETED
    events = rollout.events
    assert results and results[0].result().ok, "the proceed was accepted at 50 %"
    assert not [e for e in events if isinstance(e, LogLine) and "promoted early" in e.message]
    assert _bake_seconds(events) >= 900


async def test_proceed_mid_window_moves_one_step_and_the_next_gets_its_full_window(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    sent: list[asyncio.Task[object]] = []

    def on_event(event: Event) -> None:
        if isinstance(event, AnalysisSample) and event.step == 2 and event.verdict == "healthy" and not sent:
            sent.append(asyncio.get_running_loop().create_task(rollout.proceed("alice")))

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.COMPLETED
    events = rollout.events
    assert sent and sent[0].result().ok  # type: ignore[union-attr]
    at_50 = _window(events, "canary 50 %")
    at_100 = _window(events, "canary 100 %")
    assert (at_100.ts - at_50.ts).total_seconds() < 300  # the 50 % window was cut short
    said = [e.message for e in events if isinstance(e, LogLine) and e.source == "engine"]
    assert any("alice proceeds from 50 % to 100 %" in m and "skipped" in m for m in said), said
    assert _bake_seconds(events) >= 900  # and 100 % got all of its window
    assert [e.effective for e in events if isinstance(e, TrafficChanged) and e.applied][:4] == [
        5,
        25,
        50,
        100,
    ]


async def test_at_100_proceed_is_refused_and_promote_early_says_what_it_skips(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    replies: dict[str, object] = {}

    def on_event(event: Event) -> None:
        if (
            isinstance(event, AnalysisSample)
            and event.step == 3
            and event.verdict == "healthy"
            and event.elapsed_s >= 60
            and not replies
        ):
            replies["preview"] = rollout.promote_early_preview()

            async def press() -> None:
                replies["proceed"] = await rollout.proceed("alice")
                replies["promote"] = await rollout.promote_early("alice")

            replies["task"] = asyncio.get_running_loop().create_task(press())

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.COMPLETED
    refused = replies["proceed"]
    assert not refused.ok and "promote early" in refused.reason  # type: ignore[attr-defined]
    assert replies["promote"].ok  # type: ignore[attr-defined]
    assert replies["preview"] == "skip the remaining 14m of the 100 % bake"
    said = [e.message for e in rollout.events if isinstance(e, LogLine)]
    assert any("alice promoted early: skipped the remaining 14m of the 100 % bake" in m for m in said), said
    assert _bake_seconds(rollout.events) < 120


async def test_promote_early_is_refused_before_the_last_step(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    task = asyncio.create_task(rollout.run())
    await until(lambda: rollout.last_analysis is not None and rollout.step_index == 1)
    refused = await rollout.promote_early("alice")
    assert not refused.ok and "press p" in refused.reason
    assert rollout.promote_early_preview() is None
    await rollout.abort("alice", "test over")
    assert await task == Outcome.ABORTED


async def test_through_the_dashboard_p_moves_one_step_and_shift_p_skips_the_bake(tmp_path: Path) -> None:
    import json

    from tui.screens.modals import ConfirmModal, ProceedModal
    from tui.screenshots import canary_at, demo_app, drive

    journal = tmp_path / "j.jsonl"
    async with demo_app("healthy", journal=journal, promote=True) as (app, pilot):
        await drive(app, pilot, canary_at(50, samples=1), promote=True)
        await drive(app, pilot, lambda m: app.check_action("proceed", ()) is True, operate=False)
        await pilot.press("p")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ProceedModal)
        assert (
            "of the 50 % window" in modal.skipped and "100 % then gets its full 15m window" in modal.skipped
        )
        in_the_bake = canary_at(100, samples=2)
        frozen: list[bool] = []

        def freeze_once(event: Event) -> None:  # time stops once, inside the 100 % bake
            if not frozen and in_the_bake(app.model):
                frozen.append(True)
                app.session.clock.freeze()  # type: ignore[attr-defined]

        app.session.rollout.subscribe(freeze_once)
        await pilot.press(*modal.service, "enter")
        await drive(app, pilot, canary_at(100, samples=2), operate=False)
        # at 100 % `p` is refused (it would end the bake); `P` says what it skips
        assert app.check_action("proceed", ()) is None
        await pilot.press("p")
        await pilot.pause()
        assert not isinstance(app.screen, ProceedModal)
        await drive(app, pilot, lambda m: app.check_action("promote_early", ()) is True, operate=False)
        await pilot.press("P")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmModal)
        assert "skip the remaining" in confirm.body and "of the 100 % bake" in confirm.body
        await pilot.click("#ok")
        app.session.clock.thaw()  # type: ignore[attr-defined]
        await drive(app, pilot, lambda m: m.phase == Phase.VERIFY, operate=False)
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    said = [rec["message"] for rec in lines if rec["type"] == "log"]
    assert any("alice proceeds from 50 % to 100 %" in m for m in said)
    assert any("alice promoted early: skipped the remaining" in m for m in said)
    assert not any("promoted early after 0s" in m for m in said)
