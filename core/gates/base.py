"""What every gate gets to look at, and the helpers that turn findings into a GateResult."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.clock import Clock
from core.domain import GateGroup, GateResult, GateStatus
from core.plan import Plan
from core.policy import CATALOGUE_BY_ID
from core.ports import Alerts, Cluster, CodeHost, CommandRunner, Metrics, Probe

#: (source, line): long work (migrations, E2E) streams its output through this
LogSink = Callable[[str, str], Awaitable[None] | None]


@dataclass
class GateContext:
    plan: Plan
    clock: Clock
    probe: Probe
    runner: CommandRunner
    alerts: Alerts | None
    metrics: Metrics | None
    codehost: CodeHost | None
    deploy_started_at: datetime
    staging: Cluster | None = None  # the staging target, for the staging-deploy gate
    base_dir: Path | None = None  # where relative migration paths live (the plan file's folder)
    on_log: LogSink | None = None
    dry_run: bool = False  # `deploydeck check`: never run gates with side effects

    async def log(self, source: str, line: str) -> None:
        if self.on_log is None:
            return
        out = self.on_log(source, line)
        if inspect.isawaitable(out):
            await out


GateFn = Callable[[GateContext], Awaitable[GateResult]]


def result(
    ctx: GateContext,
    gate_id: str,
    status: GateStatus,
    evidence: str,
    detail: str = "",
) -> GateResult:
    """A GateResult with the catalogue's title, policy and group for `gate_id`."""
    gate = CATALOGUE_BY_ID[gate_id]
    return GateResult(
        gate_id=gate_id,
        title=gate.title,
        policy=gate.policy,
        group=gate.group,
        status=status,
        evidence=one_line(evidence),
        detail=detail or evidence,
        checked_at=ctx.clock.now(),
    )


def one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def not_configured(ctx: GateContext, gate_id: str, what: str) -> GateResult:
    return result(ctx, gate_id, GateStatus.ERROR, f"not configured: {what}")


def group_of(gate_id: str) -> GateGroup:
    return CATALOGUE_BY_ID[gate_id].group


async def guarded(ctx: GateContext, gate_id: str, fn: GateFn, timeout_s: float) -> GateResult:
    """Run one gate; a timeout or an exception becomes an error result that says why, never a crash.

    The timeout is measured on the Clock so simulated runs stay deterministic.
    """
    task = asyncio.ensure_future(fn(ctx))
    timer = asyncio.ensure_future(ctx.clock.sleep(timeout_s))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        raise
    if task not in done:
        task.cancel()
        # the gate is being abandoned: whatever it raises on the way out no longer matters. Not
        # `suppress(CancelledError): await task`: that also swallowed this task's own cancellation
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
        return result(ctx, gate_id, GateStatus.ERROR, f"timed out after {timeout_s:g}s")
    timer.cancel()
    try:
        return task.result()
    except Exception as exc:
        # a gate bug or an adapter's unexpected error: block with the reason instead of crashing the deploy
        text = str(exc) or type(exc).__name__
        return result(ctx, gate_id, GateStatus.ERROR, f"gate failed: {type(exc).__name__}: {text}")
