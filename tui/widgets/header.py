"""The header bar: what is being shipped, where the rollout stands, who drives, and the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from core.domain import Phase
from tui.widgets import words
from tui.widgets.glyphs import OUTCOME_STYLE, PHASE_STYLE
from tui.widgets.model import DeckModel, countdown


def header_text(model: DeckModel, now: datetime, driver: str, *, read_only: bool = False) -> Text:
    started = model.started
    line1 = Text(no_wrap=True, overflow="ellipsis")
    line1.append(" ◆ deploydeck ", style="bold reverse")
    if started is None:
        line1.append("  waiting for the engine…", style="dim")
    else:
        line1.append(f"  {started.service}", style="bold")
        line1.append(f"  {started.from_version} → ", style="")
        line1.append(started.to_version, style="bold")
        line1.append(f"   {started.change_id}", style="cyan")
        cls = started.change_class + (" · security" if started.security_sensitive else "")
        line1.append(f" ({cls})", style="dim")
        if started.scenario:
            line1.append(f"   scenario {started.scenario}", style="dim italic")
    line2 = Text(no_wrap=True, overflow="ellipsis")
    phase = model.phase
    line2.append(f" {phase.value.upper().replace('_', ' ')} ", style=PHASE_STYLE.get(phase, "") + " reverse")
    if phase in {Phase.CANARY, Phase.PAUSED} and model.step is not None and model.steps:
        line2.append(f" step {model.step + 1}/{len(model.steps)} · canary {model.weight} %", style="bold")
    if model.finished is not None:
        line2.append(
            f"  outcome: {words.outcome(model.finished.outcome)}", style=OUTCOME_STYLE[model.finished.outcome]
        )
        restore = model.restore_summary()
        if restore:
            line2.append(f" — {restore}", style="bold yellow" if "unknown" in restore else "bold")
    elif model.rollback is not None:
        who = "automatic" if model.rollback.automatic else f"started by {model.rollback.actor}"
        line2.append(f"  rolling back — {who}", style="bold white on red")
    elif model.rollback_requested_by is not None:
        line2.append(f"  rolling back — started by {model.rollback_requested_by}", style="bold white on red")
    elif model.paused_by:
        line2.append(f"  paused by {model.paused_by}", style="bold magenta")
    window = model.window
    rollback_in = model.blind_rollback_in(now)
    blind = model.blind_sample()
    if rollback_in is not None and blind is not None and model.finished is None:
        # paused blind: the countdown that matters is the engine's no-data rollback (POL-010)
        line2.append(f"   no data · rollback in {countdown(rollback_in)}", style="bold red")
        line2.append(f" unless data returns (blind {blind.blind_intervals})", style="yellow")
    elif window is not None and model.finished is None:
        _, left, frozen = model.window_progress(now)
        line2.append(f"   ◔ {countdown(left)} left", style="bold")
        line2.append(f" in {window.name}" + (" (held)" if frozen else ""), style="dim")
    line2.append(f"   driver {driver}", style="")
    if read_only:
        line2.append(" (read-only)", style="bold yellow")
    # a simulated run's clock is scaled or virtual: never pass it off as the time of day
    simulated = started is not None and started.scenario is not None
    line2.append(f"   {now.strftime('%H:%M:%S')} {'simulated' if simulated else 'UTC'}", style="dim")
    both = Text("\n").join([line1, line2])
    # each line is cut, never wrapped: a wrapped first line pushed the phase line out of the bar
    both.no_wrap = True
    both.overflow = "ellipsis"
    return both


class HeaderBar(Static):
    """Two lines; refreshed on every event and once a second for the countdown."""

    # each line is cut, never wrapped: a wrapped first line pushed the phase line out of the bar
    DEFAULT_CSS = "HeaderBar { height: 2; text-wrap: nowrap; text-overflow: ellipsis; }"

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

    def on_mount(self) -> None:
        self.update_from_model()

    def update_from_model(self) -> None:
        # two lines, always: no layout pass for the once-a-second clock (the idle dashboard's cost)
        self.update(header_text(self.model, self.now(), self.driver, read_only=self.read_only), layout=False)
