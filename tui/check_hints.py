"""`deploydeck check`: for each unmet gate, the one line that would satisfy it."""

from __future__ import annotations

from collections.abc import Sequence

from core.domain import GateResult, GateStatus

#: what satisfies a gate that failed (or could not be checked), by gate id
_FIXES: dict[str, str] = {
    "ci-green": "change.commit: a commit whose CI checks all passed",
    "code-reviewed": "change.pull_request: a pull request approved by someone other than change.author",
    "change-class": "change: the fields its class needs (emergency: incident and reason; major: change_record)",
    "freeze-window": "run outside the freeze, or change.class: emergency with change.incident and change.reason",
    "no-sev-incident": "resolve the firing SEV1/SEV2 alerts first (alertmanager)",
    "monitoring-normal": "clear the service's firing alerts first (alertmanager)",
    "error-budget": "gates.error_budget.objective: the service's real SLO (the default 99.9 % is a guess)",
    "dependencies-healthy": "gates.dependencies: the URLs of dependencies that answer 200",
    "migrations-lint": "migrations: fix what the lint names, or mark the migration expand-contract",
    "staging-health-live": "targets.staging.health.live: a URL that answers 200",
    "staging-health-ready": "targets.staging.health.ready: a URL that answers 200 with every dependency ok",
    "staging-new-errors": "staging.new_errors_query: a PromQL count of new error log lines",
}


def what_would_satisfy(results: Sequence[GateResult]) -> list[str]:
    """One line per unmet gate: a sign-off to give, or the plan field (or action) that fixes it."""
    lines = []
    for r in results:
        if r.status == GateStatus.NEEDS_SIGN_OFF:
            lines.append(
                f"  {r.gate_id}: run with --approve {r.gate_id} --as NAME (or press s in the dashboard)"
            )
        elif r.status in {GateStatus.FAIL, GateStatus.ERROR}:
            fix = _FIXES.get(r.gate_id, f"{r.policy}: {r.evidence}")
            lines.append(f"  {r.gate_id}: {fix}")
    return ["", "To satisfy:", *lines] if lines else []
