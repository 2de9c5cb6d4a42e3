"""The fleet: every DeployRun the agent drives that the caller may see, refreshed as it goes.

One row per run: service, from → to, phase, canary weight, time in phase, who else is attached, and
the replica holding its lease. Every column is on screen down to 80 columns: the holder is shown by
its short name (the pod, or the identity, kept from its distinguishing end), and where a cell still
does not fit it is cut visibly (``…``, ``+2`` more people); the line under the table gives the
highlighted run's lease holder and everyone attached in full. ``/`` filters (any column, case-insensitive), Enter opens the
dashboard on the highlighted run. The rows come from ``fetch`` (``AgentClient.runs``): the agent
lists only runs the caller's RBAC lets them ``list``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import events, on
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

#: who else watches comes before the replica's (long) name: at 80 columns the holder is what narrows
COLUMNS = ("service", "from → to", "phase", "weight", "in phase", "attached", "lease holder")
#: the same headers where the wide ones do not fit
NARROW = ("service", "from→to", "phase", "weight", "in phase", "attached", "holder")
#: each column's cell padding (DataTable's cell_padding 1: one space either side)
PAD = 2
#: how narrow the shrinkable columns may get (service, attached, holder), never below their header
_MIN = {0: 8, 5: 8, 6: 6}
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


def short_holder(holder: str) -> str:
    """The replica, as briefly as it is named: a Lease holder is ``identity@host:pid`` and the
    identity by default ``deploydeck-agent/<pod>``, so the identity's last ``/`` part (the pod, or
    the ``--identity`` given)."""
    who = holder.split("@", 1)[0]
    return who.rsplit("/", 1)[-1] or holder


def row_cells(row: FleetEntry, now: datetime, me: str) -> tuple[Text, ...]:
    since = ""
    if row.phase_since is not None and not row.outcome:
        since = format_duration(max(0.0, (now - row.phase_since).total_seconds()))
    others = [who for who in row.attached if who != me]
    weighted = row.weight or (row.phase in _WEIGHTED and not row.outcome)
    if row.lease_holder:
        holder = Text(short_holder(row.lease_holder))
    elif row.outcome:
        holder = Text("–", style="dim")  # finished: nobody needs to hold it
    else:
        holder = Text("nobody", style="yellow")  # unfinished and undriven: worth a look
    return (
        Text(row.service or row.name, style="bold"),
        Text(f"{row.version_from or '?'} → {row.version_to or '?'}"),
        _phase_cell(row),
        Text(f"{row.weight} %" if weighted else "–", justify="right"),
        Text(since),
        Text(", ".join(others) or "–"),
        holder,
    )


def _others(text: Text, width: int) -> Text:
    """``bob, carol, dave`` in ``width`` cells: the names that fit, then ``+N`` for the rest."""
    names = text.plain.split(", ")
    for keep in range(len(names) - 1, -1, -1):
        shown = ", ".join(names[:keep]) + (" " if keep else "") + f"+{len(names) - keep}"
        if len(shown) <= width:
            return Text(shown, style=text.style)
    return Text(f"+{len(names)}"[:width], style=text.style)


def _cut(text: Text, width: int, column: int) -> Text:
    """One cell in ``width`` cells, visibly cut: the holder keeps its end (a pod's distinguishing
    suffix), who is attached says how many more, anything else ends in ``…``."""
    if text.cell_len <= width:
        return text
    if column == 6:
        return Text("…" + text.plain[-(width - 1) :], style=text.style)
    if column == 5:
        return _others(text, width)
    cut = text.copy()
    cut.truncate(width, overflow="ellipsis")
    return cut


def fit(rows: list[tuple[Text, ...]], room: int) -> tuple[tuple[str, ...], list[int], list[tuple[Text, ...]]]:
    """Headers, column widths and cells for a table ``room`` cells wide (padding included).

    Too wide, it takes in turn: the narrow headers and ``1.4.2→1.5.0``; the holder down to 6 cells;
    who is attached down to 8; the service down to 8. Narrower still, the table scrolls."""

    def natural(labels: tuple[str, ...], cells: list[tuple[Text, ...]]) -> list[int]:
        return [max([len(label)] + [c[i].cell_len for c in cells]) for i, label in enumerate(labels)]

    labels, widths = COLUMNS, natural(COLUMNS, rows)
    if sum(widths) + PAD * len(widths) > room:
        rows = [(r[0], Text(r[1].plain.replace(" → ", "→"), style=r[1].style), *r[2:]) for r in rows]
        labels, widths = NARROW, natural(NARROW, rows)
    over = sum(widths) + PAD * len(widths) - room
    for column in (6, 5, 0):
        if over <= 0:
            break
        floor = max(_MIN[column], len(labels[column]))
        take = min(over, max(0, widths[column] - floor))
        widths[column] -= take
        over -= take
    cells = [tuple(_cut(cell, widths[i], i) for i, cell in enumerate(r)) for r in rows]
    return labels, widths, cells


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
    FleetScreen #fleet-detail { height: auto; max-height: 5; padding: 0 1; }
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
        yield Static("", id="fleet-detail")
        yield Static("", id="fleet-status")
        yield Footer()

    def on_mount(self) -> None:
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
        now = self.now()
        shown = self.visible
        # the table's own width less its border; before the first layout, the terminal's less the
        # screen's margins
        room = (table.size.width or self.app.size.width - 2) - 2
        labels, widths, cells = fit([row_cells(row, now, self.me) for row in shown], room)
        table.clear(columns=True)
        for label, width in zip(labels, widths, strict=True):
            table.add_column(label, width=width)
        for row, cell in zip(shown, cells, strict=True):
            table.add_row(*cell, key=f"{row.namespace}/{row.name}")
        if keep is not None:
            try:
                table.move_cursor(row=table.get_row_index(keep), animate=False)
            except Exception:  # that run is filtered out or gone: the cursor stays at the top
                table.move_cursor(row=0, animate=False)
        self._status()
        self._detail()

    def on_resize(self, event: events.Resize) -> None:
        self.show()

    def _detail(self) -> None:
        """The highlighted run in full: what a narrow table cut (the holder, everyone attached)."""
        key = self.highlighted_key()
        row = next((r for r in self.visible if f"{r.namespace}/{r.name}" == key), None)
        detail = self.query_one("#fleet-detail", Static)
        if row is None:
            detail.update("")
            return
        people = [f"{who} (you)" if who == self.me else who for who in row.attached]
        detail.update(
            Text.assemble(
                (f"{row.namespace}/{row.name}", "bold"),
                f" · attached: {', '.join(people) or 'nobody'}",
                f" · lease holder {row.lease_holder or 'nobody'}",
                *((("\n" + row.message), "yellow"),) if row.message else (),
            )
        )

    @on(DataTable.RowHighlighted, "#fleet-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

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
