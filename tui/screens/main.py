"""The main screen: the dashboard a release manager keeps open for the whole deploy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, OptionList

from tui.widgets.dashboard import Dashboard
from tui.widgets.gates import GateChecklist
from tui.widgets.model import DeckModel


class MainScreen(Screen[None]):
    live_commands = True

    def __init__(
        self, model: DeckModel, now: Callable[[], datetime], driver: str, *, read_only: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        self.now = now
        self.driver = driver
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        yield Dashboard(self.model, self.now, self.driver, read_only=self.read_only, id="dashboard")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(GateChecklist).focus()

    @property
    def dashboard(self) -> Dashboard:
        return self.query_one(Dashboard)

    def refresh_panels(self, changed: set[str] | frozenset[str]) -> None:
        self.dashboard.refresh_panels(changed)

    def tick(self) -> None:
        self.dashboard.tick()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        gate_id = event.option.id
        if gate_id and not gate_id.startswith("group:"):
            self.app.open_gate(gate_id)  # type: ignore[attr-defined]
