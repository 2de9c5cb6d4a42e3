"""The headless runner: events as JSON Lines (--json) or as a readable progress log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

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
    RunInterrupted,
    RunResumed,
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
                blind = ""
                if event.verdict == "no_data":
                    blind = f"  (blind {event.blind_intervals}, {format_duration(event.blind_s or 0)})"
                    if event.rollback_in_s is not None:
                        blind += f"; rollback in {format_duration(event.rollback_in_s)} unless data returns"
                    remaining = max(0.0, event.window_s - event.elapsed_s)  # a blind window is held
                self._line(
                    event,
                    f"  [{format_duration(event.elapsed_s)}/{format_duration(event.window_s)}, "
                    f"{format_duration(remaining)} left] {event.verdict.upper().replace('_', ' '):<8} {meters}{blind}",
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
            case RunResumed():
                step = f" step {event.from_step}" if event.from_step is not None else ""
                self._line(
                    event,
                    f"↻ RESUMED deploy {event.deploy_id} from {event.from_phase}{step} at {event.weight} % "
                    f"after {format_duration(event.unwatched_s)} unwatched (last driver "
                    f"{event.previous_driver or '?'})",
                )
            case RunInterrupted():
                self._line(event, f"■ interrupted ({event.signal}): {event.reason}")
            case _:
                # a sentence from the history's describer: never the event's JSON
                self._line(event, f"  {describe_event(event)}")


# --- signals ------------------------------------------------------------------------------

#: exit codes of a run stopped by a signal (128 + the signal's number, as shells report it);
#: the rollout is left where it was and `deploydeck run` of the same plan resumes it
SIGNAL_EXIT_CODES: dict[str, int] = {"SIGHUP": 129, "SIGINT": 130, "SIGTERM": 143}

#: a second Ctrl-C within this many seconds exits at once, without the orderly stop
DOUBLE_INTERRUPT_S = 2.0


class SignalStop:
    """SIGTERM, SIGHUP and SIGINT stop the rollout where it stands (see `Rollout.interrupt`).

    The first signal asks the engine to stop acting; the caller then journals nothing more,
    releases the lease (Session.close) and exits with SIGNAL_EXIT_CODES. A second Ctrl-C within
    two seconds exits at once (the lease then expires on its own; the run is still resumable).
    """

    def __init__(self, rollout: Any, err: TextIO = sys.stderr, now: Callable[[], float] = time.monotonic):
        self.rollout = rollout
        self.err = err
        self.now = now
        self.exit_code: int | None = None
        self._last_sigint: float | None = None
        self._installed: list[int] = []

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> SignalStop:
        loop = loop or asyncio.get_running_loop()
        for name in SIGNAL_EXIT_CODES:
            number = getattr(signal, name, None)
            if number is None:  # SIGHUP does not exist on Windows
                continue
            try:
                loop.add_signal_handler(number, self.received, name)
            except (NotImplementedError, RuntimeError):
                continue
            self._installed.append(number)
        return self

    def remove(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        loop = loop or asyncio.get_running_loop()
        for number in self._installed:
            loop.remove_signal_handler(number)
        self._installed.clear()

    def received(self, name: str) -> None:
        now = self.now()
        if name == "SIGINT":
            if self._last_sigint is not None and now - self._last_sigint < DOUBLE_INTERRUPT_S:
                self.err.write("second Ctrl-C: exiting at once (the lease expires on its own; resumable)\n")
                self.err.flush()
                os._exit(SIGNAL_EXIT_CODES["SIGINT"])
            self._last_sigint = now
        if self.exit_code is not None:
            return
        code = SIGNAL_EXIT_CODES[name]
        if self.rollout.interrupt(name, code):
            self.exit_code = code
            self.err.write(
                f"{name}: stopping where the rollout stands, releasing the lease; "
                "run the same plan again to resume (Ctrl-C again within 2 s to exit at once)\n"
            )
            self.err.flush()


async def run_headless(session: Any, printer: Callable[[Event], None]) -> int:
    """Run the session's rollout with the printer and the signal handlers; the exit code.

    The caller closes the session (that releases the lease) whatever happens.
    """
    from core.domain import EXIT_CODES

    session.rollout.subscribe(printer)
    stop = SignalStop(session.rollout).install()
    try:
        outcome = await session.rollout.run()
    finally:
        stop.remove()
    if stop.exit_code is not None and session.rollout.interrupted is not None:
        return stop.exit_code
    return EXIT_CODES[outcome]
