"""Completion (Step 7): the summary, closing the related tickets, and feature-flag rollout.

Each function returns result records the engine journals; none raises on an outside
failure, because a ticket tracker that is down must not turn a good deploy into a
failed one. Tokens come from the environment and never appear in results.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Literal

import httpx
from pydantic import BaseModel

from core.adapters.webhook import redact_url
from core.clock import Clock
from core.domain import Notification
from core.durations import format_duration
from core.events import DeployStarted, Event, Finished, GateSignedOff, TrafficChanged
from core.plan import FeatureFlagSpec, Plan

_ISSUE_REF = re.compile(r"^(?:(?P<repo>[\w.-]+/[\w.-]+))?#(?P<number>\d+)$|^(?P<bare>\d+)$")


class TicketResult(BaseModel):
    ticket: str
    closed: bool
    via: Literal["webhook", "github", "none"]
    detail: str = ""


class FlagStepResult(BaseModel):
    flag: str
    percent: int
    ok: bool
    at: datetime
    detail: str = ""
    reverted: bool = False  # the flag was set back to 0 after this step failed


# --- summary and message ---------------------------------------------------------


def completion_summary(events: Sequence[Event]) -> str:
    """One line for the Finished event and the channel: what shipped, how long, who signed."""
    start = next((e for e in events if isinstance(e, DeployStarted)), None)
    if start is None:
        return "deploy complete"
    end = next((e for e in events if isinstance(e, Finished)), None)
    last_ts = end.ts if end else (events[-1].ts if events else start.ts)
    took = format_duration((last_ts - start.ts).total_seconds())
    weights = [e.effective for e in events if isinstance(e, TrafficChanged)]
    steps = " → ".join(f"{w} %" for w in dict.fromkeys(weights)) or "no traffic changes"
    signers = sorted({f"{e.actor} ({e.gate_id})" for e in events if isinstance(e, GateSignedOff)})
    signed = f"; signed off by {', '.join(signers)}" if signers else ""
    return (
        f"{start.service} {start.from_version} → {start.to_version} complete in {took}; "
        f"canary {steps}; change {start.change_id}{signed}"
    )


def completion_message(events: Sequence[Event]) -> Notification:
    start = next((e for e in events if isinstance(e, DeployStarted)), None)
    title = f"Deployed: {start.service} {start.to_version}" if start else "Deploy complete"
    fields: dict[str, str] = {}
    if start:
        fields = {
            "Versions": f"{start.from_version} → {start.to_version}",
            "Change": f"{start.change_id} ({start.change_class})",
            "Deploy": start.deploy_id[:12],
            "Started by": start.actor,
        }
    return Notification(title=title, text=completion_summary(events), level="info", fields=fields)


# --- tickets -----------------------------------------------------------------------


def _client_or_new(client: httpx.AsyncClient | None, timeout_s: float) -> httpx.AsyncClient:
    return client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)


async def _post_ticket_webhook(
    client: httpx.AsyncClient, url: str, ticket: str, body: dict[str, object], timeout_s: float
) -> TicketResult:
    host = redact_url(url)
    try:
        response = await client.post(url, json={"ticket": ticket, **body}, timeout=timeout_s)
    except httpx.TimeoutException:
        return TicketResult(ticket=ticket, closed=False, via="webhook", detail=f"{host} timed out")
    except httpx.HTTPError as exc:
        return TicketResult(
            ticket=ticket, closed=False, via="webhook", detail=f"{host}: {type(exc).__name__}"
        )
    if 200 <= response.status_code < 300:
        return TicketResult(
            ticket=ticket, closed=True, via="webhook", detail=f"{host} HTTP {response.status_code}"
        )
    return TicketResult(
        ticket=ticket, closed=False, via="webhook", detail=f"{host} answered HTTP {response.status_code}"
    )


async def _close_github_issue(
    client: httpx.AsyncClient,
    base_url: str,
    repo: str,
    number: int,
    ticket: str,
    token: str,
    timeout_s: float,
) -> TicketResult:
    url = f"{base_url.rstrip('/')}/repos/{repo}/issues/{number}"
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    where = f"GitHub {repo}#{number}"
    try:
        response = await client.patch(
            url, json={"state": "closed", "state_reason": "completed"}, headers=headers, timeout=timeout_s
        )
    except httpx.TimeoutException:
        return TicketResult(ticket=ticket, closed=False, via="github", detail=f"{where}: timed out")
    except httpx.HTTPError as exc:
        return TicketResult(
            ticket=ticket, closed=False, via="github", detail=f"{where}: {type(exc).__name__}"
        )
    if response.status_code == 200:
        return TicketResult(ticket=ticket, closed=True, via="github", detail=f"{where} closed")
    hint = {401: " (GITHUB_TOKEN rejected)", 403: " (token lacks issues:write)", 404: " (no such issue)"}
    return TicketResult(
        ticket=ticket,
        closed=False,
        via="github",
        detail=f"{where}: HTTP {response.status_code}{hint.get(response.status_code, '')}",
    )


async def close_tickets(
    plan: Plan,
    *,
    deploy_id: str = "",
    summary: str = "",
    client: httpx.AsyncClient | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> list[TicketResult]:
    """Close plan.change.tickets via the tickets webhook, else via the GitHub issues API."""
    tickets = plan.change.tickets
    completion = plan.completion
    if not tickets or (not completion.tickets_webhook and not completion.close_github_issues):
        return []
    env = dict(os.environ) if env is None else env
    timeout = timeout_s or plan.notifications.timeout
    http = _client_or_new(client, timeout)
    try:
        if completion.tickets_webhook:
            body: dict[str, object] = {
                "action": "close",
                "service": plan.service,
                "version": plan.version.to,
                "change_id": plan.change.id,
                "deploy_id": deploy_id,
                "summary": summary,
            }
            url = completion.tickets_webhook
            return list(
                await asyncio.gather(*(_post_ticket_webhook(http, url, t, body, timeout) for t in tickets))
            )
        token = env.get("GITHUB_TOKEN", "")
        results: list[TicketResult] = []
        for ticket in tickets:
            match = _ISSUE_REF.match(ticket.strip())
            if match is None:
                results.append(
                    TicketResult(
                        ticket=ticket,
                        closed=False,
                        via="none",
                        detail="not a GitHub issue (#N or owner/repo#N)",
                    )
                )
                continue
            repo = match.group("repo") or plan.change.repo
            number = int(match.group("number") or match.group("bare"))
            if not repo:
                results.append(
                    TicketResult(
                        ticket=ticket,
                        closed=False,
                        via="github",
                        detail="no repo: set change.repo or write owner/repo#N",
                    )
                )
            elif not token:
                results.append(
                    TicketResult(ticket=ticket, closed=False, via="github", detail="GITHUB_TOKEN is not set")
                )
            else:
                results.append(
                    await _close_github_issue(
                        http, plan.gates.ci.base_url, repo, number, ticket, token, timeout
                    )
                )
        return results
    finally:
        if client is None:
            await http.aclose()


# --- feature flags ---------------------------------------------------------------------

#: called after each step's observation; return a problem text to stop the flag, or None.
FlagObserver = Callable[[FeatureFlagSpec, int], Awaitable[str | None]]
StepCallback = Callable[[FlagStepResult], Awaitable[None] | None]


async def _set_flag(client: httpx.AsyncClient, flag: FeatureFlagSpec, percent: int, timeout_s: float) -> str:
    """'' when the flag endpoint accepted the percentage, else the problem (URL redacted)."""
    host = redact_url(flag.url)
    try:
        response = await client.post(
            flag.url, json={"flag": flag.name, "percent": percent}, timeout=timeout_s
        )
    except httpx.TimeoutException:
        return f"{host} timed out"
    except httpx.HTTPError as exc:
        return f"{host}: {type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return ""
    return f"{host} answered HTTP {response.status_code}"


async def roll_out_flags(
    plan: Plan,
    *,
    clock: Clock,
    observe: FlagObserver | None = None,
    on_step: StepCallback | None = None,
    client: httpx.AsyncClient | None = None,
    timeout_s: float | None = None,
) -> list[FlagStepResult]:
    """Raise each flag through its steps, observing each for flag.observe (Clock time).

    A step the endpoint refuses, or whose observation reports a problem, stops that
    flag; after a failed observation the flag is set back to 0 % so users leave the
    new path while people look.
    """
    flags = plan.completion.feature_flags
    if not flags:
        return []
    timeout = timeout_s or plan.notifications.timeout
    http = _client_or_new(client, timeout)
    results: list[FlagStepResult] = []

    async def record(result: FlagStepResult) -> None:
        results.append(result)
        if on_step is not None:
            maybe = on_step(result)
            if maybe is not None:
                await maybe

    try:
        for flag in flags:
            for percent in flag.steps:
                problem = await _set_flag(http, flag, percent, timeout)
                if problem:
                    await record(
                        FlagStepResult(
                            flag=flag.name, percent=percent, ok=False, at=clock.now(), detail=problem
                        )
                    )
                    break
                await clock.sleep(flag.observe)
                seen = await observe(flag, percent) if observe is not None else None
                if seen:
                    revert = await _set_flag(http, flag, 0, timeout)
                    detail = f"observation failed: {seen}; " + (
                        "flag set back to 0 %" if not revert else f"could not set it back to 0 %: {revert}"
                    )
                    await record(
                        FlagStepResult(
                            flag=flag.name,
                            percent=percent,
                            ok=False,
                            at=clock.now(),
                            detail=detail,
                            reverted=not revert,
                        )
                    )
                    break
                await record(
                    FlagStepResult(
                        flag=flag.name,
                        percent=percent,
                        ok=True,
                        at=clock.now(),
                        detail=f"observed {format_duration(flag.observe)}",
                    )
                )
    finally:
        if client is None:
            await http.aclose()
    return results
