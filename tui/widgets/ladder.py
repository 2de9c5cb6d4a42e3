"""The canary step ladder: done / current / next, the weight, time observed against the window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from core.domain import Phase
from tui.widgets.model import DeckModel, countdown

_PAST_CANARY = {Phase.VERIFY, Phase.COMPLETE}


def bar(fraction: float, width: int, style: str) -> Text:
    fraction = min(max(fraction, 0.0), 1.0)
    full = round(fraction * width)
    text = Text()
    text.append("━" * full, style=style)
    text.append("━" * (width - full), style="bright_black")
    return text


def ladder_text(model: DeckModel, now: datetime) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    steps = model.steps or [5, 25, 50, 100]
    current = model.step if model.phase in {Phase.CANARY, Phase.PAUSED} or model.rollback else None
    rolled = model.rollback is not None
    for i, weight in enumerate(steps):
        if i:
            done_link = (current is not None and i <= current) or model.phase in _PAST_CANARY
            text.append(" ━━ " if done_link else " ── ", style="green" if done_link else "dim")
        if model.phase in _PAST_CANARY or (current is not None and i < current):
            text.append(f"✔ {weight} %", style="green")
        elif current == i:
            text.append(f"◉ {weight} %", style="bold white on red" if rolled else "bold reverse yellow")
        else:
            text.append(f"○ {weight} %", style="dim")
    text.append("\n")
    text.append("canary ", style="dim")
    text.append(f"{model.weight:>3} %", style="bold")
    text.append("  stable ", style="dim")
    text.append(f"{100 - model.weight:>3} %", style="bold")
    window = model.window
    if window is not None and model.finished is None:
        elapsed, left, frozen = model.window_progress(now)
        text.append(f"\n{window.name}: ", style="dim")
        # held (paused or blind): the time with data, as the engine counts it
        text.append(f"{countdown(elapsed)} / {countdown(window.duration_s)}{' with data' if frozen else ''} ")
        text.append_text(bar(elapsed / window.duration_s if window.duration_s else 1.0, 20, "cyan"))
        text.append(f" {countdown(left)} left" + (" (held)" if frozen else ""), style="bold")
    elif model.finished is not None:
        text.append(f"   finished: {model.finished.outcome.value}", style="bold")
    elif model.phase in {Phase.PREFLIGHT, Phase.MIGRATIONS, Phase.STAGING, Phase.PENDING}:
        text.append("   canary not started", style="dim")
    return text


class StepLadder(Static):
    DEFAULT_CSS = "StepLadder { height: auto; }"

    def __init__(self, model: DeckModel, now: Callable[[], datetime], id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.now = now

    def on_mount(self) -> None:
        self.update_from_model()

    def update_from_model(self) -> None:
        self.update(ladder_text(self.model, self.now()))
