"""Rollback's Communicate and Document steps: the channel message and the incident record.

Both are built only from the deploy's events, so what people read is exactly what
the journal says happened.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from core.domain import GateStatus, Notification, Phase
from core.durations import format_duration
from core.events import (
    AnalysisSample,
    DeployStarted,
    Event,
    Finished,
    GateEvaluated,
    GateOverridden,
    GateSignedOff,
    Paused,
    PhaseChanged,
    Resumed,
    RollbackStep,
    RollbackTriggered,
    TrafficChanged,
)
from core.history import timeline


def _ts(event: Event) -> str:
    return event.ts.strftime("%Y-%m-%d %H:%M:%S")


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value:.2f} %"


def _ms(value: float | None) -> str:
    return "no data" if value is None else f"{value:.0f} ms"


def _num(value: float | None) -> str:
    return "no data" if value is None else f"{value:.0f}"


def _trigger(events: Sequence[Event]) -> RollbackTriggered | None:
    return next((e for e in events if isinstance(e, RollbackTriggered)), None)


def _start(events: Sequence[Event]) -> DeployStarted | None:
    return next((e for e in events if isinstance(e, DeployStarted)), None)


def _sample_at_trigger(events: Sequence[Event], trigger: RollbackTriggered) -> AnalysisSample | None:
    """The sample the trigger carries, else the last analysis before it in the journal."""
    if trigger.samples:
        return trigger.samples[-1]
    before = [e for e in events if isinstance(e, AnalysisSample) and e.ts <= trigger.ts]
    return before[-1] if before else None


def postmortem_reasons(events: Sequence[Event], *, users_affected_weight: int = 25) -> list[str]:
    """Why a post-mortem is needed; empty when users were not affected."""
    reasons: list[str] = []
    trigger = _trigger(events)
    if trigger is not None and trigger.weight_at_trigger >= users_affected_weight:
        reasons.append(
            f"canary weight was {trigger.weight_at_trigger} % when it fired "
            f"(threshold {users_affected_weight} %): users were affected"
        )
    for event in events:
        if isinstance(event, GateEvaluated) and "error-budget" in event.gate.gate_id:
            if event.gate.status == GateStatus.FAIL:
                reasons.append(f"error budget burned: {event.gate.evidence}")
                break
    for event in events:
        if isinstance(event, RollbackStep) and event.action == "verify" and not event.ok:
            reasons.append(f"service not restored after the rollback: {event.detail}")
            break
    return reasons


def incident_record(events: list[Event], *, users_affected_weight: int = 25) -> str:
    """Markdown incident record: summary, timeline, metrics at the trigger, the rule, people."""
    start = _start(events)
    trigger = _trigger(events)
    finished = next((e for e in events if isinstance(e, Finished)), None)
    service = start.service if start else "unknown service"
    version = f"{start.from_version} → {start.to_version}" if start else "unknown versions"
    out: list[str] = [f"# Incident: {service} {version} rolled back", ""]

    reasons = postmortem_reasons(events, users_affected_weight=users_affected_weight)
    out += ["## Summary", ""]
    if start:
        out += [
            f"- Deploy id: `{start.deploy_id}`",
            f"- Change: {start.change_id} ({start.change_class}), image `{start.image}`",
            f"- Namespace: {start.namespace}",
            f"- Started by: {start.actor} at {_ts(start)} UTC",
        ]
    if trigger:
        how = "automatically" if trigger.automatic else "manually"
        out += [
            f"- Rolled back {how} at {_ts(trigger)} UTC by {trigger.actor}, rule **{trigger.rule}**",
            f"- Canary weight when it fired: {trigger.weight_at_trigger} %",
            f"- Reason: {trigger.reason}",
        ]
    else:
        out.append("- No rollback trigger is recorded for this deploy.")
    restored = next((e for e in events if isinstance(e, PhaseChanged) and e.phase == Phase.ROLLED_BACK), None)
    if trigger and restored:
        out.append(f"- Time to restore: {format_duration((restored.ts - trigger.ts).total_seconds())}")
    if finished:
        out.append(f"- Outcome: **{finished.outcome}** after {format_duration(finished.duration_s)}")
    flag = "**yes**" if reasons else "no"
    out.append(f"- Post-mortem required: {flag}")
    out += [f"  - {r}" for r in reasons]
    if not reasons:
        out.append(
            f"  - canary weight below {users_affected_weight} % at the trigger and no error budget burned"
        )

    out += ["", "## Rule that fired", ""]
    if trigger and trigger.readings:
        out += ["| rule | value | limit | fired | consecutive | detail |", "|---|---|---|---|---|---|"]
        for r in trigger.readings:
            value = "no data" if r.value is None else f"{r.value:.3g} {r.unit}"
            out.append(
                f"| {r.rule} | {value} | {r.limit:g} {r.unit} | {'**yes**' if r.fired else 'no'} | "
                f"{r.consecutive}/{r.needed} | {r.text} |"
            )
    elif trigger:
        out.append(f"{trigger.rule}: {trigger.reason}")
    else:
        out.append("None recorded.")

    out += ["", "## Metrics at the moment of the trigger", ""]
    sample = _sample_at_trigger(events, trigger) if trigger else None
    if sample:
        out += [
            f"Sample at {_ts(sample)} UTC, canary weight {sample.weight} %, verdict {sample.verdict}.",
            "",
            "| metric | canary | baseline |",
            "|---|---|---|",
            f"| error rate | {_pct(sample.canary_error_rate)} | {_pct(sample.baseline_error_rate)} |",
            f"| p99 latency | {_ms(sample.canary_p99_ms)} | {_ms(sample.baseline_p99_ms)} |",
            f"| p95 latency | {_ms(sample.canary_p95_ms)} | - |",
            f"| p50 latency | {_ms(sample.canary_p50_ms)} | - |",
            f"| requests | {_num(sample.canary_requests)} | {_num(sample.baseline_requests)} |",
            f"| health | {'-' if sample.health_ok is None else ('ok' if sample.health_ok else 'FAILING')} | - |",
        ]
        if trigger and len(trigger.samples) > 1:
            out += ["", "Samples leading up to it:", ""]
            for s in trigger.samples:
                out.append(
                    f"- {_ts(s)} at {s.weight} %: error {_pct(s.canary_error_rate)} vs "
                    f"{_pct(s.baseline_error_rate)}, p99 {_ms(s.canary_p99_ms)} vs {_ms(s.baseline_p99_ms)}"
                )
    else:
        out.append("No analysis sample recorded before the trigger (no data).")

    out += ["", "## Sign-offs", ""]
    approvals = [e for e in events if isinstance(e, GateSignedOff | GateOverridden)]
    for e in approvals:
        if isinstance(e, GateSignedOff):
            note = f": {e.note}" if e.note else ""
            out.append(f"- {_ts(e)} **{e.actor}** signed off {e.gate_id}{note}")
        else:
            out.append(f"- {_ts(e)} **{e.actor}** overrode {e.gate_id}: {e.reason}")
    if not approvals:
        out.append("No manual sign-offs recorded.")

    out += ["", "## Who acted", ""]
    actors: list[str] = []
    if start:
        actors.append(f"- {_ts(start)} {start.actor}: started the deploy")
    for e in events:
        if isinstance(e, TrafficChanged) and e.actor != "engine":
            actors.append(f"- {_ts(e)} {e.actor}: traffic to {e.effective} %")
        elif isinstance(e, Paused):
            actors.append(f"- {_ts(e)} {e.actor}: paused ({e.reason})")
        elif isinstance(e, Resumed):
            actors.append(f"- {_ts(e)} {e.actor}: resumed")
        elif isinstance(e, RollbackTriggered):
            actors.append(
                f"- {_ts(e)} {e.actor}: {'automatic' if e.automatic else 'manual'} rollback ({e.rule})"
            )
    out += actors

    steps = [e for e in events if isinstance(e, RollbackStep)]
    out += ["", "## Rollback steps", ""]
    out += [f"- {_ts(s)} {s.action}: {'ok' if s.ok else '**FAILED**'} {s.detail}".rstrip() for s in steps]
    if not steps:
        out.append("None recorded.")

    out += ["", "## Timeline", "", "| time (UTC) | phase | event |", "|---|---|---|"]
    rows = timeline(events, include_samples=False)
    for when, phase, text in rows:
        cell = text.replace("|", "\\|")
        out.append(f"| {when:%H:%M:%S} | {phase} | {cell} |")
    omitted = sum(1 for e in events if isinstance(e, AnalysisSample) and e.verdict == "healthy")
    if omitted:
        out.append(f"\n{omitted} healthy analysis samples omitted; `deploydeck log show` lists every one.")
    return "\n".join(out) + "\n"


def write_incident_record(events: list[Event], directory: Path, *, users_affected_weight: int = 25) -> Path:
    """Write the record as incident-<deploy>-<time>.md atomically; returns its path."""
    start = _start(events)
    trigger = _trigger(events)
    deploy = (start.deploy_id if start else "unknown")[:12] or "unknown"
    when = trigger or start or (events[-1] if events else None)
    stamp = when.ts.strftime("%Y%m%dT%H%M%SZ") if when else "undated"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"incident-{deploy}-{stamp}.md"
    text = incident_record(events, users_affected_weight=users_affected_weight)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".incident-", suffix=".md")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def rollback_message(events: Sequence[Event]) -> Notification:
    """The team-channel post for a rollback: what happened, the rule that fired, who acted."""
    start = _start(events)
    trigger = _trigger(events)
    service = start.service if start else "unknown service"
    to_version = start.to_version if start else "?"
    fields: dict[str, str] = {}
    if start:
        fields["Versions"] = f"{start.from_version} → {start.to_version}"
        fields["Change"] = f"{start.change_id} ({start.change_class})"
        fields["Deploy"] = start.deploy_id[:12]
        fields["Started by"] = start.actor
    if trigger is None:
        return Notification(
            title=f"{service} {to_version} rolled back",
            text="Rolled back; no trigger recorded.",
            level="critical",
            fields=fields,
        )
    fired = [r.text for r in trigger.readings if r.fired and r.text]
    how = "automatically" if trigger.automatic else "manually"
    fields["Rule"] = trigger.rule
    fields["Weight at trigger"] = f"{trigger.weight_at_trigger} %"
    fields["Acted"] = f"{trigger.actor} ({'automatic' if trigger.automatic else 'manual'})"
    steps = [
        e
        for e in events
        if isinstance(e, RollbackStep) and e.action in {"weight_reset", "undo_stable", "verify"}
    ]
    if steps:
        fields["Rollback"] = ", ".join(f"{s.action} {'ok' if s.ok else 'FAILED'}" for s in steps)
    text = f"Rolled back {how} by {trigger.actor} at {trigger.ts:%H:%M:%S} UTC: {trigger.reason}"
    if fired:
        text += "\n" + "\n".join(f"• {t}" for t in fired)
    return Notification(title=f"Rollback: {service} {to_version}", text=text, level="critical", fields=fields)
