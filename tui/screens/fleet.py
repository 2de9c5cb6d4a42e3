"""The fleet: every DeployRun the agent drives that the caller may see, refreshed as it goes.

One row per run: service, from → to, phase, canary weight, time in phase, the replica holding its
lease, and who else is attached. ``/`` filters (any column, case-insensitive), Enter opens the
dashboard on the highlighted run. The rows come from ``fetch`` (``AgentClient.runs``): the agent
lists only runs the caller's RBAC lets them ``list``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from core.agent.client import AgentError, FleetEntry
from core.domain import Outcome, Phase
from core.duration_text import format_duration
from tui.widgets import words
from tui.widgets.glyphs import OUTCOME_STYLE, PHASE_STYLE

#: who else watches comes before the replica's (long) name: at 80 columns the holder is what scrolls
COLUMNS = ("service", "from → to", "phase", "weight", "in phase", "attached", "lease holder")
#: phases where the canary weight is the news; elsewhere 0 % would read as "no traffic"
_WEIGHTED = {"canary", "paused", "rolling_back"}


def _phase_cell(row: FleetEntry) -> Text:
    if row.outcome:
        try:
            outcome = Outcome(row.outcome)
        except ValueError:
            return Text(row.outcome)
        return Text(words.outcome(outcome), style=OUTCOME_STYLE[outcome])
    try:
        phase = Phase(row.phase)
    except ValueError:
        return Text(words.phase(row.phase))
    return Text(words.phase(phase), style=PHASE_STYLE.get(phase, ""))


def row_cells(row: FleetEntry, now: datetime, me: str) -> tuple[object, ...]:
    since = ""
    if row.phase_since is not None and not row.outcome:
        since = format_duration(max(0.0, (now - row.phase_since).total_seconds()))
    others = [who for who in row.attached if who != me]
    weighted = row.weight or (row.phase in _WEIGHTED and not row.outcome)
    if row.lease_holder:
        holder: object = row.lease_holder
    elif row.outcome:
        holder = Text("–", style="dim")  # finished: nobody needs to hold it
    else:
        holder = Text("nobody", style="yellow")  # unfinished and undriven: worth a look
    return (
        Text(row.service or row.name, style="bold"),
        f"{row.version_from or '?'} → {row.version_to or '?'}",
        _phase_cell(row),
        Text(f"{row.weight} %" if weighted else "–", justify="right"),
        since,
        ", ".join(others) or "–",
        holder,
    )


def matches(row: FleetEntry, needle: str) -> bool:
    """The `/` filter: every word of it appears somewhere in the row (namespace and name included;
    the weight as "25%")."""
    hay = " ".join(
        str(v or "")
        for v in (
            row.namespace,
            row.name,
            row.service,
            row.version_from,
            row.version_to,
            row.phase,
            words.phase(row.phase),
            f"{row.weight}%",
            row.outcome,
            row.lease_holder,
            " ".join(row.attached),
        )
    ).lower()
    return all(word in hay for word in needle.lower().split())


class FleetTable(DataTable[object]):
    """The fleet's table: Enter opens the highlighted run, and the footer says so."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open", id="fleet.open")]


class FleetScreen(Screen[None]):
    """Runs the caller may see; Enter posts :class:`FleetScreen.Open` for the highlighted one."""

    DEFAULT_CSS = """
    FleetScreen #fleet-title { height: 1; background: $panel; padding: 0 1; }
    FleetScreen #fleet-table { height: 1fr; border: round $primary; }
    FleetScreen #fleet-filter { height: 3; display: none; }
    FleetScreen #fleet-filter.-shown { display: block; }
    FleetScreen #fleet-status { height: 1; padding: 0 1; color: $text-muted; }
    FleetScreen #fleet-status.-error { color: $error; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/", id="fleet.filter"),
        Binding("enter", "open", "Open", id="fleet.open.screen", show=False),
        Binding("escape", "clear_filter", "Clear filter", id="fleet.clear", show=False),
    ]

    class Open(Message):
        def __init__(self, namespace: str, name: str) -> None:
            super().__init__()
            self.namespace = namespace
            self.name = name

    def __init__(
        self,
        fetch: Callable[[], Awaitable[list[FleetEntry]]],
        *,
        title: str,
        me: str,
        now: Callable[[], datetime],
        period_s: float = 2.0,
    ) -> None:
        super().__init__()
        self.fetch = fetch
        self.title_text = title
        self.me = me
        self.now = now
        self.period_s = period_s
        self.rows: list[FleetEntry] = []
        self.filter = ""
        self.error: str | None = None
        self.refreshed_at: datetime | None = None
        self.fetches = 0  # completed refreshes (tests wait on it)

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="fleet-title")
        table = FleetTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Fleet"
        yield table
        yield Input(placeholder="filter: service, phase, version, holder, namespace…", id="fleet-filter")
        yield Static("", id="fleet-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.set_interval(self.period_s, self.reload, name="fleet-refresh")
        self.run_worker(self.reload(), group="fleet", exclusive=True)

    async def reload(self) -> None:
        try:
            rows = await self.fetch()
        except AgentError as exc:
            self.error = str(exc)
        else:
            self.error = None
            self.rows = sorted(rows, key=lambda r: (r.outcome is not None, r.service, r.namespace, r.name))
            self.refreshed_at = self.now()
        self.fetches += 1
        self.show()

    @property
    def visible(self) -> list[FleetEntry]:
        return [r for r in self.rows if matches(r, self.filter)] if self.filter else list(self.rows)

    def show(self) -> None:
        """Redraw the table from ``rows`` and the filter, keeping the highlighted run highlighted."""
        table: DataTable[object] = self.query_one(DataTable)
        keep = self.highlighted_key()
        table.clear()
        now = self.now()
        for row in self.visible:
            table.add_row(*row_cells(row, now, self.me), key=f"{row.namespace}/{row.name}")
        if keep is not None:
            try:
                table.move_cursor(row=table.get_row_index(keep), animate=False)
            except Exception:  # that run is filtered out or gone: the cursor stays at the top
                table.move_cursor(row=0, animate=False)
        self._status()

    def _status(self) -> None:
        status = self.query_one("#fleet-status", Static)
        status.set_class(self.error is not None, "-error")
        if self.error is not None:
            status.update(Text(f"cannot refresh: {self.error}"))
            return
        shown, total = len(self.visible), len(self.rows)
        parts = [f"{total} run{'s' if total != 1 else ''}"]
        if self.filter:
            parts = [f"{shown} of {total} runs match '{self.filter}'"]
        if total == 0:
            parts.append("none you may see (RBAC: list deployruns)")
        if self.refreshed_at is not None:
            parts.append(f"refreshed {self.refreshed_at:%H:%M:%S}")
        status.update(" · ".join(parts))

    def highlighted_key(self) -> str | None:
        table: DataTable[object] = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # no rows / cursor outside: nothing highlighted
            return None

    # --- keys -------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#fleet-filter", Input)
        box.add_class("-shown")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#fleet-filter", Input)
        box.value = ""
        box.remove_class("-shown")
        self.query_one(DataTable).focus()

    @on(Input.Changed, "#fleet-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter = event.value.strip()
        self.show()

    @on(Input.Submitted, "#fleet-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.remove_class("-shown")
        self.query_one(DataTable).focus()

    def action_open(self) -> None:
        key = self.highlighted_key()
        if key is None:
            self.notify("no run to open", severity="warning")
            return
        namespace, _, name = key.partition("/")
        self.post_message(self.Open(namespace, name))

    @on(DataTable.RowSelected, "#fleet-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()
