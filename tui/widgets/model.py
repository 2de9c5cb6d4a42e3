"""What the dashboard shows, folded from the engine's events.

Live sessions and history replays feed the same events through :class:`DeckModel`,
so a replayed deploy looks exactly like it did when it ran.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from core.domain import GateGroup, GateResult, GateStatus, Outcome, Phase, SignOff
from core.events import (
    AnalysisSample,
    CommandRefused,
    DecisionRequired,
    DeployStarted,
    Event,
    Finished,
    GateEvaluated,
    GateOverridden,
    GateSignedOff,
    HealthChecked,
    LeaseLost,
    LogLine,
    NotificationSent,
    Paused,
    PhaseChanged,
    Resumed,
    RollbackStep,
    RollbackTriggered,
    RunInterrupted,
    RunResumed,
    TrafficChanged,
    WindowStarted,
)
from tui.widgets import words

GROUP_ORDER: tuple[GateGroup, ...] = (
    GateGroup.PRE_DEPLOY,
    GateGroup.MIGRATIONS,
    GateGroup.STAGING,
    GateGroup.POST_DEPLOY,
)
GROUP_TITLES: dict[GateGroup, str] = {
    GateGroup.PRE_DEPLOY: "Pre-deploy",
    GateGroup.MIGRATIONS: "Migrations",
    GateGroup.STAGING: "Staging",
    GateGroup.POST_DEPLOY: "Post-deploy",
}

#: enough for a 15-minute window at a 1 s interval; older points scroll off the charts.
MAX_POINTS = 2000
MAX_LOG = 5000

Level = str  # "info" | "warning" | "error" | "debug"


@dataclass(frozen=True)
class LogEntry:
    ts: datetime
    level: Level
    text: str
    source: str = "engine"


@dataclass
class GateView:
    result: GateResult
    history: list[tuple[datetime, GateStatus, str]] = field(default_factory=list)
    sign_offs: list[SignOff] = field(default_factory=list)
    overridden_by: str | None = None

    @property
    def status(self) -> GateStatus:
        return self.result.status


@dataclass
class ChartPoint:
    t: float  # seconds since the deploy started
    canary: float | None
    baseline: float | None
    limit: float | None


class DeckModel:
    """Everything the widgets read. ``apply`` returns which panels changed."""

    def __init__(self) -> None:
        self.started: DeployStarted | None = None
        self.phase: Phase = Phase.PENDING
        self.phase_before_pause: Phase | None = None
        self.step: int | None = None
        self.weight: int = 0
        self.steps: list[int] = []
        self.gates: dict[str, GateView] = {}
        self.window: WindowStarted | None = None
        self.last_analysis: AnalysisSample | None = None
        self.traffic: deque[tuple[float, int]] = deque(maxlen=MAX_POINTS)
        self.errors: deque[ChartPoint] = deque(maxlen=MAX_POINTS)
        self.latency: deque[ChartPoint] = deque(maxlen=MAX_POINTS)
        self.verify_samples: deque[AnalysisSample] = deque(maxlen=MAX_POINTS)
        self.rollback: RollbackTriggered | None = None
        self.rollback_steps: list[RollbackStep] = []
        self.decision: DecisionRequired | None = None
        self.finished: Finished | None = None
        self.paused_by: str | None = None
        self.log: deque[LogEntry] = deque(maxlen=MAX_LOG)
        self.health_failures = 0
        self.last_ts: datetime | None = None
        # the weight the engine last asked the cluster for (argo's SetWeight); `weight` is what it applied
        self.weight_requested: int = 0
        # analysis intervals per step, as argo counts its AnalysisRun measurements: label → [✔, ✖, ?]
        self.step_checks: dict[str, list[int]] = {}
        # set by the UI the instant `r` is pressed, before the engine answers
        self.rollback_requested_by: str | None = None

    # --- folding ---------------------------------------------------------------

    def seconds(self, ts: datetime) -> float:
        if self.started is None:
            return 0.0
        return (ts - self.started.ts).total_seconds()

    def apply(self, event: Event) -> set[str]:
        changed: set[str] = {"log", "header"}
        self.last_ts = event.ts
        if event.step is not None:
            self.step = event.step
        match event:
            case DeployStarted():
                self.started = event
                self.steps = list(event.steps)
                self.traffic.append((0.0, 0))
                self._log(
                    event.ts,
                    "info",
                    f"deploy {event.deploy_id} started by {event.actor}: "
                    f"{event.service} {event.from_version} → {event.to_version}",
                )
                changed |= {"ladder", "charts", "gates"}
            case PhaseChanged():
                if event.phase == Phase.PAUSED and self.phase != Phase.PAUSED:
                    self.phase_before_pause = self.phase
                self.phase = event.phase
                if event.phase != Phase.CANARY and event.phase != Phase.PAUSED:
                    self.window = (
                        None if event.phase in {Phase.ROLLING_BACK, Phase.ROLLED_BACK} else self.window
                    )
                text = f"phase {words.phase(event.previous)} → {words.phase(event.phase)}"
                if event.phase == Phase.CANARY and event.step is not None and event.step < len(self.steps):
                    text += f" (step {event.step + 1}: {self.steps[event.step]} %)"
                if event.reason:
                    text += f": {event.reason}"
                level = "error" if event.phase in {Phase.ROLLING_BACK, Phase.BLOCKED} else "info"
                self._log(event.ts, level, text)
                changed |= {"ladder", "gates", "meters"}
            case GateEvaluated():
                self._gate(event)
                changed.add("gates")
            case GateSignedOff():
                view = self.gates.get(event.gate_id)
                if view is not None:
                    if not any(s.actor == event.actor for s in view.sign_offs):
                        view.sign_offs.append(SignOff(actor=event.actor, at=event.ts, note=event.note))
                    if event.complete and view.result.status == GateStatus.NEEDS_SIGN_OFF:
                        view.result = view.result.model_copy(update={"status": GateStatus.SIGNED})
                    view.history.append((event.ts, view.result.status, f"signed by {event.actor}"))
                more = "" if event.complete else " (needs another signer)"
                note = f": {event.note}" if event.note else ""
                self._log(
                    event.ts,
                    "info",
                    f"gate {self._title(event.gate_id)} signed off by {event.actor}{more}{note}",
                )
                changed.add("gates")
            case GateOverridden():
                view = self.gates.get(event.gate_id)
                if view is not None:
                    view.overridden_by = event.actor
                    view.result = view.result.model_copy(update={"status": GateStatus.OVERRIDDEN})
                    view.history.append((event.ts, GateStatus.OVERRIDDEN, f"overridden by {event.actor}"))
                self._log(
                    event.ts, "warning", f"gate {event.gate_id} overridden by {event.actor}: {event.reason}"
                )
                changed.add("gates")
            case CommandRefused():
                self._log(event.ts, "warning", f"{event.command} refused for {event.actor}: {event.reason}")
            case WindowStarted():
                self.window = event
                self._log(event.ts, "info", f"window '{event.name}' started ({_dur(event.duration_s)})")
                changed |= {"ladder"}
            case TrafficChanged(applied=False):
                self.weight_requested = event.requested
                self._log(event.ts, "debug", f"asking the cluster for canary {event.requested} %")
            case TrafficChanged():
                t = self.seconds(event.ts)
                if self.traffic:
                    # a step change, not a ramp: repeat the old weight at the same instant
                    self.traffic.append((t, self.traffic[-1][1]))
                self.weight = event.effective
                self.weight_requested = event.requested
                self.traffic.append((t, event.effective))
                detail = f" ({event.detail})" if event.detail else ""
                self._log(event.ts, "info", f"traffic → canary {event.effective} % by {event.actor}{detail}")
                changed |= {"ladder", "charts"}
            case AnalysisSample():
                self._sample(event)
                label = "verify" if event.phase == Phase.VERIFY else f"{event.weight} %"
                if event.phase in {Phase.CANARY, Phase.VERIFY, Phase.PAUSED}:
                    counts = self.step_checks.setdefault(label, [0, 0, 0])
                    counts[{"healthy": 0, "fired": 1}.get(event.verdict, 2)] += 1
                changed |= {"charts", "meters", "ladder", "verify"}
                if event.verdict == "no_data" and event.blind_intervals == 0 and event.phase != Phase.STAGING:
                    # the metrics answered with too few requests: the window waits, nothing is wrong
                    self._log(event.ts, "info", f"waiting for requests: {event.no_data_reason or ''}")
                elif event.verdict == "no_data":
                    self._log(
                        event.ts, "warning", f"no data: {event.no_data_reason or 'metrics unavailable'}"
                    )
                elif event.verdict == "fired":
                    fired = ", ".join(r.text or r.rule for r in event.readings if r.fired)
                    self._log(event.ts, "error", f"rule fired: {fired}")
            case HealthChecked():
                self.health_failures = 0 if event.ok else self.health_failures + 1
                if not event.ok:
                    status = f"HTTP {event.status}" if event.status is not None else "no answer"
                    self._log(event.ts, "warning", f"health check failed: {status} {event.detail}".rstrip())
            case RollbackTriggered():
                self.rollback = event
                self.window = None
                who = "automatic" if event.automatic else f"started by {event.actor}"
                self._log(
                    event.ts, "error", f"ROLLBACK ({who}) at {event.weight_at_trigger} %: {event.reason}"
                )
                changed |= {"why", "ladder", "meters"}
            case RollbackStep():
                self.rollback_steps.append(event)
                level = "info" if event.ok else "error"
                self._log(
                    event.ts,
                    level,
                    f"rollback: {words.rollback_action(event.action)} {'✔' if event.ok else 'FAILED'} {event.detail}",
                )
                if event.action == "weight_reset" and event.ok:
                    self._traffic_to(event.ts, 0)
                    changed.add("charts")
                changed |= {"why"}
            case Paused():
                self.paused_by = event.actor
                reason = f": {event.reason}" if event.reason else ""
                self._log(event.ts, "warning", f"paused by {event.actor}{reason}")
            case Resumed():
                self.paused_by = None
                self._log(event.ts, "info", f"resumed by {event.actor}")
            case DecisionRequired():
                self.decision = event
                self._log(
                    event.ts, "error", f"decision needed: {event.question} (recommended: {event.recommended})"
                )
                changed.add("verify")
            case LogLine():
                self._log(event.ts, event.level, event.message, event.source)
            case LeaseLost():
                self._log(event.ts, "error", f"LEASE LOST, stopped acting: {event.reason}", "lease")
            case RunResumed():
                self.weight = event.weight
                step = f" step {event.from_step}" if event.from_step is not None else ""
                self._log(
                    event.ts,
                    "warning",
                    f"RESUMED by {event.actor} from {event.from_phase}{step} at {event.weight} % after "
                    f"{_dur(event.unwatched_s)} unwatched (last driver {event.previous_driver or '?'})",
                    "resume",
                )
                changed |= {"ladder"}
            case RunInterrupted():
                self._log(event.ts, "warning", event.reason, event.signal)
            case NotificationSent():
                level = "info" if event.delivered else "warning"
                state = "sent" if event.delivered else "NOT delivered"
                self._log(
                    event.ts, level, f"notification {state} to {event.channel} ({event.attempts} attempts)"
                )
            case Finished():
                self.finished = event
                self.phase = event.phase
                self.window = None
                self.decision = None
                level = "info" if event.outcome == Outcome.COMPLETED else "error"
                reason = f": {event.reason}" if event.reason else ""
                self._log(event.ts, level, f"finished: {words.outcome(event.outcome)}{reason}")
                changed |= {"ladder", "why", "verify"}
        return changed

    def _title(self, gate_id: str) -> str:
        view = self.gates.get(gate_id)
        return (view.result.title or gate_id) if view is not None else gate_id

    def _gate(self, event: GateEvaluated) -> None:
        gate = event.gate
        view = self.gates.get(gate.gate_id)
        if view is None:
            view = GateView(result=gate)
            self.gates[gate.gate_id] = view
        previous = view.result.status if view.history else None
        view.result = gate
        for s in gate.sign_offs:
            if not any(o.actor == s.actor for o in view.sign_offs):
                view.sign_offs.append(s)
        if previous != gate.status or not view.history:
            view.history.append((event.ts, gate.status, gate.evidence))
            level = {GateStatus.FAIL: "error", GateStatus.ERROR: "error"}.get(gate.status, "info")
            status = words.gate_status(gate.status)
            # the evidence often is the status in words already ("needs a sign-off"): say it once
            said = status if gate.evidence.strip() in {"", status} else f"{status}: {gate.evidence}"
            self._log(event.ts, level, f"gate {gate.title or gate.gate_id} [{gate.policy}] {said}")

    def _sample(self, sample: AnalysisSample) -> None:
        self.last_analysis = sample
        if sample.phase == Phase.STAGING:
            return  # the soak runs on staging; the charts compare canary with production
        t = self.seconds(sample.ts)
        readings = {r.rule: r for r in sample.readings}
        err_limit = readings.get("error_rate")
        p99_limit = readings.get("p99_latency")
        err_line = None
        if sample.baseline_error_rate is not None:
            err_line = sample.baseline_error_rate + (err_limit.limit if err_limit else 0.5)
        p99_line = None
        if sample.baseline_p99_ms is not None:
            p99_line = sample.baseline_p99_ms * (p99_limit.limit if p99_limit else 1.5)
        self.errors.append(ChartPoint(t, sample.canary_error_rate, sample.baseline_error_rate, err_line))
        self.latency.append(ChartPoint(t, sample.canary_p99_ms, sample.baseline_p99_ms, p99_line))
        if sample.weight != self.weight and self.phase != Phase.STAGING:
            self._traffic_to(sample.ts, sample.weight)
        elif self.traffic:
            self.traffic.append((t, self.traffic[-1][1]))
        if sample.phase == Phase.VERIFY:
            self.verify_samples.append(sample)

    def _traffic_to(self, ts: datetime, weight: int) -> None:
        t = self.seconds(ts)
        if self.traffic:
            self.traffic.append((t, self.traffic[-1][1]))
        self.weight = weight
        self.traffic.append((t, weight))

    def _log(self, ts: datetime, level: Level, text: str, source: str = "engine") -> None:
        self.log.append(LogEntry(ts=ts, level=level, text=text, source=source))

    # --- questions the widgets ask ------------------------------------------------

    def gates_by_group(self) -> list[tuple[GateGroup, list[GateView]]]:
        out: list[tuple[GateGroup, list[GateView]]] = []
        for group in GROUP_ORDER:
            members = [g for g in self.gates.values() if g.result.group == group]
            if members:
                out.append((group, members))
        return out

    def restore_summary(self) -> str | None:
        """After a rollback, what its verification established, to sit beside the outcome."""
        verify = next((s for s in reversed(self.rollback_steps) if s.action == "verify"), None)
        if verify is None:
            return None
        if verify.ok:
            return None  # the outcome says it: rolled back and verified
        if verify.detail.startswith("traffic restored"):
            return verify.detail.replace(" (canary 0 %)", "").split(" (", 1)[0]
        return "SERVICE NOT RESTORED"

    def blind_sample(self) -> AnalysisSample | None:
        """The last sample, when it says the metrics are missing in the current window."""
        sample = self.last_analysis
        # a window never ends while blind, so a blind last sample belongs to the current window
        if sample is None or sample.verdict != "no_data" or self.window is None:
            return None
        return sample

    def blind_rollback_in(self, now: datetime) -> float | None:
        """Paused blind: seconds left before the engine rolls back for no data (its own countdown)."""
        sample = self.blind_sample()
        if sample is None or sample.rollback_in_s is None or self.phase != Phase.PAUSED:
            return None
        return max(0.0, sample.rollback_in_s - (now - sample.ts).total_seconds())

    def window_progress(self, now: datetime) -> tuple[float, float, bool]:
        """(seconds observed with data, seconds left, frozen) of the current window.

        Running, it follows the clock to the window's end. Paused or blind, the window does not
        advance: it shows the time that had data, as the engine counts it, not wall time.
        """
        window = self.window
        if window is None:
            return 0.0, 0.0, False
        sample = self.last_analysis
        same_window = sample is not None and sample.window_s == window.duration_s
        if self.phase == Phase.PAUSED or self.blind_sample() is not None:
            observed = sample.elapsed_s if same_window and sample is not None else 0.0
            return observed, max(0.0, window.duration_s - observed), True
        left = max(0.0, (window.ends_at - now).total_seconds())
        elapsed = min(max(window.duration_s - left, 0.0), window.duration_s)
        return elapsed, window.duration_s - elapsed, False

    @property
    def in_flight(self) -> bool:
        return self.started is not None and self.finished is None

    @property
    def outcome(self) -> Outcome | None:
        return self.finished.outcome if self.finished else None


def _dur(seconds: float) -> str:
    seconds = round(seconds)
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def countdown(seconds: float) -> str:
    seconds = max(0, round(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


__all__ = ["GROUP_ORDER", "GROUP_TITLES", "ChartPoint", "DeckModel", "GateView", "LogEntry", "countdown"]
