"""Help: the keys, what the glyphs mean, and how the rollback rules read."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from core.domain import GateStatus
from tui.widgets.glyphs import GATE_GLYPH, GATE_LABEL

KEYS: list[tuple[str, str, str]] = [
    ("rollback", "r", "roll back now: one key, no dialog (POL-010: roll back if unsure)"),
    ("proceed", "p", "move one step: the next step gets its full window (confirms; 100 % asks for the name)"),
    ("promote_early", "P", "at 100 %: skip the rest of the bake (confirms, saying what is skipped)"),
    ("sign_off", "s", "sign off the selected manual gate"),
    ("pause", "space", "pause / resume the rollout"),
    ("abort", "a", "abort the deploy (asks for a reason)"),
    ("refresh_gates", "g", "re-check this step's automated gates now"),
    ("decide", "d", "answer a verification decision: roll back or fix forward"),
    ("verification", "v", "post-deploy verification view"),
    (
        "rollout_tree",
        "t",
        "ReplicaSets and pods, images, set vs actual weight; Enter on a pod: events and log",
    ),
    ("log", "l", "full event log (w filters warnings and errors)"),
    ("history", "h", "past deploys; Enter replays one"),
    ("help", "?", "this help"),
    ("quit", "q", "quit (the rollout stays where it is)"),
    ("", "ctrl+p", "command palette (switch demo scenario)"),
    ("", "↑ ↓ / enter", "select a gate / open its evidence"),
]


def help_text(keymap: dict[str, str] | None = None) -> Table:
    keymap = keymap or {}
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for binding_id, key, what in KEYS:
        table.add_row(keymap.get(binding_id, key), what)
    table.add_row("", "")
    table.add_row(Text("Gate glyphs", style="bold"), "")
    for status in GateStatus:
        glyph, style = GATE_GLYPH[status]
        table.add_row(Text(glyph, style=style), GATE_LABEL[status])
    table.add_row("", "")
    table.add_row(Text("Meters", style="bold"), "green: fine · amber: ≥ 70 % of the limit · red: fired")
    table.add_row("", "err Δ: canary − baseline error rate in percentage points; p99: canary / baseline")
    table.add_row("", "health: consecutive failed canary health checks; no data never counts as healthy")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help.close")]

    def __init__(self, keymap: dict[str, str] | None = None) -> None:
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide-dialog") as box:
            box.border_title = "Help"
            box.border_subtitle = "esc close"
            yield Static(help_text(self.keymap))

    def action_close(self) -> None:
        self.dismiss(None)
