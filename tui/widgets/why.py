"""Why it rolled back: the rule, the numbers and the samples that fired it, and who did it."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from core.events import AnalysisSample
from tui.widgets import words
from tui.widgets.meters import meter_line
from tui.widgets.model import DeckModel


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value:.2f} %"


def _ms(value: float | None) -> str:
    return "no data" if value is None else f"{value:.0f}ms"


def sample_line(sample: AnalysisSample) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"  {sample.ts.strftime('%H:%M:%S')} ", style="dim")
    text.append(f"@{sample.weight:>3} %  ", style="dim")
    text.append(f"err {_pct(sample.canary_error_rate)} vs {_pct(sample.baseline_error_rate)}  ")
    text.append(f"p99 {_ms(sample.canary_p99_ms)} vs {_ms(sample.baseline_p99_ms)}")
    if sample.health_ok is False:
        text.append("  health ✘", style="red")
    if sample.verdict == "fired":
        text.append(" ◀", style="bold red")
    return text


def why_text(model: DeckModel) -> Text:
    rb = model.rollback
    if rb is None:
        return Text()
    lines: list[Text] = []
    title = Text(no_wrap=True, overflow="ellipsis")
    title.append(" WHY IT ROLLED BACK ", style="bold white on red")
    who = "automatic rollback" if rb.automatic else f"rolled back by {rb.actor}"
    title.append(f"  {who} at {rb.weight_at_trigger} % · {rb.ts.strftime('%H:%M:%S')}", style="bold")
    lines.append(title)
    rule = Text(no_wrap=False)
    rule.append(words.rule(rb.rule), style="bold red")
    rule.append(f": {rb.reason}")
    lines.append(rule)
    for reading in rb.readings:
        lines.append(Text("  ").append_text(meter_line(reading, bar_width=8)))
    if rb.samples:
        lines.append(Text(f"samples ({len(rb.samples)}):", style="dim"))
        lines.extend(sample_line(s) for s in rb.samples[-5:])
    if model.rollback_steps:
        steps = Text(no_wrap=False)
        steps.append("rollback ", style="dim")
        for st in model.rollback_steps:
            steps.append(f"{words.rollback_action(st.action)} ", style="")
            steps.append("✔  " if st.ok else "✘  ", style="green" if st.ok else "bold red")
        lines.append(steps)
    if model.finished is not None:
        lines.append(Text(f"outcome: {words.outcome(model.finished.outcome)}", style="bold"))
    return Text("\n").join(lines)


class WhyPanel(Static):
    DEFAULT_CSS = "WhyPanel { height: auto; display: none; } WhyPanel.-shown { display: block; }"

    def __init__(self, model: DeckModel, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model

    def on_mount(self) -> None:
        self.update_from_model()

    def update_from_model(self) -> None:
        self.set_class(self.model.rollback is not None, "-shown")
        if self.model.rollback is not None:
            self.update(why_text(self.model))
