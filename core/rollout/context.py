"""What every step of a rollout shares: the deploy's state, event publishing, phase changes, naps.

The engine is the only writer of rollout state. It publishes typed events (journal first, then
subscribers); every wait goes through the Clock, so tests run hours in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from core.analysis import TriggerState
from core.domain import (
    CanaryMetrics,
    GateGroup,
    GateResult,
    GateStatus,
    Notification,
    Outcome,
    Phase,
    WorkloadSample,
)
from core.events import (
    AnalysisSample,
    CommandRefused,
    DecisionRequired,
    Event,
    EventBase,
    HealthChecked,
    LogLine,
    NotificationSent,
    Paused,
    PhaseChanged,
    RollbackTriggered,
    RunInterrupted,
    TrafficChanged,
    WindowStarted,
)
from core.plan import Plan
from core.policy import GateDef, gates_for
from core.ports import Journal, PortError
from core.rollout.progress import RolloutStatus, WindowProgress
from core.signoff import SignOffLedger
from core.world import World


class CommandResult(BaseModel):
    ok: bool
    reason: str = ""


@dataclass
class _Stop:
    kind: Literal["rollback", "abort"]
    actor: str
    reason: str


class _Stopped(Exception):
    """The flow ends here because a rollback or abort was requested."""


class _Blocked(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Window:
    observed_s: float = 0.0
    samples: list[AnalysisSample] = field(default_factory=list)
    blind: int = 0
    started_at: datetime | None = None
    counted: int = 0  # samples that counted toward the window, persisted
    # resumed after nobody watched: at least one fresh counted sample before the window may end
    fresh_needed: bool = False


class RolloutContext:
    """The state one deploy carries, and the plumbing every step uses (emit, phases, naps)."""

    def __init__(
        self,
        plan: Plan,
        world: World,
        *,
        actor: str,
        journal: Journal | None = None,
        interactive: bool = False,
        approvals: Iterable[str] = (),
        decision_default: Literal["rollback", "fix_forward"] = "rollback",
        deploy_id: str | None = None,
        plan_path: str = "",
        scenario: str | None = None,
        incident_dir: Path | None = None,
        notes: Iterable[str] = (),
        resume: RolloutStatus | None = None,
        prior_events: Iterable[Event] = (),
    ) -> None:
        self.plan = plan
        self.incident_dir = incident_dir or Path.cwd() / "incidents"
        self._notes = list(notes)  # how the world was set up, journaled with the deploy
        self.world = world
        self.clock = world.clock
        self.actor = actor
        self.journal = journal
        self.interactive = interactive
        self.decision_default = decision_default
        self.deploy_id = deploy_id or uuid.uuid4().hex[:12]
        self.plan_path = plan_path
        self.scenario = scenario

        self.phase = Phase.PENDING
        self.step_index: int | None = None
        self.weight = 0
        self.events: list[Event] = []
        self.window: WindowStarted | None = None
        self.last_analysis: AnalysisSample | None = None
        self.rollback_reason: RollbackTriggered | None = None
        self.outcome: Outcome | None = None

        self.catalogue: dict[str, GateDef] = {g.id: g for g in gates_for(plan)}
        self.gates: dict[str, GateResult] = {}
        self.ledger = SignOffLedger(plan, deployer=actor)
        self._approvals = list(approvals)

        self._subscribers: list[Callable[[Event], None]] = []
        self._flow: asyncio.Task[Outcome] | None = None
        self._stop: _Stop | None = None
        self._paused_from: Phase | None = None
        self._paused_by_engine_at: datetime | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._wake = asyncio.Event()
        #: set the moment the rollback procedure calls Cluster.rollback (the dashboard holds its
        #: relayouts until then, so a full-screen repaint never stands between `r` and the cluster)
        self.rollback_started = asyncio.Event()
        self._proceed_requested: str | None = None
        self._refresh_requested: str | None = None
        self._awaiting_proceed = False
        self._decision: str | None = None
        self._decision_pending: DecisionRequired | None = None
        self._triggers = TriggerState()
        self._baseline_ref: WorkloadSample | None = None
        self._last_metrics: CanaryMetrics | None = None
        self._started_at: datetime | None = None
        self._lock = asyncio.Lock()
        self._lease_lost: str | None = None  # set by the session's lease keeper (fencing)
        self._body: asyncio.Future[Outcome] | None = None
        # persisted progress (core.rollout.progress): written to the cluster before each action
        self.progress: RolloutStatus | None = None
        self._resume = resume  # the unfinished deploy this run continues, if any
        self._resume_window: WindowProgress | None = resume.window if resume else None
        self._paused_by: str | None = None
        self._win: _Window | None = None  # the window being observed (its blind extensions persist)
        self._prior_events = list(prior_events)  # that deploy's journal, for the records
        self._interrupted: tuple[str, int] | None = None  # (signal, exit code) once a signal stops us
        self._signal_journaled = False  # RunInterrupted written: only the stop's own persist follows
        self._halt_requested = asyncio.Event()  # set with either of those two: run() halts the body

    # --- observing ------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    @property
    def paused(self) -> bool:
        return self.phase == Phase.PAUSED

    @property
    def effective_phase(self) -> Phase:
        """The workflow phase, looking through PAUSED."""
        return self._paused_from if self.phase == Phase.PAUSED and self._paused_from else self.phase

    def pending_reasons(self) -> list[str]:
        reasons: list[str] = []
        group = _GROUP_OF.get(self.effective_phase)
        if group is not None:
            for gate in self.catalogue.values():
                if gate.group != group:
                    continue
                result = self.gates.get(gate.id)
                if result is None:
                    reasons.append(f"{gate.id}: not evaluated yet")
                elif not result.status.satisfied:
                    reasons.append(f"{gate.id}: {result.status.value.replace('_', ' ')} — {result.evidence}")
        if self.effective_phase == Phase.CANARY and self.last_analysis is not None:
            if self.last_analysis.verdict != "healthy":
                reasons.append(
                    f"last analysis: {self.last_analysis.no_data_reason or self.last_analysis.verdict}"
                )
        if self.effective_phase == Phase.CANARY and self.last_analysis is None:
            reasons.append("no analysis sample yet in this step")
        if self.paused:
            reasons.append("the rollout is paused")
        return reasons

    # --- plumbing --------------------------------------------------------------------

    async def _enter_pause(
        self, actor: str, reason: str, *, by_engine: bool = False, since: datetime | None = None
    ) -> None:
        """``since``: when the engine's pause began, if before now (a resume re-entering it)."""
        if self.phase == Phase.PAUSED:
            return
        self._paused_from = self.phase
        self._paused_by_engine_at = (since or self.clock.now()) if by_engine else None
        self._paused_by = actor
        self._resumed.clear()
        await self._emit(Paused, actor=actor, reason=reason)
        await self._set_phase(Phase.PAUSED, reason)

    async def _nap(self, seconds: float) -> None:
        """Sleep on the clock, waking early for a command (proceed, sign-off, decision)."""
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            # asyncio.wait, not `suppress(CancelledError): await task`: that also swallowed a
            # cancellation of this task arriving meanwhile (lease lost), and the driver drove on
            await asyncio.wait({sleeper, waker})

    async def _set_phase(self, phase: Phase, reason: str = "") -> None:
        previous = self.phase
        if previous == phase:
            return
        self.phase = phase
        try:
            await self._emit(PhaseChanged, previous=previous, reason=reason)
        except BaseException:
            self.phase = previous
            raise
        if self.progress is not None and self._lease_lost is None:
            # the step's own persists (intents, results) are the ones that must not fail
            # silently; a phase name that did not reach the cluster is only bookkeeping
            with contextlib.suppress(PortError):
                await self._persist()

    def _progress(self, what: str) -> Callable[[str], Any]:
        async def report(message: str) -> None:
            await self._emit(LogLine, message=f"{what}: {message}", source="cluster")

        return report

    async def _run_command(self, what: str, command: str, timeout_s: float) -> None:
        async def line(text: str) -> None:
            await self._emit(LogLine, message=text, source=what)

        outcome = await self.world.runner.run(command, timeout_s=timeout_s, on_line=line)
        if outcome.exit_code != 0:
            why = "timed out" if outcome.exit_code is None else f"exit {outcome.exit_code}"
            raise _Blocked(f"{what} failed ({why}): {outcome.detail or outcome.output[-200:]}")

    async def _notify(self, message: Notification) -> None:
        try:
            results = await self.world.notifier.notify(message)
        except Exception as exc:  # a notifier must never block a rollback or a completion
            await self._emit(
                NotificationSent, channel="team channel", delivered=False, detail=type(exc).__name__
            )
            return
        for result in results:
            await self._emit(
                NotificationSent,
                channel=result.channel,
                delivered=result.delivered,
                attempts=result.attempts,
                detail=result.detail,
            )

    # --- persisted progress -------------------------------------------------------------

    def _done(self, key: str) -> bool:
        """Whether this step result is already persisted (a resumed run skips it)."""
        return self.progress is not None and self.progress.done(key)

    async def _mark(self, key: str, result: str = "") -> None:
        """Persist a step result as done; from here on a resume skips it."""
        progress = self.progress
        completed = [*(progress.completed if progress else []), key]
        results = {**(progress.results if progress else {}), **({key: result} if result else {})}
        await self._persist(completed=completed, results=results, window=None, pending=None)

    def _halt_if_signalled(self) -> None:
        """A signal stops the engine where it stands: no journal line and no cluster write after it
        but the stop's own. Its cancellation can be swallowed once by a library (Python 3.11's
        wait_for), and the body then goes on until run() cancels it again; every action is persisted
        and journaled before it is made, so refusing those refuses the action."""
        if self._interrupted is not None and not self._signal_journaled:
            raise asyncio.CancelledError  # the body ends cancelled; run() journals the stop in its words

    async def _persist(self, **changes: Any) -> None:
        """Write the rollout's progress to the cluster: called BEFORE the action it announces."""
        self._halt_if_signalled()
        now = self.clock.now()
        base = self.progress or RolloutStatus(
            deploy_id=self.deploy_id,
            service=self.plan.service,
            namespace=self.plan.targets.production.namespace,
            version=self.plan.version.to,
            image=self.plan.version.image,
            plan_path=self.plan_path,
            started_at=self._started_at or now,
            updated_at=now,
        )
        pending = self._decision_pending
        fields: dict[str, Any] = {
            "driver": self.actor,
            "phase": self.effective_phase.value,
            "paused": self.phase == Phase.PAUSED,
            "engine_paused_at": self._paused_by_engine_at if self.phase == Phase.PAUSED else None,
            "paused_by": self._paused_by if self.phase == Phase.PAUSED else None,
            "step_index": self.step_index,
            "weight": self.weight,
            "sign_offs": self.ledger.to_records(),
            "baseline": self._baseline_ref,
            "decision_pending": (
                {"question": pending.question, "options": pending.options, "recommended": pending.recommended}
                if pending is not None
                else None
            ),
            "stop": (
                {**(base.stop.model_dump() if base.stop else {}), **self._stop.__dict__}
                if self._stop is not None
                else None
            ),
            "updated_at": now,
            **changes,
        }
        self.progress = RolloutStatus.model_validate({**base.model_dump(), **fields})
        await self.world.production.write_state(self.progress.to_state())

    async def _persist_window(self, win: _Window) -> None:
        """The window's persisted start, counted time and samples (never a remaining time)."""
        if self.window is None or win.started_at is None:
            return
        blind = (self.window.ends_at - win.started_at).total_seconds() - self.window.duration_s
        await self._persist(
            window=WindowProgress(
                name=self.window.name,
                step_index=self.step_index,
                started_at=win.started_at,
                duration_s=self.window.duration_s,
                observed_s=win.observed_s,
                samples=win.counted,
                blind_s=max(0.0, blind),
            )
        )

    async def _open_window(self, name: str, duration: float) -> _Window:
        """Start a window, or continue the one a resumed deploy was in from its persisted start.

        Time nobody watched counts toward the window (it is anchored to its start), but a window
        that ended meanwhile takes one fresh sample before anything is promoted.
        """
        now = self.clock.now()
        saved, self._resume_window = self._resume_window, None
        if saved is not None and saved.name == name and saved.step_index == self.step_index:
            elapsed = (now - saved.started_at).total_seconds() - saved.blind_s
            win = _Window(
                observed_s=min(duration, max(saved.observed_s, elapsed)),
                started_at=saved.started_at,
                counted=saved.samples,
                fresh_needed=True,
            )
            ends_at = max(saved.started_at + timedelta(seconds=duration + saved.blind_s), now)
        else:
            win = _Window(started_at=now)
            ends_at = now + timedelta(seconds=duration)
        event = await self._emit(WindowStarted, name=name, duration_s=duration, ends_at=ends_at)
        assert isinstance(event, WindowStarted)
        self.window = event
        self._win = win
        await self._persist_window(win)
        resumed = self._resume if saved is not None else None
        if resumed is not None and resumed.paused and resumed.engine_paused_at is not None:
            # paused for lack of data when its driver stopped: the "rollback if unsure" deadline
            # runs from that pause's start, not from this restart, in the very first write too (a
            # driver killed right after it would otherwise leave a third one the later start)
            await self._enter_pause(
                "engine",
                "resumed while paused for lack of data; never promoting blind",
                by_engine=True,
                since=resumed.engine_paused_at,
            )
        elif resumed is not None and resumed.paused:
            # a person paused it: a new driver does not overrule them (headless refuses to resume)
            await self._enter_pause(
                resumed.paused_by or "engine", "paused before the restart; resume to go on"
            )
        return win

    def _last_traffic(self) -> TrafficChanged | None:
        """The last traffic change journaled for this deploy (across a resume)."""
        for event in reversed(self.events):
            if isinstance(event, TrafficChanged):
                return event
        return None

    async def _emit(self, cls: type[EventBase], **data: Any) -> Event:
        if cls not in _AFTER_A_SIGNAL:
            self._halt_if_signalled()
        async with self._lock:
            event = cls(
                ts=self.clock.now(),
                phase=self.phase,
                deploy_id=self.deploy_id,
                step=self.step_index,
                **data,
            )
            if self.journal is not None:
                # journal first: a crash after this line still knows what was about to happen
                await self.journal.append(event.model_dump(mode="json"), durable=cls not in _OBSERVATIONS)
            self.events.append(event)  # type: ignore[arg-type]
        for callback in list(self._subscribers):
            callback(event)  # type: ignore[arg-type]
        return event  # type: ignore[return-value]


