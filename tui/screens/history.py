"""Past deploys from the deployment log, and a replay of one through the live widgets."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from core.events import Event
from core.history import DeploySummary, HistoryError, list_deploys, load_deploy
from tui.widgets.dashboard import ALL_PANELS, Dashboard
from tui.widgets.glyphs import OUTCOME_STYLE
from tui.widgets.model import DeckModel, countdown

#: a replay plays in about this many refreshes, however long the deploy was
REPLAY_FRAMES = 120


def _outcome(summary: DeploySummary) -> Text:
    if summary.outcome is None:
        return Text("unfinished", style="yellow")
    return Text(summary.outcome.value, style=OUTCOME_STYLE[summary.outcome])


class HistoryScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,h", "app.pop_screen", "Back", id="history.back"),
        Binding("enter", "replay", "Replay", id="history.replay", show=True),
    ]

    def __init__(self, journal_path: Path | None, driver: str) -> None:
        super().__init__()
        self.journal_path = journal_path
        self.driver = driver
        self.summaries: list[DeploySummary] = []

    def compose(self) -> ComposeResult:
        title = Static(id="history-title")
        yield title
        table: DataTable[object] = DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Deploy history"
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(
            "started", "deploy", "service", "version", "class", "outcome", "took", "sign-offs", "why"
        )
        title = self.query_one("#history-title", Static)
        if self.journal_path is None:
            title.update(Text("no deployment log configured", style="yellow"))
            return
        try:
            self.summaries = list(reversed(list_deploys(self.journal_path)))
        except (HistoryError, OSError) as exc:
            title.update(Text(f"cannot read {self.journal_path}: {exc}", style="bold red"))
            return
        title.update(
            Text.assemble(
                (" deployment log ", "bold reverse"),
                f" {self.journal_path}",
                (f"   {len(self.summaries)} deploys · newest first · enter replays", "dim"),
            )
        )
        for s in self.summaries:
            signers = ", ".join(sorted({so.actor for so in s.sign_offs})) or "—"
            table.add_row(
                s.started.strftime("%Y-%m-%d %H:%M"),
                s.deploy_id[:12],
                s.service,
                f"{s.from_version} → {s.to_version}",
                s.change_class,
                _outcome(s),
                countdown(s.duration_s) if s.duration_s is not None else "—",
                signers,
                s.rollback_rule or "",
                key=s.deploy_id,
            )
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(str(event.row_key.value))

    def action_replay(self) -> None:
        table = self.query_one(DataTable)
        if not self.summaries:
            return
        row = table.cursor_row
        self._open(self.summaries[row].deploy_id)

    def _open(self, deploy_id: str) -> None:
        if self.journal_path is None:
            return
        try:
            events = load_deploy(self.journal_path, deploy_id)
        except (HistoryError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.push_screen(ReplayScreen(events, driver=self.driver))


class ReplayScreen(Screen[None]):
    """The stored events fed through the same model and widgets as a live deploy."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="replay.back"),
        # priority: the gate list would otherwise take home/end/space for itself
        Binding("space", "play", "Play/Pause", id="replay.play", priority=True),
        Binding("home", "restart", "Restart", id="replay.restart", priority=True),
        Binding("end", "to_end", "Jump to end", id="replay.end", priority=True),
    ]

    def __init__(self, events: list[Event], *, driver: str, play: bool = False) -> None:
        super().__init__()
        self.events = events
        self.driver = driver
        self.model = DeckModel()
        self.position = 0
        self._autoplay = play
        self._timer: Timer | None = None
        if not play:
            self._feed(len(events))

    def _now(self) -> datetime:
        return self.model.last_ts or (self.events[0].ts if self.events else datetime.now().astimezone())

    def _feed(self, count: int) -> None:
        end = min(len(self.events), self.position + count)
        for event in self.events[self.position : end]:
            self.model.apply(event)
        self.position = end

    def compose(self) -> ComposeResult:
        driver = self.events[0].actor if self.events and hasattr(self.events[0], "actor") else self.driver
        board = Dashboard(self.model, self._now, f"{driver} (replay)", read_only=True, id="dashboard")
        yield board
        yield Footer()

    def on_mount(self) -> None:
        self._subtitle()
        if self._autoplay:
            self.action_play()

    def _subtitle(self) -> None:
        self.query_one(Dashboard).border_subtitle = f"replay {self.position}/{len(self.events)} events"
        self.sub_title = f"replay {self.position}/{len(self.events)}"

    def _step(self) -> None:
        per_frame = max(1, len(self.events) // REPLAY_FRAMES)
        self._feed(per_frame)
        self.query_one(Dashboard).refresh_panels(ALL_PANELS)
        self._subtitle()
        if self.position >= len(self.events) and self._timer is not None:
            self._timer.stop()
            self._timer = None

    def action_play(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
            return
        if self.position >= len(self.events):
            self.action_restart()
        self._timer = self.set_interval(1 / 20, self._step)

    def action_restart(self) -> None:
        self.model = DeckModel()
        self.position = 0
        self.query_one(Dashboard).rebuild(self.model)
        self._subtitle()

    def action_to_end(self) -> None:
        self._feed(len(self.events))
        self.query_one(Dashboard).refresh_panels(ALL_PANELS)
        self._subtitle()
