"""Typed events: what the engine publishes to the UI, the headless printer and the journal.

Every event carries ``ts``, ``type`` and ``phase``; the union is discriminated on
``type`` so a journal line parses back into the same class.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from core import redact
from core.domain import GateResult, Outcome, Phase

#: how an actor's name is known: typed by the person (--as, $USER, the sign-off dialog) in the
#: embedded mode, or returned by a TokenReview when the agent authenticated the caller. A line
#: written before this field existed parses as self-declared, which is what it was.
IdentitySource = Literal["self-declared", "authenticated"]


class EventBase(BaseModel):
    # defer_build: each event type builds its validator on first use, not at import (start-up)
    model_config = ConfigDict(frozen=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _redacted(cls, data: Any) -> Any:
        # The redaction point for everything the engine says: an event is masked the moment it
        # is made, before the journal, a printer, the dashboard or a notification can see it.
        return redact.redact_obj(data)

    ts: datetime
    phase: Phase
    deploy_id: str = ""
    step: int | None = None  # canary step index while in CANARY


class DeployStarted(EventBase):
    type: Literal["deploy_started"] = "deploy_started"
    service: str
    namespace: str
    from_version: str
    to_version: str
    image: str
    change_id: str
    change_class: str
    security_sensitive: bool = False
    actor: str
    identity: IdentitySource = "self-declared"
    groups: list[str] = Field(default_factory=list)  # authenticated only
    plan_path: str = ""
    steps: list[int] = Field(default_factory=list)  # canary weights
    scenario: str | None = None


class PhaseChanged(EventBase):
    type: Literal["phase_changed"] = "phase_changed"
    previous: Phase
    reason: str = ""


class GateEvaluated(EventBase):
    type: Literal["gate_evaluated"] = "gate_evaluated"
    gate: GateResult


class GateSignedOff(EventBase):
    type: Literal["gate_signed_off"] = "gate_signed_off"
    gate_id: str
    actor: str
    identity: IdentitySource = "self-declared"
    groups: list[str] = Field(default_factory=list)  # authenticated only
    note: str = ""
    complete: bool = True  # False: the gate needs another signer


class GateOverridden(EventBase):
    type: Literal["gate_overridden"] = "gate_overridden"
    gate_id: str
    actor: str
    identity: IdentitySource = "self-declared"
    groups: list[str] = Field(default_factory=list)  # authenticated only
    reason: str


class CommandRefused(EventBase):
    type: Literal["command_refused"] = "command_refused"
    command: str
    actor: str
    identity: IdentitySource = "self-declared"
    groups: list[str] = Field(default_factory=list)  # authenticated only
    reason: str


class WindowStarted(EventBase):
    """An observation window (soak, canary step, verification) began; UIs count down to ends_at."""

    type: Literal["window_started"] = "window_started"
    name: str
    duration_s: float
    ends_at: datetime


class TrafficChanged(EventBase):
    type: Literal["traffic_changed"] = "traffic_changed"
    requested: int
    effective: int
    actor: str = "engine"
    detail: str = ""
    applied: bool = True  # False: the intent, journaled before the cluster is asked


class RuleReading(BaseModel):
    """One rollback rule at one moment: its value against its limit."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    rule: Literal["error_rate", "p99_latency", "health", "judge", "staging_soak"]
    value: float | None  # None: no data
    limit: float
    unit: str  # "pp", "x", "fails"
    fired: bool = False
    consecutive: int = 0
    needed: int = 1
    text: str = ""  # e.g. "canary 2.31 % vs baseline 0.40 %: +1.91 pp > 0.50 pp"


class AnalysisSample(EventBase):
    """One analysis interval: raw numbers for the charts and rule readings for the meters."""

    type: Literal["analysis"] = "analysis"
    weight: int
    canary_error_rate: float | None = None  # percent
    baseline_error_rate: float | None = None
    canary_p99_ms: float | None = None
    baseline_p99_ms: float | None = None
    canary_p50_ms: float | None = None
    canary_p95_ms: float | None = None
    canary_requests: float | None = None
    baseline_requests: float | None = None
    health_ok: bool | None = None
    verdict: Literal["healthy", "no_data", "fired"]
    no_data_reason: str | None = None
    readings: list[RuleReading] = Field(default_factory=list)
    elapsed_s: float = 0.0
    window_s: float = 0.0
    blind_intervals: int = 0  # consecutive intervals without data, this one included
    blind_s: float | None = None  # how long metrics have been continuously missing
    rollback_in_s: float | None = None  # paused blind: seconds left before the no-data rollback


