"""Snapshots of the dashboard in its main states, from scripted runs on the simulated world.

Deterministic by construction: a VirtualClock with a fixed start that stops the moment
the state is reached (and while the script "is a person"), a fixed deploy id and
journal path, the plan's seed, no cursor blink, Textual pinned in pyproject.toml.
Update after a deliberate change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs before committing them.
"""

from __future__ import annotations

import textual
from textual.pilot import Pilot

from tui.screenshots import (
    ScriptedDeck,
    Until,
    at_gates,
    canary_at,
    drive,
    rolled_back,
    verifying,
)

SIZE = (120, 40)


def test_textual_is_pinned() -> None:
    # snapshots are only comparable on the version they were taken with
    assert textual.__version__ == "8.2.8"


def _run(until: Until, *, operate: bool = True, then: tuple[str, ...] = ()):
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, ScriptedDeck)
        await drive(app, pilot, until, operate=operate)
        if then:
            await pilot.press(*then)
            await pilot.pause()
        app.refresh_now()
        app.clear_notifications()
        await pilot.pause()

    return run_before


def test_gates_pending(snap_compare) -> None:
    app = ScriptedDeck("healthy", freeze_at=at_gates)
    assert snap_compare(app, terminal_size=SIZE, run_before=_run(at_gates, operate=False))


def test_canary_at_25(snap_compare) -> None:
    until = canary_at(25)
    assert snap_compare(ScriptedDeck("healthy", freeze_at=until), terminal_size=SIZE, run_before=_run(until))


def test_rolled_back_with_why_panel(snap_compare) -> None:
    app = ScriptedDeck("bad-canary", freeze_at=rolled_back)
    assert snap_compare(app, terminal_size=SIZE, run_before=_run(rolled_back))


def test_verification_view(snap_compare) -> None:
    until = verifying()
    app = ScriptedDeck("healthy", freeze_at=until)
    assert snap_compare(app, terminal_size=SIZE, run_before=_run(until, then=("v",)))


def test_history(snap_compare) -> None:
    app = ScriptedDeck("bad-canary", freeze_at=rolled_back)
    assert snap_compare(app, terminal_size=SIZE, run_before=_run(rolled_back, then=("h",)))


def test_history_replay(snap_compare) -> None:
    app = ScriptedDeck("bad-canary", freeze_at=rolled_back)
    assert snap_compare(app, terminal_size=SIZE, run_before=_run(rolled_back, then=("h", "enter")))


def test_canary_light_theme(snap_compare) -> None:
    until = canary_at(25)
    app = ScriptedDeck("healthy", freeze_at=until, theme="textual-light")
    assert snap_compare(app, terminal_size=SIZE, run_before=_run(until))
