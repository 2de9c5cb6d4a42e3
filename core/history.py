"""The deployment history: deploys, audit exports and DORA figures, all read from the journal."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.adapters.journal import JournalRead, read_journal
from core.domain import Outcome, Phase
from core.durations import format_duration
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


class HistoryError(Exception):
    """A deploy id that does not resolve, or a journal that cannot be read. Shown as is."""


class SignOffRecord(BaseModel):
    gate: str
    actor: str
    at: datetime
    note: str = ""


class DeploySummary(BaseModel):
    deploy_id: str
    service: str
    from_version: str
    to_version: str
    change_id: str
    change_class: str
    started: datetime
    finished: datetime | None = None
    outcome: Outcome | None = None  # None: still running, or the process died mid-deploy
    duration_s: float | None = None
    sign_offs: list[SignOffRecord] = Field(default_factory=list)
    actor: str
    rollback_rule: str | None = None
    rollback_triggered_at: datetime | None = None
    rolled_back_at: datetime | None = None
    max_weight: int = 0  # highest effective canary weight reached
    scenario: str | None = None
    events: int = 0

    @property
    def simulated(self) -> bool:
        """A run on the simulated world (its DeployStarted names a scenario): not a real deploy."""
        return self.scenario is not None

    @property
    def short_id(self) -> str:
        return self.deploy_id[:12]

    @property
    def restore_s(self) -> float | None:
        if self.rollback_triggered_at is None or self.rolled_back_at is None:
            return None
        return (self.rolled_back_at - self.rollback_triggered_at).total_seconds()


# --- grouping --------------------------------------------------------------------


def group_by_deploy(events: Iterable[Event]) -> dict[str, list[Event]]:
    """Events per deploy id, in journal order; events without an id are dropped."""
    groups: dict[str, list[Event]] = {}
    for event in events:
        if event.deploy_id:
            groups.setdefault(event.deploy_id, []).append(event)
    return groups


def summarize(events: Sequence[Event]) -> DeploySummary | None:
    """One deploy's summary, or None when its DeployStarted line is missing (damaged journal)."""
    start = next((e for e in events if isinstance(e, DeployStarted)), None)
    if start is None:
        return None
    summary = DeploySummary(
        deploy_id=start.deploy_id,
        service=start.service,
        from_version=start.from_version,
        to_version=start.to_version,
        change_id=start.change_id,
        change_class=start.change_class,
        started=start.ts,
        actor=start.actor,
        scenario=start.scenario,
        events=len(events),
    )
    for event in events:
        if isinstance(event, GateSignedOff):
            summary.sign_offs.append(
                SignOffRecord(gate=event.gate_id, actor=event.actor, at=event.ts, note=event.note)
            )
        elif isinstance(event, TrafficChanged):
            summary.max_weight = max(summary.max_weight, event.effective)
        elif isinstance(event, RollbackTriggered) and summary.rollback_triggered_at is None:
            summary.rollback_rule = event.rule
            summary.rollback_triggered_at = event.ts
        elif isinstance(event, PhaseChanged) and event.phase == Phase.ROLLED_BACK:
            summary.rolled_back_at = summary.rolled_back_at or event.ts
        elif isinstance(event, Finished):  # the last one wins: a resumed deploy has two (lease lost)
            summary.finished = event.ts
            summary.outcome = event.outcome
            summary.duration_s = event.duration_s or (event.ts - start.ts).total_seconds()
            if event.outcome == Outcome.ROLLED_BACK and summary.rolled_back_at is None:
                summary.rolled_back_at = event.ts
    return summary


def _read(source: str | Path | JournalRead) -> JournalRead:
    # a JournalRead: lines already fetched from another store (the PostgreSQL log)
    return source if isinstance(source, JournalRead) else read_journal(source)


def list_deploys(path: str | Path | JournalRead, *, simulated: bool | None = None) -> list[DeploySummary]:
    """Every deploy in the journal, oldest first. Damaged lines are skipped (see read_journal).

    simulated: False only real deploys, True only simulated runs, None both.
    """
    read = _read(path)
    out = [s for s in (summarize(evs) for evs in group_by_deploy(read.events).values()) if s]
    if simulated is not None:
        out = [s for s in out if s.simulated == simulated]
    return sorted(out, key=lambda s: s.started)


