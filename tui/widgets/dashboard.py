"""The main dashboard body, shared by the live screen and the history replay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Container, Horizontal, Vertical, VerticalScroll

from tui.widgets.charts import ChartsPanel
from tui.widgets.eventlog import EventLog
from tui.widgets.gates import GateChecklist
from tui.widgets.header import HeaderBar
from tui.widgets.ladder import StepLadder
from tui.widgets.meters import TriggerMeters
from tui.widgets.model import DeckModel
from tui.widgets.why import WhyPanel

ALL_PANELS = frozenset({"header", "gates", "ladder", "meters", "why", "charts", "log", "verify"})


class Dashboard(Container):
    """Header, gate checklist, canary ladder, meters, why-panel, charts and event log."""

    def __init__(
        self,
        model: DeckModel,
        now: Callable[[], datetime],
        driver: str,
        *,
        read_only: bool = False,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.model = model
        self.now = now
        self.driver = driver
        self.read_only = read_only
        self._ready = False

    def compose(self) -> ComposeResult:
        yield HeaderBar(self.model, self.now, self.driver, read_only=self.read_only, id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                gates = GateChecklist(self.model, id="gates")
                gates.border_title = "Gates"
                yield gates
                log = EventLog(self.model, id="events")
                log.border_title = "Events"
                yield log
            with VerticalScroll(id="right"):
                ladder = StepLadder(self.model, self.now, id="ladder")
                ladder.border_title = "Canary"
                yield ladder
                why = WhyPanel(self.model, id="why")
                yield why
                meters = TriggerMeters(self.model, id="meters")
                meters.border_title = "Rollback triggers"
                yield meters
                yield ChartsPanel(self.model, id="charts")

    def on_mount(self) -> None:
        self._ready = True  # children are composed before Mount, so queries succeed from here

    def on_unmount(self) -> None:
        self._ready = False

    def refresh_panels(self, changed: set[str] | frozenset[str]) -> None:
        # events and the 1 Hz tick can arrive before the panels exist or while they are torn down
        if not self._ready:
            return
        if "header" in changed:
            self.query_one(HeaderBar).update_from_model()
        if "gates" in changed:
            self.query_one(GateChecklist).update_from_model()
        if "ladder" in changed:
            self.query_one(StepLadder).update_from_model()
        if "meters" in changed:
            self.query_one(TriggerMeters).update_from_model()
        if "why" in changed:
            self.query_one(WhyPanel).update_from_model()
        if "charts" in changed:
            self.query_one(ChartsPanel).update_from_model()
        if "log" in changed:
            self.query_one(EventLog).update_from_model()

    def tick(self) -> None:
        """Once a second: countdowns move even when no event arrives."""
        if not self._ready:
            return
        self.query_one(HeaderBar).update_from_model()
        self.query_one(StepLadder).update_from_model()

    def rebuild(self, model: DeckModel) -> None:
        """Point every panel at another model (replay restart)."""
        self.model = model
        for widget in (HeaderBar, GateChecklist, StepLadder, TriggerMeters, WhyPanel, ChartsPanel, EventLog):
            self.query_one(widget).model = model  # type: ignore[attr-defined]
        self.query_one(GateChecklist)._signature = ()
        self.query_one(ChartsPanel)._seen = None
        self.query_one(EventLog).rebuild()
        self.refresh_panels(ALL_PANELS)
