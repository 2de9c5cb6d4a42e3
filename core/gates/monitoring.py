"""Monitoring normal (POL-008): no alert is firing for the service."""

from __future__ import annotations

from core.domain import GateResult, GateStatus
from core.gates.base import GateContext, not_configured, result
from core.plan import Plan
from core.ports import PortError

GATE_ID = "monitoring-normal"


def service_matchers(plan: Plan) -> list[str]:
    return plan.gates.monitoring_matchers or [f'service="{plan.service}"']


async def check_monitoring(ctx: GateContext) -> GateResult:
    if ctx.alerts is None:
        return not_configured(ctx, GATE_ID, "set alertmanager.url to read the service's alerts")
    matchers = service_matchers(ctx.plan)
    try:
        alerts = await ctx.alerts.active_alerts(matchers)
    except PortError as exc:
        return result(ctx, GATE_ID, GateStatus.ERROR, f"cannot read alerts: {exc}")
    names = [f"{a.name} [{a.severity or '?'}]" for a in alerts]
    detail = f"matchers: {', '.join(matchers)}\n" + "\n".join(f"  {n}" for n in names)
    if alerts:
        return result(
            ctx, GATE_ID, GateStatus.FAIL, f"{len(alerts)} alert(s) firing: {', '.join(names[:4])}", detail
        )
    return result(ctx, GATE_ID, GateStatus.PASS, f"0 alerts firing for {', '.join(matchers)}", detail)