# What is still journaled once a signal has stopped the engine: the stop itself, and commands refused.
_AFTER_A_SIGNAL: frozenset[type[EventBase]] = frozenset({RunInterrupted, CommandRefused})

# Observations, not state changes: journaled without waiting for the disk.
_OBSERVATIONS: frozenset[type[EventBase]] = frozenset({AnalysisSample, LogLine, HealthChecked})

_GROUP_OF: dict[Phase, GateGroup] = {
    Phase.PREFLIGHT: GateGroup.PRE_DEPLOY,
    Phase.MIGRATIONS: GateGroup.MIGRATIONS,
    Phase.STAGING: GateGroup.STAGING,
    Phase.VERIFY: GateGroup.POST_DEPLOY,
}

_RULE_TITLES = {
    "error_rate": "error rate above baseline",
    "p99_latency": "p99 latency above baseline",
    "health": "consecutive failed health checks",
}


def _unevaluated(gate: GateDef) -> GateResult:
    if gate.automated:
        return gate.result(GateStatus.PENDING, "not evaluated yet")
    return gate.result(GateStatus.NEEDS_SIGN_OFF, "needs a person's sign-off")


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100.0


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0


def _public(url: str) -> str:
    """Scheme, host and path only: query strings may carry tokens."""
    return url.split("?", 1)[0]
