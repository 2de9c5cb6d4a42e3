"""`--read-only` is read-only through every path: keys, the command palette, mouse and modal results.

Each steering action is tried in a read-only dashboard through its key and through the palette
(ctrl+p, type, enter). A spy on the rollout's command methods proves nothing reached the engine,
and no dialog that would lead to a command opened.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.command import CommandPalette

from core.domain import Phase
from tui.app import DeckCommands, DeployDeckApp
from tui.screens.modals import ConfirmModal, DecisionModal, ProceedModal, SignOffModal
from tui.screenshots import canary_at, demo_app, drive, needs_sign_off

_COMMANDS = (
    "sign_off",
    "proceed",
    "refresh_gates",
    "pause",
    "resume",
    "rollback",
    "abort",
    "decide",
    "override",
)

#: action → (key, palette text)
ACTIONS = {
    "sign_off": ("s", "Sign off the selected gate"),
    "proceed": ("p", "Proceed to the next step"),
    "pause_resume": ("space", "Pause / resume"),
    "abort": ("a", "Abort the deploy"),
    "refresh_gates": ("g", "Re-check the gates now"),
    "rollback": ("r", "Roll back now"),
    "decide": ("d", "Decide"),
}


def spy(app: DeployDeckApp) -> list[str]:
    """Replace every command method of the rollout with one that records the call."""
    calls: list[str] = []
    rollout = app.rollout
    for name in _COMMANDS:
        original = getattr(rollout, name)

        def make(name: str, original=original):  # type: ignore[no-untyped-def]
            async def recorded(*args, **kwargs):  # type: ignore[no-untyped-def]
                calls.append(name)
                return await original(*args, **kwargs)

            return recorded

        setattr(rollout, name, make(name))
    return calls


def no_steering_dialog(app: DeployDeckApp) -> bool:
    return not isinstance(app.screen, SignOffModal | ProceedModal | ConfirmModal | DecisionModal)


def at_gates_waiting(model) -> bool:  # type: ignore[no-untyped-def]
    return model.phase == Phase.PREFLIGHT and needs_sign_off(model)


@pytest.mark.parametrize("action", sorted(ACTIONS))
async def test_read_only_key_reaches_nothing(tmp_path: Path, action: str) -> None:
    key, _ = ACTIONS[action]
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", read_only=True) as (app, pilot):
        await drive(app, pilot, at_gates_waiting, operate=False)
        calls = spy(app)
        await pilot.press(key)
        await pilot.pause()
        assert no_steering_dialog(app), app.screen
        await pilot.press("enter")  # would confirm a dialog had one opened
        await pilot.pause()
        assert calls == []


async def _palette(app: DeployDeckApp, pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("ctrl+p")
    await pilot.pause()
    assert isinstance(app.screen, CommandPalette)
    await pilot.press(*text)
    await pilot.pause(0.3)  # the palette searches in a worker
    await pilot.press("enter")
    await pilot.pause()


@pytest.mark.parametrize("action", sorted(a for a in ACTIONS if a != "decide"))
async def test_read_only_palette_reaches_nothing(tmp_path: Path, action: str) -> None:
    _, title = ACTIONS[action]
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", read_only=True) as (app, pilot):
        await drive(app, pilot, at_gates_waiting, operate=False)
        calls = spy(app)
        await _palette(app, pilot, title)
        assert no_steering_dialog(app), app.screen
        # if a dialog had opened (the bug), typing a name and enter would sign off as anyone
        await pilot.press(*"mallory", "enter")
        await pilot.pause()
        assert calls == []
        assert not any(e.type == "gate_signed_off" for e in app.rollout.events)


async def test_read_only_palette_offers_no_steering_commands(tmp_path: Path) -> None:
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", read_only=True) as (app, _pilot):
        titles = [hit.text for hit in [h async for h in DeckCommands(app.screen).discover()]]  # type: ignore[attr-defined]
        steering = {title for _, title in ACTIONS.values()}
        assert steering.isdisjoint(titles), titles
        assert "Show the full event log" in titles  # looking stays possible


async def test_read_only_direct_calls_and_modal_results_reach_nothing(tmp_path: Path) -> None:
    """Mouse (gate detail's sign button) and any direct call of an action: the one check refuses."""
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", read_only=True) as (app, pilot):
        await drive(app, pilot, at_gates_waiting, operate=False)
        calls = spy(app)
        gate = next(g for g, v in app.model.gates.items() if v.result.status.value == "needs_sign_off")
        app.action_sign_off(gate)  # what the gate detail's "sign" result calls
        app.action_proceed()
        app.action_abort()
        app.action_pause_resume()
        app.action_refresh_gates()
        app.action_rollback()
        app.switch_scenario("bad-canary")
        await pilot.pause()
        assert no_steering_dialog(app), app.screen
        # a result arriving from a dialog opened some other way still stops at the same check
        app._command("sign_off", lambda: app.rollout.sign_off(gate, "mallory"))
        await pilot.pause()
        assert calls == []


async def test_allow_rollback_lets_only_rollback_through(tmp_path: Path) -> None:
    until = canary_at(5, samples=1)
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", freeze_at=until) as (app, pilot):
        await drive(app, pilot, until)  # signed and proceeded by a writer; now an observer takes over
        app.read_only, app.allow_rollback = True, True
        calls = spy(app)
        await _palette(app, pilot, "Pause / resume")  # not offered: the palette finds nothing
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        app.session.clock.thaw()  # type: ignore[attr-defined]
        await drive(app, pilot, lambda m: m.finished is not None, operate=False)
        assert calls == ["rollback"]
        assert app.model.rollback is not None and app.model.rollback.automatic is False


async def test_quitting_mid_rollout_prints_nothing_to_stderr(tmp_path: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", freeze_at=canary_at(5, samples=1)) as (
        app,
        pilot,
    ):
        await drive(app, pilot, canary_at(5, samples=1))
        # anything that flushes stdout while the app runs (a library, a print) calls App._flush(stderr=...)
        print("flushed while running", flush=True)
        sys.stderr.flush()
        await pilot.press("q")
        await pilot.pause()
        await pilot.click("#ok")
        await pilot.pause()
        assert app._exit
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "Traceback" not in captured.out
