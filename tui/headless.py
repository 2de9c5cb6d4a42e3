"""The headless runner: events as JSON Lines (--json) or as a readable progress log."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from core.durations import format_duration
from core.events import (
    AnalysisSample,
    Event,
    Finished,
    GateEvaluated,
    LogLine,
    PhaseChanged,
    RollbackTriggered,
    TrafficChanged,
    WindowStarted,
)

_GLYPH = {
    "pass": "✔",
    "fail": "✘",
    "pending": "…",
    "running": "⟳",
    "error": "!",
    "needs_sign_off": "✍",
    "signed": "✔",
    "overridden": "⚑",
    "skipped": "–",
}


class JsonPrinter:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        self.out.write(json.dumps(event.model_dump(mode="json"), separators=(",", ":")) + "\n")
        self.out.flush()


class ProgressPrinter:
    """One line per thing a release manager cares about; windows show a countdown per sample."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.window: WindowStarted | None = None

    def _line(self, event: Event, text: str) -> None:
        self.out.write(f"{event.ts.strftime('%H:%M:%S')}  {event.phase.value:<12} {text}\n")
        self.out.flush()

    def __call__(self, event: Event) -> None:
        match event:
            case PhaseChanged():
                self._line(
                    event, f"▶ {event.phase.value.upper()}" + (f" — {event.reason}" if event.reason else "")
                )
            case GateEvaluated():
                g = event.gate
                who = ""
                if g.sign_offs:
                    who = " (signed: " + ", ".join(s.actor for s in g.sign_offs) + ")"
                self._line(
                    event,
                    f"  {_GLYPH.get(g.status.value, '?')} {g.gate_id:<26} {g.policy:<8} {g.evidence}{who}",
                )
            case WindowStarted():
                self.window = event
                self._line(
                    event,
                    f"⏱ {event.name}: {format_duration(event.duration_s)} window, ends {event.ends_at.strftime('%H:%M:%S')}",
                )
            case TrafficChanged() if event.applied:
                self._line(
                    event,
                    f"⇄ canary traffic {event.effective} % (requested {event.requested} %) {event.detail}",
                )
            case AnalysisSample():
                remaining = 0.0
                if self.window is not None:
                    remaining = max(0.0, (self.window.ends_at - event.ts).total_seconds())
                meters = "  ".join(
                    r.text if r.value is not None else f"{r.rule}: no data" for r in event.readings
                )
                blind = ""
                if event.verdict == "no_data":
                    blind = f"  (blind {event.blind_intervals}, {format_duration(event.blind_s or 0)})"
                    if event.rollback_in_s is not None:
                        blind += f"; rollback in {format_duration(event.rollback_in_s)} unless data returns"
                    remaining = max(0.0, event.window_s - event.elapsed_s)  # a blind window is held
                self._line(
                    event,
                    f"  [{format_duration(event.elapsed_s)}/{format_duration(event.window_s)}, "
                    f"{format_duration(remaining)} left] {event.verdict.upper():<8} {meters}{blind}",
                )
            case RollbackTriggered():
                who = "automatic" if event.automatic else f"by {event.actor}"
                self._line(event, f"⟲ ROLLBACK ({who}) rule {event.rule}: {event.reason}")
            case LogLine():
                self._line(
                    event, f"  {event.level if event.level != 'info' else ''} {event.message}".rstrip()
                )
            case Finished():
                self._line(event, f"■ finished: {event.outcome.value} — {event.reason}")
            case _:
                detail = {
                    k: v
                    for k, v in event.model_dump(mode="json").items()
                    if k not in {"ts", "phase", "deploy_id", "type", "step"}
                }
                self._line(event, f"  {event.type}: {json.dumps(detail, ensure_ascii=False)[:160]}")
