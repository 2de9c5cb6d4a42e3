"""Code reviewed (POL-004): approvals on the pull request, not counting the author or stale approvals.

Stale approvals (on an older push than the PR head) are dropped by the CodeHost
adapter, which knows the head; the deployed commit may be the merge commit, so
comparing against change.commit here would wrongly discard every approval.
"""

from __future__ import annotations

from core.domain import GateResult, GateStatus, Review
from core.gates.base import GateContext, not_configured, result
from core.policy import required_approvals
from core.ports import PortError

GATE_ID = "code-reviewed"


def latest_per_reviewer(reviews: list[Review]) -> dict[str, Review]:
    """A reviewer's last decisive review counts; a later comment does not undo an approval."""
    out: dict[str, Review] = {}
    ordered = sorted(reviews, key=lambda r: r.submitted_at.timestamp() if r.submitted_at else float("inf"))
    for review in ordered:
        if review.state in {"COMMENTED", "PENDING"} and review.reviewer in out:
            continue
        out[review.reviewer] = review
    return out


async def check_review(ctx: GateContext) -> GateResult:
    change = ctx.plan.change
    if ctx.codehost is None:
        return not_configured(ctx, GATE_ID, "no code host; set gates.ci.token (e.g. ${GITHUB_TOKEN})")
    if not change.repo or change.pull_request is None:
        return not_configured(ctx, GATE_ID, "change.repo and change.pull_request are needed to read reviews")
    try:
        reviews = await ctx.codehost.reviews(change.repo, change.pull_request)
    except PortError as exc:
        return result(ctx, GATE_ID, GateStatus.ERROR, f"cannot read reviews: {exc}")
    author = change.author.lower()
    by_author = [r for r in reviews if author and r.reviewer.lower() == author]
    counted = [r for r in reviews if r not in by_author]
    latest = latest_per_reviewer(counted)
    approvals = sorted(n for n, r in latest.items() if r.state == "APPROVED")
    blocking = sorted(n for n, r in latest.items() if r.state == "CHANGES_REQUESTED")
    needed = required_approvals(ctx.plan)
    names = f" ({', '.join(approvals)})" if approvals else ""
    parts = [f"{len(approvals)} approval(s){names}, {needed} needed"]
    if blocking:
        parts.append("changes requested by " + ", ".join(blocking))
    if by_author:
        parts.append("author's own review ignored")
    if ctx.plan.change.security_sensitive:
        parts.append("security-sensitive: 2 needed")
    detail = f"PR #{change.pull_request} in {change.repo}\n" + "\n".join(
        f"  {n}: {r.state} at {r.commit[:12] or '?'}" for n, r in sorted(latest.items())
    )
    if blocking or len(approvals) < needed:
        status = GateStatus.FAIL
    else:
        status = GateStatus.PASS
    return result(ctx, GATE_ID, status, "; ".join(parts), detail)