def resolve_deploy_id(ids: Iterable[str], wanted: str) -> str:
    ids = list(dict.fromkeys(ids))
    if wanted in ids:
        return wanted
    matches = [i for i in ids if i.startswith(wanted)]
    if not wanted or not matches:
        raise HistoryError(f"no deploy with id '{wanted}' in the journal")
    if len(matches) > 1:
        shown = ", ".join(matches[:5])
        raise HistoryError(f"'{wanted}' matches {len(matches)} deploys ({shown}); give more of the id")
    return matches[0]


def _identity_note(identity: str, groups: list[str]) -> str:
    # an auditor must see whether a name was checked by anyone or only typed in
    if identity == "self-declared":
        return " (self-declared)"
    return f" (authenticated; groups: {', '.join(groups)})" if groups else " (authenticated)"


def load_deploy(path: str | Path | JournalRead, deploy_id: str) -> list[Event]:
    """One deploy's events; deploy_id may be any unique prefix of the id."""
    read = _read(path)
    if not read.exists:
        raise HistoryError(f"{path}: no such journal")
    groups = group_by_deploy(read.events)
    return groups[resolve_deploy_id(groups, deploy_id)]


# --- DORA --------------------------------------------------------------------------


class DoraFigures(BaseModel):
    """DORA-style figures for one service over a window ending at `now`.

    Change failure rate counts deploys that reached an outcome in production
    (completed or rolled back); blocked and aborted runs are listed apart because a
    run stopped at a gate never changed production.
    """

    service: str
    window_days: float
    deploys: int  # finished deploys that started in the window
    completed: int
    rolled_back: int
    blocked: int
    aborted: int
    per_week: float  # completed deploys per week (deployment frequency)
    per_day: float
    change_failure_rate: float | None  # rolled_back / (completed + rolled_back); None: nothing shipped
    mttr_s: float | None  # mean time from the rollback trigger to rolled back
    lead_time_s: float | None  # median deploy start → complete (commit times are not in the log)


def dora(
    deploys: Sequence[DeploySummary], now: datetime, *, window_days: float = 28.0
) -> dict[str, DoraFigures]:
    from core.history_index import dora_rows

    rows = [d.model_dump(mode="json") | {"restore_s": d.restore_s} for d in deploys]
    return {k: DoraFigures(**v) for k, v in dora_rows(rows, now, window_days=window_days).items()}


def format_dora(figures: dict[str, DoraFigures]) -> str:
    from core.history_index import format_dora_rows

    return format_dora_rows({k: v.model_dump() for k, v in figures.items()})


# --- timeline and audit export -------------------------------------------------------


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def describe_event(event: Event) -> str:
    """One human line per event, for `log show` and incident timelines."""
    match event:
        case DeployStarted():
            return (
                f"deploy started by {event.actor}: {event.service} {event.from_version} → "
                f"{event.to_version} ({event.change_class} change {event.change_id})"
            )
        case PhaseChanged():
            why = f" ({event.reason})" if event.reason else ""
            return f"phase {event.previous} → {event.phase}{why}"
        case GateEvaluated():
            g = event.gate
            return f"gate {g.gate_id} [{g.policy}] {g.status}: {g.evidence}"
        case GateSignedOff():
            more = "" if event.complete else " (needs another signer)"
            note = f": {event.note}" if event.note else ""
            return f"gate {event.gate_id} signed off by {event.actor}{more}{note}"
        case GateOverridden():
            return f"gate {event.gate_id} OVERRIDDEN by {event.actor}: {event.reason}"
        case CommandRefused():
            return f"command {event.command} by {event.actor} refused: {event.reason}"
        case WindowStarted():
            return f"window '{event.name}' started ({format_duration(event.duration_s)})"
        case TrafficChanged():
            detail = f" ({event.detail})" if event.detail else ""
            return f"traffic → {event.effective} % (requested {event.requested} %) by {event.actor}{detail}"
        case AnalysisSample():
            fired = [r.text or r.rule for r in event.readings if r.fired]
            extra = f": {'; '.join(fired)}" if fired else ""
            if event.verdict == "no_data":
                extra = f": {event.no_data_reason or 'no data'}"
            return f"analysis at {event.weight} %: {event.verdict}{extra}"
        case RollbackTriggered():
            how = "automatic" if event.automatic else "manual"
            return f"ROLLBACK triggered ({how}, rule {event.rule}) by {event.actor}: {event.reason}"
        case RollbackStep():
            return f"rollback step {event.action}: {'ok' if event.ok else 'FAILED'} {event.detail}".rstrip()
        case Paused():
            return f"paused by {event.actor}: {event.reason}"
        case Resumed():
            return f"resumed by {event.actor}"
        case DecisionRequired():
            return f"decision required: {event.question} (recommended: {event.recommended})"
        case LogLine():
            return f"[{event.source}] {event.message}"
        case NotificationSent():
            state = "delivered" if event.delivered else "NOT delivered"
            return f"notification to {event.channel} {state} after {event.attempts} attempt(s) {event.detail}".rstrip()
        case Finished():
            why = f": {event.reason}" if event.reason else ""
            return f"finished: {event.outcome} after {format_duration(event.duration_s)}{why}"
        case RunResumed():
            return (
                f"run resumed by {event.actor} from {event.from_phase}"
                + (f" step {event.from_step}" if event.from_step is not None else "")
                + f" at {event.weight} % after {format_duration(event.unwatched_s)} unwatched"
                + (f" (was driven by {event.previous_driver})" if event.previous_driver else "")
            )
        case RunInterrupted():
            return f"run interrupted by {event.signal}: {event.reason} (left at {event.weight} %, resumable)"
        case LeaseLost():
            return f"lease lost: {event.reason} (stopped acting at {event.weight} %)"
        case HealthChecked():
            return f"health {event.url}: {'ok' if event.ok else 'FAIL'} {event.detail}".rstrip()
        case _:  # an event type newer than this describer: its name, never a crash
            return str(getattr(event, "type", type(event).__name__)).replace("_", " ")


