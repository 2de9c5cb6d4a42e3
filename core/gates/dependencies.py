"""Dependencies healthy (POL-008): each declared dependency's ready endpoint answers as expected."""

from __future__ import annotations

import asyncio

from core.domain import GateResult, GateStatus, ProbeResult
from core.gates.base import GateContext, result
from core.plan import DependencySpec
from core.ports import PortError

GATE_ID = "dependencies-healthy"


async def _probe(ctx: GateContext, dep: DependencySpec) -> tuple[DependencySpec, ProbeResult]:
    try:
        answer = await ctx.probe.check(
            dep.url, expect_status=dep.expect_status, timeout_s=ctx.plan.gates.timeout
        )
    except PortError as exc:
        answer = ProbeResult(url=dep.url, ok=False, detail=str(exc))
    return dep, answer


async def check_dependencies(ctx: GateContext) -> GateResult:
    deps = ctx.plan.gates.dependencies
    if not deps:
        return result(ctx, GATE_ID, GateStatus.PASS, "no dependencies declared (gates.dependencies)")
    answers = await asyncio.gather(*(_probe(ctx, d) for d in deps))
    bad = [(d, a) for d, a in answers if not a.ok]
    lines = [
        f"  {d.name}: {'ok' if a.ok else 'FAIL'} HTTP {a.status if a.status is not None else '-'}"
        + (f" {a.latency_ms:.0f} ms" if a.latency_ms is not None else "")
        + (f" — {a.detail}" if a.detail and not a.ok else "")
        for d, a in answers
    ]
    if bad:
        worst = "; ".join(f"{d.name}: {a.detail or f'HTTP {a.status}'}" for d, a in bad)
        return result(
            ctx, GATE_ID, GateStatus.FAIL, f"{len(bad)}/{len(deps)} unhealthy: {worst}", "\n".join(lines)
        )
    return result(
        ctx, GATE_ID, GateStatus.PASS, f"{len(deps)}/{len(deps)} dependencies healthy", "\n".join(lines)
    )
