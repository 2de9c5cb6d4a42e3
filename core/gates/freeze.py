"""Freeze window (POL-012): no Friday deploys, no holidays, no explicit freeze periods."""

from __future__ import annotations

from core.domain import GateResult, GateStatus
from core.gates.base import GateContext, result
from core.policy import freeze_status

GATE_ID = "freeze-window"


async def check_freeze(ctx: GateContext) -> GateResult:
    gates = ctx.plan.gates
    decision = freeze_status(ctx.clock.now(), gates.freeze, gates.timezone)
    local = f"{decision.local_time:%a %Y-%m-%d %H:%M} {gates.timezone}"
    if decision.open:
        return result(ctx, GATE_ID, GateStatus.PASS, f"open: {local}")
    nxt = (
        f"next open window {decision.next_open:%a %Y-%m-%d %H:%M %Z}"
        if decision.next_open
        else "no open window within a year"
    )
    evidence = f"frozen at {local}: {'; '.join(decision.reasons)}; {nxt}"
    if ctx.plan.change.class_ == "emergency":
        evidence += "; emergency bypass needs an override by two people"
    return result(ctx, GATE_ID, GateStatus.FAIL, evidence)