def timeline(
    events: Sequence[Event], *, include_samples: bool = True, simulated: bool = False
) -> list[tuple[datetime, str, str]]:
    """(time, phase, text) rows; healthy analysis samples can be left out for brevity.

    simulated: the run's clock was the simulated world's (scaled or virtual): its duration says so.
    """
    rows = []
    for event in events:
        if not include_samples and isinstance(event, AnalysisSample) and event.verdict == "healthy":
            continue
        if isinstance(event, LogLine) and event.level == "debug":
            continue
        text = describe_event(event)
        if simulated and isinstance(event, Finished):
            text = text.replace(
                f"after {format_duration(event.duration_s)}",
                f"after {format_duration(event.duration_s)} (simulated time)",
                1,
            )
        rows.append((event.ts, str(event.phase), text))
    return rows


def _audit_data(events: Sequence[Event]) -> dict[str, object]:
    summary = summarize(events)
    return {
        "deploy": summary.model_dump(mode="json") if summary else None,
        "gates": [
            e.gate.model_dump(mode="json") | {"ts": e.ts.isoformat()}
            for e in events
            if isinstance(e, GateEvaluated)
        ],
        "sign_offs": [e.model_dump(mode="json") for e in events if isinstance(e, GateSignedOff)],
        "overrides": [e.model_dump(mode="json") for e in events if isinstance(e, GateOverridden)],
        "traffic_changes": [e.model_dump(mode="json") for e in events if isinstance(e, TrafficChanged)],
        "trigger_evaluations": [e.model_dump(mode="json") for e in events if isinstance(e, AnalysisSample)],
        "rollback": {
            "triggers": [e.model_dump(mode="json") for e in events if isinstance(e, RollbackTriggered)],
            "steps": [e.model_dump(mode="json") for e in events if isinstance(e, RollbackStep)],
        },
        "decisions": [e.model_dump(mode="json") for e in events if isinstance(e, DecisionRequired)],
        "operator_actions": [
            e.model_dump(mode="json") for e in events if isinstance(e, Paused | Resumed | CommandRefused)
        ],
        "notifications": [e.model_dump(mode="json") for e in events if isinstance(e, NotificationSent)],
        "outcome": next(
            (e.model_dump(mode="json") for e in reversed(events) if isinstance(e, Finished)), None
        ),
    }


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value:.2f} %"


def _ms(value: float | None) -> str:
    return "no data" if value is None else f"{value:.0f} ms"


