"""The canary step ladder: done / current / next, the weight, time observed against the window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from core.domain import Phase
from tui.widgets import words
from tui.widgets.model import DeckModel, countdown

_PAST_CANARY = {Phase.VERIFY, Phase.COMPLETE}


def bar(fraction: float, width: int, style: str) -> Text:
    fraction = min(max(fraction, 0.0), 1.0)
    full = round(fraction * width)
    text = Text()
    text.append("━" * full, style=style)
    text.append("━" * (width - full), style="bright_black")
    return text


def split_text(model: DeckModel) -> Text:
    """Who serves the traffic, by version. Once the canary held 100 % the new version is the
    stable one: VERIFY and COMPLETE both say "1.5.0 100 % serving" (the engine's canary weight
    goes back to 0 there, which read as if the deploy had been undone)."""
    text = Text()
    started = model.started
    new = started.to_version if started else "new"
    old = started.from_version if started else "old"
    promoted = model.phase in _PAST_CANARY or (
        model.finished is not None and model.rollback is None and model.finished.outcome.value == "completed"
    )
    if promoted:
        text.append(f"{new} 100 % serving", style="bold")
        text.append("  (promoted to stable)", style="dim")
    elif model.rollback is not None and model.finished is not None:
        text.append(f"{old} 100 % serving", style="bold")
        text.append(f"  ({new} rolled back)", style="dim")
    else:
        text.append(f"canary {new} ", style="dim")
        text.append(f"{model.weight:>3} %", style="bold")
        text.append(f"  stable {old} ", style="dim")
        text.append(f"{100 - model.weight:>3} %", style="bold")
    return text


def ladder_text(model: DeckModel, now: datetime, width: int = 64) -> Text:
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
    text.append_text(split_text(model))
    window = model.window
    if window is not None and model.finished is None:
        elapsed, left, frozen = model.window_progress(now)
        head = f"{window.name}: "
        # held (paused or blind): the time with data, as the engine counts it
        times = f"{countdown(elapsed)} / {countdown(window.duration_s)}{' with data' if frozen else ''} "
        tail = f" {countdown(left)} left" + (" (held)" if frozen else "")
        # the bar gives way first: on a narrow panel the time left stays on screen
        room = min(20, width - len(head) - len(times) - len(tail))
        text.append(f"\n{head}", style="dim")
        text.append(times)
        if room >= 4:
            text.append_text(bar(elapsed / window.duration_s if window.duration_s else 1.0, room, "cyan"))
        text.append(tail, style="bold")
    elif model.finished is not None and model.rollback is None:
        text.append(f"   {words.outcome(model.finished.outcome)}", style="bold")
    elif model.phase in {Phase.PREFLIGHT, Phase.MIGRATIONS, Phase.STAGING, Phase.PENDING}:
        text.append("   canary not started", style="dim")
    return text


class StepLadder(Static):
    # cut, never wrapped: its height is its line count, so the per-second update needs no layout
    DEFAULT_CSS = "StepLadder { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, model: DeckModel, now: Callable[[], datetime], id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.now = now
        self._lines = -1

    def on_mount(self) -> None:
        self.update_from_model()

    def on_resize(self) -> None:
        self._lines = -1
        self.update_from_model()

    def update_from_model(self) -> None:
        text = ladder_text(self.model, self.now(), self.content_region.width or 64)
        lines = text.plain.count("\n")
        # a layout pass only when the height changes (the window line comes or goes), not per second
        self.update(text, layout=lines != self._lines)
        self._lines = lines
