"""One gate in full: evidence, detail, its status history and who signed."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.widgets.glyphs import GATE_GLYPH, GATE_LABEL
from tui.widgets.model import GROUP_TITLES, GateView


def gate_detail_text(view: GateView) -> Text:
    gate = view.result
    glyph, style = GATE_GLYPH[gate.status]
    text = Text()
    text.append(f"{glyph} {gate.title}\n", style="bold")
    text.append(f"id {gate.gate_id} · policy {gate.policy} · {GROUP_TITLES[gate.group]} · ", style="dim")
    text.append(GATE_LABEL[gate.status] + "\n\n", style=style)
    text.append("Evidence\n", style="bold underline")
    text.append((gate.evidence or "(none)") + "\n")
    if gate.detail and gate.detail != gate.evidence:
        text.append("\nDetail\n", style="bold underline")
        text.append(gate.detail + "\n")
    if view.sign_offs:
        text.append("\nSign-offs\n", style="bold underline")
        for s in view.sign_offs:
            note = f" — {s.note}" if s.note else ""
            text.append(f"  {s.at.strftime('%Y-%m-%d %H:%M:%S')}  {s.actor}{note}\n")
    if view.overridden_by:
        text.append(f"\noverridden by {view.overridden_by}\n", style="bold magenta")
    text.append("\nHistory\n", style="bold underline")
    for ts, status, evidence in view.history:
        g, st = GATE_GLYPH[status]
        text.append(f"  {ts.strftime('%H:%M:%S')} ", style="dim")
        text.append(f"{g} {GATE_LABEL[status]:<9}", style=st)
        text.append(f" {evidence}\n")
    if gate.checked_at:
        text.append(f"\nlast checked {gate.checked_at.strftime('%Y-%m-%d %H:%M:%S')}", style="dim")
    return text


class GateDetailScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape,q", "dismiss_none", "Close", id="gate.close"),
        Binding("s", "sign", "Sign off", id="gate.sign"),
    ]

    def __init__(self, view: GateView, *, can_sign: bool) -> None:
        super().__init__()
        self.view = view
        self.can_sign = can_sign

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide-dialog") as box:
            box.border_title = f"Gate {self.view.result.gate_id}"
            box.border_subtitle = "s sign off · esc close" if self.can_sign else "esc close"
            yield Static(gate_detail_text(self.view))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def action_sign(self) -> None:
        if self.can_sign:
            self.dismiss("sign")
