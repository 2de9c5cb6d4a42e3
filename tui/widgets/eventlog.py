"""The event log: newest last, with times; `w` toggles a warnings-and-errors-only filter."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import RichLog

from tui.widgets.glyphs import LEVEL_GLYPH
from tui.widgets.model import DeckModel, LogEntry

PROBLEMS = frozenset({"warning", "error"})


def entry_text(entry: LogEntry) -> Text:
    glyph, style = LEVEL_GLYPH.get(entry.level, (" ", ""))
    text = Text(no_wrap=False)
    text.append(entry.ts.strftime("%H:%M:%S "), style="dim")
    text.append(f"{glyph} ", style=style)
    if entry.source != "engine":
        text.append(f"[{entry.source}] ", style="cyan")
    text.append(entry.text, style=style if entry.level in PROBLEMS else "")
    return text


class EventLog(RichLog):
    """Appends only what is new since the last refresh; rebuilds when the filter changes."""

    BINDINGS = [Binding("w", "toggle_problems", "Warnings only", id="log.problems")]

    def __init__(
        self,
        model: DeckModel,
        *,
        max_lines: int | None = 2000,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            max_lines=max_lines,
            wrap=True,
            min_width=20,  # RichLog's default of 78 would not wrap in a narrow panel
            markup=False,
            highlight=False,
            auto_scroll=True,
            id=id,
            classes=classes,
        )
        self.model = model
        self.problems_only = False
        self._shown = 0  # entries of model.log already written
        self._last: LogEntry | None = None
        self._wrapped_at = 0

    def on_mount(self) -> None:
        self.rebuild()

    def on_resize(self, event: events.Resize) -> None:
        # written lines are wrapped at the width they were written with: rewrap on a new width
        width = self.scrollable_content_region.width
        if width != self._wrapped_at:
            self._wrapped_at = width
            self.call_after_refresh(self.rebuild)

    def _wanted(self, entries: Iterable[LogEntry]) -> list[LogEntry]:
        if self.problems_only:
            return [e for e in entries if e.level in PROBLEMS]
        return [e for e in entries if e.level != "debug"]

    def rebuild(self) -> None:
        self.clear()
        self._shown = len(self.model.log)
        self._last = self.model.log[-1] if self.model.log else None
        for entry in self._wanted(self.model.log):
            self.write(entry_text(entry))
        self.border_subtitle = (
            "warnings & errors only (w)" if self.problems_only else "all events (w: filter)"
        )

    def update_from_model(self) -> None:
        log = self.model.log
        if not log or log[-1] is self._last:
            return
        # the deque drops old entries once full, so count back from the newest instead of by index
        fresh: list[LogEntry] = []
        for entry in reversed(log):
            if entry is self._last:
                break
            fresh.append(entry)
        fresh.reverse()
        self._last = log[-1]
        for entry in self._wanted(fresh):
            self.write(entry_text(entry))

    def action_toggle_problems(self) -> None:
        self.problems_only = not self.problems_only
        self.rebuild()
