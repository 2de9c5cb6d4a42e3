"""Completion: summary, ticket closing (webhook, GitHub API) and feature-flag rollout, against a
real aiohttp server on loopback that records every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiohttp import web

from core.clock import VirtualClock
from core.completion import close_tickets, completion_message, completion_summary, roll_out_flags
from core.domain import Outcome
from core.plan import FeatureFlagSpec, Plan, parse_plan
from tests.test_history import make_deploy

PLAN = """
service: checkout
version: {from: "1.4.0", to: "1.5.0", image: "registry.local/checkout:1.5.0"}
change: {id: CHG-7, class: normal, repo: shop/checkout, tickets: ["#12", "other/repo#3", "SHOP-9"]}
targets:
  staging: {namespace: staging, deployment: checkout}
  production: {namespace: prod, deployment: checkout}
"""


@dataclass
class Seen:
    method: str
    path: str
    body: dict[str, object]
    auth: str


@dataclass
class Server:
    base: str = ""
    seen: list[Seen] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)  # path -> status (default 200)
    percent_status: dict[int, int] = field(default_factory=dict)  # flag percent -> status


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        state.seen.append(Seen(request.method, request.path, body, request.headers.get("Authorization", "")))
        status = state.status.get(request.path, 200)
        if "percent" in body:
            status = state.percent_status.get(int(body["percent"]), status)
        return web.json_response({"ok": status < 300}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        yield state
    finally:
        await runner.cleanup()


def plan_with(extra: str, **env: str) -> Plan:
    return parse_plan(PLAN + extra, env=env)


def test_summary_and_message_from_events() -> None:
    events = make_deploy("abcdef123456789", outcome=Outcome.COMPLETED)
    summary = completion_summary(events)
    assert summary == (
        "checkout 1.4.0 → 1.5.0 complete in 20m14s; canary 5 % → 25 % → 50 % → 100 %; "
        "change CHG-1001; signed off by alice (rollback-plan)"
    )
    message = completion_message(events)
    assert message.level == "info" and message.title == "Deployed: checkout 1.5.0"
    assert message.text == summary and message.fields["Deploy"] == "abcdef123456"


async def test_tickets_closed_through_webhook(server: Server) -> None:
    plan = plan_with(f"completion: {{tickets_webhook: '{server.base}/tickets/s3cr3t'}}\n")
    results = await close_tickets(plan, deploy_id="d-1", summary="shipped")
    assert [(r.ticket, r.closed, r.via) for r in results] == [
        ("#12", True, "webhook"),
        ("other/repo#3", True, "webhook"),
        ("SHOP-9", True, "webhook"),
    ]
    bodies = sorted((s.body for s in server.seen), key=lambda b: str(b["ticket"]))
    assert bodies[0] == {
        "ticket": "#12",
        "action": "close",
        "service": "checkout",
        "version": "1.5.0",
        "change_id": "CHG-7",
        "deploy_id": "d-1",
        "summary": "shipped",
    }
    assert all("s3cr3t" not in r.detail for r in results)


async def test_ticket_webhook_failure_is_reported(server: Server) -> None:
    server.status["/tickets"] = 500
    plan = plan_with(f"completion: {{tickets_webhook: '{server.base}/tickets'}}\n")
    results = await close_tickets(plan)
    assert {r.closed for r in results} == {False}
    assert results[0].detail == f"{server.base} answered HTTP 500"


async def test_github_issues_closed_with_token(server: Server) -> None:
    server.status["/repos/other/repo/issues/3"] = 404
    plan = plan_with(
        f"gates: {{ci: {{base_url: '{server.base}'}}}}\ncompletion: {{close_github_issues: true}}\n"
    )
    results = await close_tickets(plan, env={"GITHUB_TOKEN": "ghp_secret"})
    assert [(r.ticket, r.closed, r.via) for r in results] == [
        ("#12", True, "github"),
        ("other/repo#3", False, "github"),
        ("SHOP-9", False, "none"),
    ]
    assert "HTTP 404 (no such issue)" in results[1].detail
    assert "not a GitHub issue" in results[2].detail
    patch = server.seen[0]
    assert (patch.method, patch.path) == ("PATCH", "/repos/shop/checkout/issues/12")
    assert patch.body == {"state": "closed", "state_reason": "completed"}
    assert patch.auth == "Bearer ghp_secret"
    assert all("ghp_secret" not in r.detail for r in results)


async def test_github_without_token_says_so(server: Server) -> None:
    plan = plan_with(
        f"gates: {{ci: {{base_url: '{server.base}'}}}}\ncompletion: {{close_github_issues: true}}\n"
    )
    results = await close_tickets(plan, env={})
    assert results[0].detail == "GITHUB_TOKEN is not set" and not results[0].closed
    assert server.seen == []


async def test_nothing_configured_closes_nothing() -> None:
    assert await close_tickets(plan_with("")) == []


def flags_plan(url: str) -> Plan:
    plan = plan_with("")
    flags = [
        FeatureFlagSpec(name="new-checkout", url=url, steps=[10, 50, 100], observe=300),
        FeatureFlagSpec(name="fast-pay", url=url, steps=[25, 100], observe=60),
    ]
    return plan.model_copy(update={"completion": plan.completion.model_copy(update={"feature_flags": flags})})


async def test_flag_rollout_steps_with_observation(server: Server) -> None:
    clock = VirtualClock()
    start = clock.now()
    observed: list[tuple[str, int, float]] = []

    async def observe(flag: FeatureFlagSpec, percent: int) -> str | None:
        observed.append((flag.name, percent, (clock.now() - start).total_seconds()))
        return None

    steps: list[str] = []
    results = await roll_out_flags(
        flags_plan(f"{server.base}/flags"),
        clock=clock,
        observe=observe,
        on_step=lambda r: steps.append(r.flag),
    )
    assert [(r.flag, r.percent, r.ok) for r in results] == [
        ("new-checkout", 10, True),
        ("new-checkout", 50, True),
        ("new-checkout", 100, True),
        ("fast-pay", 25, True),
        ("fast-pay", 100, True),
    ]
    assert [s.body for s in server.seen][:2] == [
        {"flag": "new-checkout", "percent": 10},
        {"flag": "new-checkout", "percent": 50},
    ]
    # each step observed for its window, in Clock time
    assert [o[2] for o in observed] == [300, 600, 900, 960, 1020]
    assert clock.now() - start == timedelta(seconds=1020)
    assert len(steps) == 5


async def test_failed_observation_reverts_flag_and_stops_it(server: Server) -> None:
    async def observe(flag: FeatureFlagSpec, percent: int) -> str | None:
        return "error rate +1.2 pp" if (flag.name, percent) == ("new-checkout", 50) else None

    results = await roll_out_flags(flags_plan(f"{server.base}/flags"), clock=VirtualClock(), observe=observe)
    assert [(r.flag, r.percent, r.ok) for r in results] == [
        ("new-checkout", 10, True),
        ("new-checkout", 50, False),
        ("fast-pay", 25, True),
        ("fast-pay", 100, True),
    ]
    assert results[1].reverted and "error rate +1.2 pp; flag set back to 0 %" in results[1].detail
    assert {"flag": "new-checkout", "percent": 0} in [s.body for s in server.seen]
    assert {"flag": "new-checkout", "percent": 100} not in [s.body for s in server.seen]


async def test_refused_flag_step_stops_that_flag(server: Server) -> None:
    server.percent_status[50] = 503
    results = await roll_out_flags(flags_plan(f"{server.base}/flags/s3cr3t"), clock=VirtualClock())
    assert [(r.flag, r.percent, r.ok) for r in results][:2] == [
        ("new-checkout", 10, True),
        ("new-checkout", 50, False),
    ]
    assert results[1].detail == f"{server.base} answered HTTP 503"
    assert results[2].flag == "fast-pay"
