"""CI gates green (POL-015): every required check on the change's commit, or a generic CI command."""

from __future__ import annotations

import re

from core.domain import CheckRun, GateResult, GateStatus
from core.gates.base import GateContext, not_configured, result
from core.ports import PortError

GATE_ID = "ci-green"

#: worst first: when two runs share a name, the worse state is the one that counts
_RANK = {"failure": 0, "error": 1, "missing": 2, "pending": 3, "neutral": 4, "skipped": 5, "success": 6}
_GREEN = {"success", "neutral", "skipped"}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def match_required(required: list[str], runs: list[CheckRun]) -> dict[str, str]:
    """State per required check; 'ci / tests' and 'Tests' both satisfy 'tests'."""
    states: dict[str, str] = {}
    for req in required:
        want = _norm(req)
        found = [r.state for r in runs if _norm(r.name) == want or _norm(r.name).endswith("-" + want)]
        states[req] = min(found, key=lambda s: _RANK.get(s, 0)) if found else "missing"
    return states


async def check_ci(ctx: GateContext) -> GateResult:
    ci = ctx.plan.gates.ci
    if ci.provider == "command":
        return await _by_command(ctx)
    change = ctx.plan.change
    if ctx.codehost is None:
        return not_configured(ctx, GATE_ID, "no code host; set gates.ci.token (e.g. ${GITHUB_TOKEN})")
    if not change.repo or not change.commit:
        return not_configured(ctx, GATE_ID, "change.repo and change.commit are needed to read CI checks")
    try:
        runs = await ctx.codehost.checks(change.repo, change.commit)
    except PortError as exc:
        return result(ctx, GATE_ID, GateStatus.ERROR, f"cannot read CI checks: {exc}")
    states = match_required(ci.required_checks, runs)
    green = [n for n, s in states.items() if s in _GREEN]
    bad = {n: s for n, s in states.items() if s not in _GREEN}
    summary = f"{len(green)}/{len(states)} required checks green"
    if bad:
        summary += "; " + ", ".join(f"{n}: {s}" for n, s in bad.items())
    detail_lines = [f"commit {change.commit[:12]} in {change.repo}"]
    detail_lines += [f"  {n}: {s}" for n, s in states.items()]
    others = [r for r in runs if _norm(r.name) not in {_norm(n) for n in states}]
    if others:
        detail_lines.append("other checks: " + ", ".join(f"{r.name}={r.state}" for r in others))
    if any(s in {"failure", "error"} for s in bad.values()):
        status = GateStatus.FAIL
    elif bad:
        status = GateStatus.PENDING
    else:
        status = GateStatus.PASS
    return result(ctx, GATE_ID, status, summary, "\n".join(detail_lines))


async def _by_command(ctx: GateContext) -> GateResult:
    ci = ctx.plan.gates.ci
    if not ci.command:
        return not_configured(ctx, GATE_ID, "gates.ci.provider is 'command' but gates.ci.command is empty")
    outcome = await ctx.runner.run(ci.command, timeout_s=ci.timeout)
    tail = outcome.output.strip().splitlines()[-1:] or [""]
    if outcome.exit_code is None:
        return result(ctx, GATE_ID, GateStatus.ERROR, f"CI command: {outcome.detail}", outcome.output)
    status = GateStatus.PASS if outcome.exit_code == 0 else GateStatus.FAIL
    evidence = f"CI command exit {outcome.exit_code} in {outcome.duration_s:.1f}s; {tail[0]}"
    return result(ctx, GATE_ID, status, evidence, outcome.output)
