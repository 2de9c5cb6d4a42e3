"""Change classification (POL-012): the class's requirements hold and nothing contradicts it."""

from __future__ import annotations

from core.domain import GateResult, GateStatus
from core.gates.base import GateContext, result
from core.policy import CLASS_RULES, classification_problems

GATE_ID = "change-class"


async def check_change_class(ctx: GateContext) -> GateResult:
    change = ctx.plan.change
    rule = CLASS_RULES[change.class_]
    problems = classification_problems(ctx.plan)
    label = change.class_.capitalize() + (" (security-sensitive)" if change.security_sensitive else "")
    refs = [
        f"{k} {v}" for k, v in (("incident", change.incident), ("change record", change.change_record)) if v
    ]
    detail = f"{label}: {rule.summary}" + (f"\n{'; '.join(refs)}" if refs else "")
    if problems:
        detail += "\n" + "\n".join(f"  - {p}" for p in problems)
        return result(ctx, GATE_ID, GateStatus.FAIL, f"{label}: " + "; ".join(problems), detail)
    evidence = f"{label} change {change.id}" + (f"; {'; '.join(refs)}" if refs else "") + " — rules met"
    return result(ctx, GATE_ID, GateStatus.PASS, evidence, detail)
