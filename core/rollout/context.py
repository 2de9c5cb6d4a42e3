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
from datetime import datetime
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
    DecisionRequired,
    Event,
    EventBase,
    HealthChecked,
    LogLine,
    NotificationSent,
    Paused,
    PhaseChanged,
    RollbackTriggered,
    WindowStarted,
)
from core.plan import Plan
from core.policy import GateDef, gates_for
from core.ports import Journal
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

    async def _enter_pause(self, actor: str, reason: str, *, by_engine: bool = False) -> None:
        if self.phase == Phase.PAUSED:
            return
        self._paused_from = self.phase
        self._paused_by_engine_at = self.clock.now() if by_engine else None
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

    async def _emit(self, cls: type[EventBase], **data: Any) -> Event:
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
