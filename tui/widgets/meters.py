"""Trigger meters: every rollback rule's current value against its limit, amber near it, red when fired."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from core.domain import Phase
from core.events import RuleReading
from tui.widgets.ladder import bar
from tui.widgets.model import DeckModel

#: fraction of the limit from which a meter turns amber
NEAR = 0.7

_NAMES = {
    "error_rate": "err Δ",
    "p99_latency": "p99",
    "health": "health",
    "judge": "judge",
    "staging_soak": "soak Δ",
}


def fraction(reading: RuleReading) -> float | None:
    """How far toward firing, 0..1+; ratios start counting at 1× (no regression)."""
    if reading.value is None:
        return None
    if reading.unit == "x":
        span = reading.limit - 1.0
        return (reading.value - 1.0) / span if span > 0 else 0.0
    return reading.value / reading.limit if reading.limit else 0.0


def value_text(reading: RuleReading) -> str:
    if reading.value is None:
        return "no data"
    if reading.unit == "pp":
        return f"{reading.value:+.2f} pp / {reading.limit:.2f}"
    if reading.unit == "x":
        return f"×{reading.value:.2f} / {reading.limit:.2f}"
    if reading.unit == "fails":
        return f"{reading.value:.0f}/{reading.limit:.0f}"
    return f"{reading.value:.2f} / {reading.limit:.2f} {reading.unit}"


def meter_style(reading: RuleReading) -> str:
    if reading.fired:
        return "bold red"
    frac = fraction(reading)
    if frac is None:
        return "yellow"
    return "bold yellow" if frac >= NEAR else "green"


def meter_line(reading: RuleReading, bar_width: int = 12) -> Text:
    style = meter_style(reading)
    frac = fraction(reading)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{_NAMES.get(reading.rule, reading.rule):<7}", style="bold")
    text.append(f"{value_text(reading):<18}", style=style)
    if frac is None:
        text.append("?" * bar_width, style="yellow")
    else:
        text.append_text(bar(frac, bar_width, style))
    if reading.fired:
        text.append(" FIRED", style="bold white on red")
    elif reading.needed > 1 and reading.consecutive:
        text.append(f" {reading.consecutive}/{reading.needed} in a row", style=style)
    elif frac is not None and frac >= NEAR:
        text.append(" near", style=style)
    return text


def meters_text(model: DeckModel) -> Text:
    sample = model.last_analysis
    if sample is None or not sample.readings:
        return Text("rollback rules appear with the first analysis sample", style="dim italic")
    lines = [meter_line(r) for r in sample.readings]
    if sample.verdict == "no_data" and sample.blind_intervals == 0 and sample.phase != Phase.STAGING:
        lines.append(
            Text(f"… waiting for requests: {sample.no_data_reason or ''} (the window waits)", style="cyan")
        )
    elif sample.verdict == "no_data":
        lines.append(
            Text(
                f"▲ no data: {sample.no_data_reason or 'metrics unavailable'} "
                f"(blind {sample.blind_intervals})",
                style="bold yellow",
            )
        )
    return Text("\n").join(lines)


class TriggerMeters(Static):
    DEFAULT_CSS = "TriggerMeters { height: auto; }"

    def __init__(self, model: DeckModel, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model

    def on_mount(self) -> None:
        self.update_from_model()

    def update_from_model(self) -> None:
        self.update(meters_text(self.model))
