"""The rollback procedure's communicate step can never hold up its outcome or the lease (issue 11, item 5).

The team channel is a real HTTP server on loopback that answers 200 and then sends its body
one byte a second, forever: per-read timeouts never fire on it. The notifier runs on the wall
clock (its deadlines are real), the rollout on a VirtualClock. Rules checked: the outcome
(phase ``rolled_back``) is journaled before any message goes out; the lease is already
released when the channel is called; the messages go out with bounded retries, their result
is journaled and ``finished`` follows within that bound; and a rollback whose API keeps
failing keeps retrying while its alarm message is stuck.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from core.adapters.journal import read_journal, verify_journal
from core.adapters.webhook import WebhookNotifier
from core.clock import SystemClock
from core.domain import Outcome, Phase
from core.events import Finished, LogLine, NotificationSent, PhaseChanged, RollbackStep
from core.plan import WebhookSpec
from core.ports import PortError
from tests.engine_helpers import sim_session

TIMEOUT_S, RETRIES, BACKOFF_S = 1.5, 1, 0.2
#: what the notifier may take at most, per channel: every attempt's deadline plus the backoffs
BOUND_S = TIMEOUT_S * (RETRIES + 1) + BACKOFF_S * RETRIES


class Dribble:
    """A webhook that answers 200 and then one byte a second until the client goes away."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.lease_holder_at_request: list[str | None] = []
        self.lease_holder: Any = None  # the test's probe of the simulated API server
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handler(self, request: web.Request) -> web.StreamResponse:
        self.started.append(time.monotonic())
        if self.lease_holder is not None:
            self.lease_holder_at_request.append(self.lease_holder())
        await request.read()
        response = web.StreamResponse(status=200)
        response.content_length = 1_000_000
        await response.prepare(request)
        try:
            while True:
                await response.write(b"o")
                await asyncio.sleep(1.0)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/secret", self.handler)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook/secret"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def dribble() -> AsyncIterator[Dribble]:
    server = Dribble()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _notifier(url: str) -> WebhookNotifier:
    return WebhookNotifier(
        [WebhookSpec(url=url, kind="slack", name="#deploys")],
        clock=SystemClock(),
        timeout_s=TIMEOUT_S,
        retries=RETRIES,
        backoff_s=BACKOFF_S,
    )


def _lease_holder(session: Any) -> str | None:
    from core.sim.kube import resources
    from core.sim.kube.server import SimKubeServer

    server = next(c for c in session.world.closers if isinstance(c, SimKubeServer))
    lease = server.store.get(
        resources.BY_PATH[("coordination.k8s.io", "v1", "leases")], "shop", "deploydeck-checkout"
    )
    return lease["spec"].get("holderIdentity")


@pytest.mark.slow
async def test_rollback_outcome_and_lease_release_never_wait_for_a_dribbling_webhook(
    tmp_path: Path, dribble: Dribble
) -> None:
    session = await sim_session(tmp_path, "bad-canary", backend="kube")
    session.world.notifier = _notifier(dribble.url)
    dribble.lease_holder = lambda: _lease_holder(session)
    rolled_back_at: list[float] = []

    def on_event(event: Any) -> None:
        if isinstance(event, PhaseChanged) and event.phase == Phase.ROLLED_BACK:
            rolled_back_at.append(time.monotonic())

    session.rollout.subscribe(on_event)
    try:
        outcome = await session.rollout.run()
        returned_at = time.monotonic()
    finally:
        await session.close()

    assert outcome == Outcome.ROLLED_BACK
    # every call to the channel found the lease already handed back: the next driver never waits for it
    assert len(dribble.started) == RETRIES + 1  # bounded retries, all of them tried
    assert dribble.lease_holder_at_request == [None] * (RETRIES + 1), dribble.lease_holder_at_request
    # the outcome is journaled before the first message; the result is journaled; finished follows
    events = read_journal(session.journal_path).events
    rolled_back = next(
        i for i, e in enumerate(events) if isinstance(e, PhaseChanged) and e.phase == Phase.ROLLED_BACK
    )
    sent = [i for i, e in enumerate(events) if isinstance(e, NotificationSent)]
    finished = next(i for i, e in enumerate(events) if isinstance(e, Finished))
    assert sent and rolled_back < min(sent) and max(sent) < finished == len(events) - 1
    result = events[sent[0]]
    assert isinstance(result, NotificationSent) and not result.delivered
    assert f"timed out after {TIMEOUT_S:g}s" in result.detail and result.attempts == RETRIES + 1
    communicate = next(e for e in events if isinstance(e, RollbackStep) and e.action == "communicate")
    assert not communicate.ok and "not delivered" in communicate.detail
    document = next(e for e in events if isinstance(e, RollbackStep) and e.action == "document")
    assert document.ok
    # a bounded delay of `finished`, never a hang: the channel's deadlines and backoff, plus slack
    assert returned_at - rolled_back_at[0] < BOUND_S + 2.0
    assert verify_journal(session.journal_path).ok


async def test_rollback_keeps_retrying_while_its_alarm_message_is_stuck(
    tmp_path: Path, dribble: Dribble
) -> None:
    """After 5 failed attempts the procedure alarms the channel; a stuck channel must not pause the retries."""
    session = await sim_session(tmp_path, "bad-canary")
    session.world.notifier = _notifier(dribble.url)
    production = session.world.production
    real_rollback = production.rollback
    failures = {"left": 7}

    async def flaky_rollback() -> Any:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise PortError("injected: API server unavailable")
        return await real_rollback()

    production.rollback = flaky_rollback  # type: ignore[method-assign]
    try:
        outcome = await session.rollout.run()
    finally:
        await session.close()
    assert outcome == Outcome.ROLLED_BACK
    events = read_journal(session.journal_path).events
    alarm = next(
        i for i, e in enumerate(events) if isinstance(e, LogLine) and "ROLLBACK NOT APPLIED" in e.message
    )
    reset = next(
        i for i, e in enumerate(events) if isinstance(e, RollbackStep) and e.action == "weight_reset"
    )
    failed = [i for i, e in enumerate(events) if isinstance(e, RollbackStep) and e.action == "attempt_failed"]
    assert len(failed) == 7 and alarm < failed[-1] < reset
    # the alarm's delivery result (the stuck channel giving up) is not what let the retries go on
    results = [i for i, e in enumerate(events) if isinstance(e, NotificationSent)]
    assert results and min(results) > reset, "the retry loop waited for the alarm message"


async def test_a_rollback_refused_by_the_fence_stops_instead_of_retrying_forever(tmp_path: Path) -> None:
    """The lease is gone (the fence refuses every write): retrying the rollback can only alarm people."""
    session = await sim_session(tmp_path, "bad-canary")
    rollout = session.rollout

    async def fenced() -> Any:
        # what the keeper does when the renew deadline has passed: say so, then refuse the write
        rollout._lease_lost = "lease shop/deploydeck-checkout not renewed in time"
        raise PortError("refused PATCH deployments/checkout-canary: lease not renewed in time")

    session.world.production.rollback = fenced  # type: ignore[method-assign]
    try:
        outcome = await asyncio.wait_for(rollout.run(), 20)
    finally:
        await session.close()
    assert outcome == Outcome.BLOCKED
    events = rollout.events
    assert not [e for e in events if isinstance(e, RollbackStep) and e.action == "attempt_failed"]
    assert not [e for e in events if isinstance(e, LogLine) and "ROLLBACK NOT APPLIED" in e.message]
    finished = events[-1]
    assert isinstance(finished, Finished) and "lease lost" in finished.reason
