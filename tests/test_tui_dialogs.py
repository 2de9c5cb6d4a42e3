"""Dialogs (issue 15, section 3): the field you type into has focus, Enter submits what was typed,
a burst of keys typed while a dialog opens is kept whole, the footer shows the dialog's own keys,
and rollback is never blocked by a dialog."""

from __future__ import annotations

import json
from pathlib import Path

from textual import events
from textual.widgets import Footer, Input

from core.domain import GateStatus, Outcome
from tui.screens.modals import ConfirmModal, SignOffModal
from tui.screenshots import ACTOR, at_gates, canary_at, completed, demo_app, drive, rolled_back


def journal_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def footer_keys(app: object) -> str:
    """The key hints the person sees at the bottom of the screen right now."""
    footers = list(app.screen.query(Footer)) or list(app.screen_stack[-2].query(Footer))  # type: ignore[attr-defined]
    return " ".join(str(item.render()) for item in footers[0].query("FooterKey"))


async def test_abort_focuses_the_reason_and_enter_submits_what_was_typed(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    until = canary_at(5, samples=1)
    async with demo_app("healthy", journal=journal, freeze_at=until) as (app, pilot):
        await drive(app, pilot, until)
        await pilot.press("a")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        assert isinstance(app.focused, Input) and app.focused.id == "reason"
        await pilot.press(*"db migration stuck", "enter")
        app.session.clock.thaw()  # type: ignore[attr-defined]
        await drive(app, pilot, completed, operate=False)
        assert app.outcome == Outcome.ABORTED
    finished = next(rec for rec in journal_lines(journal) if rec["type"] == "finished")
    assert finished["outcome"] == "aborted"
    assert "db migration stuck" in str(finished["reason"]) and "aborted by" not in str(finished["reason"])


async def test_a_burst_of_keys_while_the_sign_off_dialog_opens_is_kept_whole(tmp_path: Path) -> None:
    """`s` and the note typed at once, before the dialog has painted: no key is lost or taken as a
    command (the space was `pause`, the `a` was `abort`)."""
    journal = tmp_path / "j.jsonl"
    async with demo_app("healthy", journal=journal) as (app, pilot):
        await drive(app, pilot, at_gates, operate=False)
        gate_id = app._gate_to_sign()
        assert gate_id is not None
        note = "ice reviewed with DBA"
        # as a terminal delivers a paste or a fast typist: all queued before any is handled
        for char in ["s", *note, "\r"]:
            key = {"\r": "enter", " ": "space"}.get(char, char)
            app.post_message(events.Key(key, None if key == "enter" else char))
        await pilot.pause()
        await drive(app, pilot, lambda m: m.gates[gate_id].status == GateStatus.SIGNED, operate=False)
        assert app.model.paused_by is None
    signed = [rec for rec in journal_lines(journal) if rec["type"] == "gate_signed_off"]
    assert signed[0]["note"] == note


async def test_footer_in_a_dialog_shows_the_dialogs_keys(tmp_path: Path) -> None:
    until = canary_at(5, samples=1)
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", freeze_at=until) as (app, pilot):
        await drive(app, pilot, until)
        main_keys = footer_keys(app)
        assert "Next" in main_keys and "Abort" in main_keys  # p: proceed
        await pilot.press("a")
        await pilot.pause()
        keys = footer_keys(app)
        assert "Cancel" in keys and "Abort" in keys  # esc cancels, enter confirms the abort
        assert "Next" not in keys and "Sign" not in keys and "History" not in keys
        assert "Rollback" in keys  # and it works (below)


async def test_rollback_works_from_inside_a_dialog(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    until = canary_at(5, samples=1)
    async with demo_app("healthy", journal=journal, freeze_at=until) as (app, pilot):
        await drive(app, pilot, until)
        await pilot.press("q")  # a dialog without a text field: plain r
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("r")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        app.session.clock.thaw()  # type: ignore[attr-defined]
        await drive(app, pilot, rolled_back, operate=False)
        assert app.model.rollback is not None and app.model.rollback.actor == ACTOR


async def test_rollback_works_while_typing_a_reason(tmp_path: Path) -> None:
    """In a text field `r` is a letter; ctrl+r rolls back from there (the footer says so)."""
    until = canary_at(5, samples=1)
    async with demo_app("healthy", journal=tmp_path / "j.jsonl", freeze_at=until) as (app, pilot):
        await drive(app, pilot, until)
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmModal)
        assert app.screen.query_one("#reason", Input).value == "r"
        assert "^r Rollback" in footer_keys(app)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        app.session.clock.thaw()  # type: ignore[attr-defined]
        await drive(app, pilot, rolled_back, operate=False)
        assert app.outcome == Outcome.ROLLED_BACK


async def test_sign_off_dialog_note_has_focus(tmp_path: Path) -> None:
    async with demo_app("healthy", journal=tmp_path / "j.jsonl") as (app, pilot):
        await drive(app, pilot, at_gates, operate=False)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SignOffModal)
        assert isinstance(app.focused, Input) and app.focused.id == "note"


async def test_a_tick_after_the_last_screen_is_gone_does_nothing(tmp_path: Path) -> None:
    """The repaint timer's last tick can come while the app quits, after its last screen is gone:
    it raised ScreenStackError from the key refresh (1 in a random-order run), a traceback on quit."""
    async with demo_app("healthy", journal=tmp_path / "j.jsonl") as (app, pilot):
        await pilot.pause()
        assert app.screen_stack
    assert not app.screen_stack
    app._tick()  # no error: nothing to repaint
    assert app.check_action("rollback", ()) is False  # Textual asks while it shuts down, too
