"""Error budget not exhausted (POL-008): remaining budget from the SLO's error-ratio query."""

from __future__ import annotations

from core.domain import GateResult, GateStatus
from core.gates.base import GateContext, not_configured, result
from core.plan import Plan
from core.ports import PortError

GATE_ID = "error-budget"

_DEFAULT_QUERY = (
    'sum(rate(http_requests_total{service="$service",code=~"5.."}[$window]))'
    ' / sum(rate(http_requests_total{service="$service"}[$window]))'
)


def _prom_window(seconds: float) -> str:
    return f"{int(seconds // 86400)}d" if seconds >= 86400 and seconds % 86400 == 0 else f"{int(seconds)}s"


def budget_query(plan: Plan) -> str:
    spec = plan.gates.error_budget
    template = spec.query or _DEFAULT_QUERY
    return (
        template.replace("$service", plan.service)
        .replace("$namespace", plan.targets.production.namespace)
        .replace("$window", _prom_window(spec.window))
    )


def remaining_budget_pct(error_ratio: float, objective_pct: float) -> float:
    """100 % = untouched, 0 % = exhausted, negative = overspent."""
    allowed = 1.0 - objective_pct / 100.0
    return (1.0 - error_ratio / allowed) * 100.0


async def check_error_budget(ctx: GateContext) -> GateResult:
    if ctx.metrics is None:
        return not_configured(ctx, GATE_ID, "set prometheus.url to read the SLO's error ratio")
    spec = ctx.plan.gates.error_budget
    query = budget_query(ctx.plan)
    try:
        answer = await ctx.metrics.query(query)
    except PortError as exc:
        return result(ctx, GATE_ID, GateStatus.ERROR, f"no data: {exc}", query)
    if answer.value is None:
        reason = answer.reason or "no data"
        reason = reason if reason.startswith("no data") else f"no data: {reason}"
        return result(ctx, GATE_ID, GateStatus.ERROR, reason, f"query: {query}")
    left = remaining_budget_pct(answer.value, spec.objective)
    evidence = (
        f"{max(left, 0.0):.1f} % of error budget left (error ratio {answer.value * 100:.3f} % vs "
        f"{100 - spec.objective:.3f} % allowed over {_prom_window(spec.window)})"
    )
    status = GateStatus.PASS if left > 0 else GateStatus.FAIL
    if left <= 0:
        evidence = "exhausted: " + evidence
    return result(ctx, GATE_ID, status, evidence, f"objective {spec.objective} %\nquery: {query}")
