"""The words a person reads for the engine's identifiers: one place, so no panel shows `rolled_back`
or `weight_reset` and every panel names a thing the same way."""

from __future__ import annotations

from core.domain import GateGroup, GateStatus, Outcome, Phase

OUTCOME: dict[Outcome, str] = {
    Outcome.COMPLETED: "completed",
    Outcome.ROLLED_BACK: "rolled back",
    Outcome.BLOCKED: "blocked at a gate",
    Outcome.ABORTED: "aborted",
    Outcome.ERROR: "stopped on an internal error",
}

RULE: dict[str, str] = {
    "error_rate": "error rate",
    "p99_latency": "p99 latency",
    "health": "health checks",
    "manual": "rolled back by hand",
    "no_data": "no data for too long",
    "verification": "verification failed",
    "judge": "statistical judge",
    "staging_soak": "staging soak",
    "error": "the engine could not continue",
}

ROLLBACK_ACTION: dict[str, str] = {
    "weight_reset": "traffic back to stable",
    "undo_stable": "stable version restored",
    "verify": "health verified",
    "communicate": "team notified",
    "document": "incident recorded",
    "attempt_failed": "attempt failed",
}

GATE_STATUS: dict[GateStatus, str] = {
    GateStatus.PASS: "passed",
    GateStatus.FAIL: "failed",
    GateStatus.PENDING: "pending",
    GateStatus.RUNNING: "running",
    GateStatus.ERROR: "could not be checked",
    GateStatus.NEEDS_SIGN_OFF: "needs a sign-off",
    GateStatus.SIGNED: "signed off",
    GateStatus.OVERRIDDEN: "overridden",
    GateStatus.SKIPPED: "skipped",
}

GROUP: dict[GateGroup, str] = {
    GateGroup.PRE_DEPLOY: "pre-deploy",
    GateGroup.MIGRATIONS: "migrations",
    GateGroup.STAGING: "staging",
    GateGroup.POST_DEPLOY: "post-deploy",
}


def outcome(value: Outcome | str) -> str:
    return OUTCOME.get(Outcome(value), str(value).replace("_", " "))


def phase(value: Phase | str) -> str:
    return str(getattr(value, "value", value)).replace("_", " ")


def rule(name: str) -> str:
    return RULE.get(name, name.replace("_", " "))


def rollback_action(name: str) -> str:
    return ROLLBACK_ACTION.get(name, name.replace("_", " "))


def gate_status(value: GateStatus | str) -> str:
    try:
        return GATE_STATUS[GateStatus(value)]
    except ValueError:
        return str(value).replace("_", " ")


def event_type(name: str) -> str:
    """`gate_signed_off` → `gate signed off`: for events a panel has no sentence for."""
    return name.replace("_", " ")
