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
    GateSignedOff,
    HealthChecked,
    LogLine,
    PhaseChanged,
    RollbackStep,
    RollbackTriggered,
    TrafficChanged,
    WindowStarted,
)
from core.history import describe_event
from tui.widgets import words

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
        self.out.write(f"{event.ts.strftime('%H:%M:%S')}  {words.phase(event.phase):<12} {text}\n")
        self.out.flush()

    def __call__(self, event: Event) -> None:
        match event:
            case PhaseChanged():
                self._line(
                    event,
                    f"▶ {words.phase(event.phase).upper()}" + (f" — {event.reason}" if event.reason else ""),
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
                    r.text if r.value is not None else f"{words.rule(r.rule)}: no data"
                    for r in event.readings
                )
                self._line(
                    event,
                    f"  [{format_duration(event.elapsed_s)}/{format_duration(event.window_s)}, "
                    f"{format_duration(remaining)} left] {event.verdict.upper().replace('_', ' '):<8} {meters}",
                )
            case RollbackTriggered():
                who = "automatic" if event.automatic else f"by {event.actor}"
                self._line(event, f"⟲ ROLLBACK ({who}) {words.rule(event.rule)}: {event.reason}")
            case RollbackStep():
                state = "✔" if event.ok else "FAILED"
                self._line(
                    event,
                    f"  rollback: {words.rollback_action(event.action)} {state} {event.detail}".rstrip(),
                )
            case GateSignedOff():
                note = f": {event.note}" if event.note else ""
                more = "" if event.complete else " (needs another signer)"
                self._line(event, f"  ✍ {event.gate_id} signed off by {event.actor}{more}{note}")
            case HealthChecked():
                status = "ok" if event.ok else "FAILED"
                code = f" HTTP {event.status}" if event.status is not None else ""
                self._line(event, f"  health {event.url}: {status}{code} {event.detail}".rstrip())
            case LogLine():
                self._line(
                    event, f"  {event.level if event.level != 'info' else ''} {event.message}".rstrip()
                )
            case Finished():
                self._line(event, f"■ finished: {words.outcome(event.outcome)} — {event.reason}")
            case _:
                # a sentence from the history's describer: never the event's JSON
                self._line(event, f"  {describe_event(event)}")
