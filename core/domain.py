"""Small value types shared by the engine, the ports and the UI."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Phase(StrEnum):
    PENDING = "pending"
    PREFLIGHT = "preflight"
    MIGRATIONS = "migrations"
    STAGING = "staging"
    CANARY = "canary"
    VERIFY = "verify"
    COMPLETE = "complete"
    PAUSED = "paused"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    BLOCKED = "blocked"


class Outcome(StrEnum):
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    BLOCKED = "blocked"
    ABORTED = "aborted"
    ERROR = "error"


#: process exit code per outcome (DESIGN.md); 2 (bad input) never reaches the engine.
EXIT_CODES: dict[Outcome, int] = {
    Outcome.COMPLETED: 0,
    Outcome.ROLLED_BACK: 3,
    Outcome.BLOCKED: 4,
    Outcome.ABORTED: 5,
    Outcome.ERROR: 1,
}


class GateStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"
    RUNNING = "running"
    ERROR = "error"
    NEEDS_SIGN_OFF = "needs_sign_off"
    SIGNED = "signed"
    OVERRIDDEN = "overridden"
    SKIPPED = "skipped"

    @property
    def satisfied(self) -> bool:
        return self in {GateStatus.PASS, GateStatus.SIGNED, GateStatus.OVERRIDDEN, GateStatus.SKIPPED}


class GateGroup(StrEnum):
    PRE_DEPLOY = "pre_deploy"
    MIGRATIONS = "migrations"
    STAGING = "staging"
    POST_DEPLOY = "post_deploy"


class Frozen(BaseModel):
    # defer_build: validators are built on first use, not at import (the dashboard's start-up)
    model_config = ConfigDict(frozen=True, defer_build=True)


class SignOff(Frozen):
    actor: str
    at: datetime
    note: str = ""


class GateResult(Frozen):
    """What one gate found. Evidence is one line for the checklist; detail is the full text."""

    gate_id: str
    title: str
    policy: str
    group: GateGroup
    status: GateStatus
    evidence: str = ""
    detail: str = ""
    sign_offs: tuple[SignOff, ...] = ()
    checked_at: datetime | None = None


# --- what the ports return --------------------------------------------------


class WorkloadSample(Frozen):
    """One side (canary or baseline) of a metrics read. None means no data, never zero."""

    requests: float | None = None  # request count in the window
    error_rate: float | None = None  # fraction 0..1 of 5xx answers
    p50: float | None = None  # seconds
    p95: float | None = None
    p99: float | None = None
    reason: str | None = None  # why some value is missing


class CanaryMetrics(Frozen):
    canary: WorkloadSample
    baseline: WorkloadSample
    at: datetime
    reason: str | None = None  # the whole read failed (unreachable, PromQL error)


class QueryResult(Frozen):
    value: float | None
    reason: str | None = None  # set whenever value is None: "no data: ..."


class Alert(Frozen):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    state: Literal["active", "suppressed", "unprocessed"] = "active"
    summary: str = ""

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")


class ProbeResult(Frozen):
    url: str
    ok: bool
    status: int | None = None
    latency_ms: float | None = None
    detail: str = ""
    dependencies: dict[str, bool] = Field(default_factory=dict)


class WorkloadStatus(Frozen):
    stable_image: str | None
    canary_image: str | None
    stable_ready: int = 0
    stable_desired: int = 0
    canary_ready: int = 0
    canary_desired: int = 0
    weight: int = 0  # effective canary traffic percentage
    revision: int | None = None


class TrafficChange(Frozen):
    requested: int
    effective: int  # what the strategy can express, e.g. 1 of 10 replicas = 10
    detail: str = ""


class RollbackReport(Frozen):
    weight_reset: bool
    stable_restored: bool  # False when stable was already on the previous template
    to_revision: int | None = None
    detail: str = ""


class Notification(Frozen):
    title: str
    text: str
    level: Literal["info", "warning", "critical"] = "info"
    fields: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _redacted(cls, data: Any) -> Any:
        # leaves the process for a webhook: masked like an event (core.redact), whatever built it
        from core import redact

        return redact.redact_obj(data)


class NotifyResult(Frozen):
    channel: str
    delivered: bool
    attempts: int = 1
    detail: str = ""


class CheckRun(Frozen):
    name: str
    state: Literal["success", "failure", "pending", "error", "neutral", "skipped", "missing"]
    url: str = ""


class Review(Frozen):
    reviewer: str
    state: Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"]
    commit: str = ""
    submitted_at: datetime | None = None


class CommandOutcome(Frozen):
    command: str
    exit_code: int | None  # None: timed out or could not start
    output: str = ""
    duration_s: float = 0.0
    detail: str = ""