def export_deploy(events: Sequence[Event], fmt: Literal["md", "json"] = "md", *, integrity: str = "") -> str:
    """The audit record of one deploy: every gate and its evidence, who signed, every traffic
    change, every trigger evaluation, the rollback steps and the outcome."""
    if fmt == "json":
        data = _audit_data(events)
        if integrity:
            data["journal_integrity"] = integrity
        return json.dumps(data, indent=2, ensure_ascii=False)
    if fmt != "md":
        raise HistoryError(f"unknown export format '{fmt}'; use md or json")
    summary = summarize(events)
    if summary is None:
        raise HistoryError("the journal has no deploy_started line for this deploy; cannot export")
    out: list[str] = [
        f"# Deploy audit record: {summary.service} {summary.from_version} → {summary.to_version}",
        "",
    ]
    out += [
        f"- Deploy id: `{summary.deploy_id}`",
        f"- Change: {summary.change_id} ({summary.change_class})",
        f"- Started by: {summary.actor} at {_ts(summary.started)} UTC",
        f"- Outcome: **{summary.outcome or 'unfinished'}**"
        + (f" at {_ts(summary.finished)} UTC" if summary.finished else ""),
        f"- Duration: {format_duration(summary.duration_s) if summary.duration_s is not None else '-'}",
        f"- Highest canary weight: {summary.max_weight} %",
    ]
    if integrity:
        out.append(f"- Journal integrity: {integrity}")
    out += [
        "",
        "## Gates",
        "",
        "| time | gate | policy | group | status | evidence | signed by |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in events:
        if isinstance(e, GateEvaluated):
            g = e.gate
            signers = ", ".join(f"{s.actor} ({_ts(s.at)})" for s in g.sign_offs) or "-"
            out.append(
                f"| {_ts(e.ts)} | {g.gate_id} | {g.policy} | {g.group} | {g.status} | {_md_cell(g.evidence)} | {signers} |"
            )
    details = [e.gate for e in events if isinstance(e, GateEvaluated) and e.gate.detail]
    if details:
        out += ["", "### Gate evidence (detail)", ""]
        for g in details:
            out += [f"**{g.gate_id}** ({g.status}):", "", "```", g.detail, "```", ""]
    out += ["", "## Sign-offs and overrides", ""]
    approvals = [e for e in events if isinstance(e, GateSignedOff | GateOverridden)]
    if not approvals:
        out.append("None.")
    for e in approvals:
        who = f"**{e.actor}**" + _identity_note(e.identity, e.groups)
        if isinstance(e, GateSignedOff):
            out.append(f"- {_ts(e.ts)} {e.gate_id} signed off by {who}" + (f": {e.note}" if e.note else ""))
        else:
            out.append(f"- {_ts(e.ts)} {e.gate_id} **overridden** by {who}: {e.reason}")
    out += [
        "",
        "## Traffic changes",
        "",
        "| time | requested | effective | by | detail |",
        "|---|---|---|---|---|",
    ]
    for e in events:
        if isinstance(e, TrafficChanged):
            out.append(
                f"| {_ts(e.ts)} | {e.requested} % | {e.effective} % | {e.actor} | {_md_cell(e.detail)} |"
            )
    out += [
        "",
        "## Trigger evaluations",
        "",
        "| time | weight | verdict | canary err | baseline err | canary p99 | baseline p99 | health | readings |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in events:
        if isinstance(e, AnalysisSample):
            readings = "; ".join(
                f"{r.rule}{' FIRED' if r.fired else ''}: {r.text or r.value}" for r in e.readings
            ) or (e.no_data_reason or "-")
            health = "-" if e.health_ok is None else ("ok" if e.health_ok else "FAIL")
            out.append(
                f"| {_ts(e.ts)} | {e.weight} % | {e.verdict} | {_pct(e.canary_error_rate)} | "
                f"{_pct(e.baseline_error_rate)} | {_ms(e.canary_p99_ms)} | {_ms(e.baseline_p99_ms)} | "
                f"{health} | {_md_cell(readings)} |"
            )
    triggers = [e for e in events if isinstance(e, RollbackTriggered)]
    steps = [e for e in events if isinstance(e, RollbackStep)]
    if triggers or steps:
        out += ["", "## Rollback", ""]
        for t in triggers:
            how = "automatic" if t.automatic else "manual"
            out.append(
                f"- {_ts(t.ts)} **{t.rule}** ({how}, by {t.actor}, at {t.weight_at_trigger} %): {t.reason}"
            )
            out += [f"  - {r.rule}: {r.text or r.value}" for r in t.readings if r.fired]
        for s in steps:
            out.append(f"- {_ts(s.ts)} step {s.action}: {'ok' if s.ok else 'FAILED'} {s.detail}".rstrip())
    notes = [e for e in events if isinstance(e, NotificationSent)]
    if notes:
        out += ["", "## Notifications", ""]
        out += [f"- {_ts(n.ts)} {describe_event(n)}" for n in notes]
    # the last finished line: a driver that lost its lease journals one, the resumed driver another
    finished = next((e for e in reversed(events) if isinstance(e, Finished)), None)
    out += ["", "## Outcome", ""]
    out.append(
        describe_event(finished)
        if finished
        else "The deploy has no finished line (still running or interrupted)."
    )
    return "\n".join(out) + "\n"
