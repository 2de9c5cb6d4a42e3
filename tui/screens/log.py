"""The full event log on its own screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from tui.widgets.eventlog import EventLog
from tui.widgets.header import HeaderBar
from tui.widgets.model import DeckModel


class LogScreen(Screen[None]):
    live_commands = True
    BINDINGS = [Binding("escape,l", "app.pop_screen", "Back", id="log.back")]

    def __init__(self, model: DeckModel, header: HeaderBar) -> None:
        super().__init__()
        self.model = model
        self._header = header

    def compose(self) -> ComposeResult:
        yield self._header
        log = EventLog(self.model, max_lines=None, id="full-log")
        log.border_title = "Event log"
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(EventLog).focus()

    def refresh_panels(self, changed: set[str] | frozenset[str]) -> None:
        if not self.is_mounted or not self.is_attached:
            return  # not composed yet, or being torn down
        if "header" in changed:
            self._header.update_from_model()
        if "log" in changed:
            self.query_one(EventLog).update_from_model()

    def tick(self) -> None:
        self._header.update_from_model()