class HealthChecked(EventBase):
    type: Literal["health_checked"] = "health_checked"
    url: str
    ok: bool
    status: int | None = None
    detail: str = ""


class RollbackTriggered(EventBase):
    """Why it rolled back: the rule, the numbers, the samples that fired it, and who."""

    type: Literal["rollback_triggered"] = "rollback_triggered"
    actor: str
    automatic: bool
    rule: str
    reason: str
    readings: list[RuleReading] = Field(default_factory=list)
    samples: list[AnalysisSample] = Field(default_factory=list)
    weight_at_trigger: int = 0


class RollbackStep(EventBase):
    type: Literal["rollback_step"] = "rollback_step"
    action: Literal["weight_reset", "undo_stable", "verify", "communicate", "document", "attempt_failed"]
    ok: bool
    detail: str = ""


class Paused(EventBase):
    type: Literal["paused"] = "paused"
    actor: str
    reason: str


class Resumed(EventBase):
    type: Literal["resumed"] = "resumed"
    actor: str
    blind_s: float | None = None  # set when the engine resumes by itself because data came back


class DecisionRequired(EventBase):
    """Verification failed: a person chooses rollback (recommended) or fix-forward."""

    type: Literal["decision_required"] = "decision_required"
    question: str
    options: list[str]
    recommended: str


class LogLine(EventBase):
    """Free text from long work (migrations, E2E, rollout progress)."""

    type: Literal["log"] = "log"
    level: Literal["debug", "info", "warning", "error"] = "info"
    source: str = "engine"
    message: str


class NotificationSent(EventBase):
    type: Literal["notification_sent"] = "notification_sent"
    channel: str
    delivered: bool
    attempts: int = 1
    detail: str = ""


class LeaseLost(EventBase):
    """The driver lost its lease (taken over, or not renewed in time): it stopped acting at once.

    Nothing was written to the cluster after this; the rollout stays where it was, for
    whoever holds the lease now (or for a resume).
    """

    type: Literal["lease_lost"] = "lease_lost"
    reason: str
    weight: int = 0


class RunResumed(EventBase):
    """A new driver continues an unfinished deploy (same deploy id) whose driver died or stopped.

    Distinct from ``resumed`` (a paused rollout going on): this one says from where, and for how
    long nobody was watching.
    """

    type: Literal["run_resumed"] = "run_resumed"
    from_phase: str
    from_step: int | None = None
    weight: int = 0
    window: str | None = None
    window_started_at: datetime | None = None
    unwatched_s: float = 0.0
    previous_driver: str = ""
    actor: str = ""
    completed: list[str] = Field(default_factory=list)


class RunInterrupted(EventBase):
    """A signal stopped the driver: the rollout is left where it was, the lease released, resumable.

    The deploy is not finished, so no ``finished`` line follows; the next ``run`` of the plan resumes it.
    """

    type: Literal["run_interrupted"] = "run_interrupted"
    signal: str
    reason: str
    weight: int = 0
    exit_code: int


class Finished(EventBase):
    type: Literal["finished"] = "finished"
    outcome: Outcome
    reason: str = ""
    duration_s: float = 0.0


Event = Annotated[
    DeployStarted
    | PhaseChanged
    | GateEvaluated
    | GateSignedOff
    | GateOverridden
    | CommandRefused
    | WindowStarted
    | TrafficChanged
    | AnalysisSample
    | HealthChecked
    | RollbackTriggered
    | RollbackStep
    | Paused
    | Resumed
    | DecisionRequired
    | LogLine
    | NotificationSent
    | LeaseLost
    | RunResumed
    | RunInterrupted
    | Finished,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))


def parse_event(data: dict[str, object]) -> Event:
    return EVENT_ADAPTER.validate_python(data)
