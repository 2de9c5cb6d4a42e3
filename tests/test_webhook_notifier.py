"""WebhookNotifier against a real aiohttp server on loopback that records every request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from core.adapters.webhook import WebhookNotifier, redact_url
from core.clock import VirtualClock
from core.domain import Notification
from core.plan import WebhookSpec

SECRET_PATH = "/services/T000/B000/s3cr3t-token"


@dataclass
class Recorder:
    """Per-path scripted answers; every request body is kept."""

    base: str = ""
    requests: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses, last one repeats
    hang_s: dict[str, float] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@pytest.fixture
async def server() -> AsyncIterator[Recorder]:
    recorder = Recorder()

    async def handle(request: web.Request) -> web.Response:
        recorder.requests.append((request.path, await request.json()))
        if request.path in recorder.hang_s:
            await asyncio.sleep(recorder.hang_s[request.path])
        statuses = recorder.script.get(request.path, [200])
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return web.Response(status=status, text="ok" if status == 200 else "no")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    recorder.base = f"http://127.0.0.1:{port}"
    try:
        yield recorder
    finally:
        await runner.cleanup()


MESSAGE = Notification(
    title="Rollback: checkout 1.5.0",
    text="Rolled back automatically by engine: error rate +2.70 pp",
    level="critical",
    fields={"Rule": "error_rate", "Acted": "engine (automatic)"},
)


async def test_slack_payload_shape(server: Recorder) -> None:
    notifier = WebhookNotifier(
        [WebhookSpec(url=server.url(SECRET_PATH), kind="slack", name="#deploys")],
        clock=VirtualClock(),
        timeout_s=2,
        retries=0,
    )
    results = await notifier.notify(MESSAGE)
    assert [(r.channel, r.delivered, r.attempts) for r in results] == [("#deploys", True, 1)]
    path, body = server.requests[0]
    assert path == SECRET_PATH
    assert body["text"].startswith("Rollback: checkout 1.5.0")
    blocks = body["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Rollback: checkout 1.5.0"}}
    assert blocks[1]["text"]["type"] == "mrkdwn" and "error rate +2.70 pp" in blocks[1]["text"]["text"]
    assert {"type": "mrkdwn", "text": "*Rule*\nerror_rate"} in blocks[2]["fields"]
    assert body["attachments"][0]["color"] == "#e01e5a"


async def test_json_payload_and_channels_concurrent(server: Recorder) -> None:
    notifier = WebhookNotifier(
        [
            WebhookSpec(url=server.url("/hooks/a"), kind="json", name="ops-bus"),
            WebhookSpec(url=server.url("/slack/b"), kind="slack"),
        ],
        clock=VirtualClock(),
        timeout_s=2,
        retries=0,
    )
    results = await notifier.notify(MESSAGE)
    assert [r.channel for r in results] == ["ops-bus", server.base]  # unnamed: scheme+host only
    body = next(b for p, b in server.requests if p == "/hooks/a")
    assert body == {
        "source": "deploydeck",
        "title": MESSAGE.title,
        "text": MESSAGE.text,
        "level": "critical",
        "fields": MESSAGE.fields,
    }


async def test_retries_500_with_exponential_backoff(server: Recorder) -> None:
    server.script[SECRET_PATH] = [500, 503, 200]
    clock = VirtualClock()
    start = clock.now()
    notifier = WebhookNotifier(
        [WebhookSpec(url=server.url(SECRET_PATH), name="#deploys")], clock=clock, timeout_s=2, retries=3
    )
    results = await notifier.notify(MESSAGE)
    assert results[0].delivered and results[0].attempts == 3
    assert server.count(SECRET_PATH) == 3
    assert (clock.now() - start).total_seconds() == pytest.approx(1.0 + 2.0)  # 1 s, then 2 s


async def test_gives_up_after_retries_and_reports(server: Recorder) -> None:
    server.script[SECRET_PATH] = [502]
    clock = VirtualClock()
    notifier = WebhookNotifier(
        [WebhookSpec(url=server.url(SECRET_PATH))], clock=clock, timeout_s=2, retries=2
    )
    (result,) = await notifier.notify(MESSAGE)
    assert not result.delivered and result.attempts == 3
    assert "HTTP 502" in result.detail
    assert SECRET_PATH not in result.detail and "s3cr3t" not in result.channel + result.detail


async def test_4xx_is_reported_without_retry(server: Recorder) -> None:
    server.script[SECRET_PATH] = [404]
    notifier = WebhookNotifier(
        [WebhookSpec(url=server.url(SECRET_PATH), name="#deploys")],
        clock=VirtualClock(),
        timeout_s=2,
        retries=3,
    )
    (result,) = await notifier.notify(MESSAGE)
    assert not result.delivered and result.attempts == 1
    assert result.detail == f"{server.base} answered HTTP 404 Not Found"
    assert server.count(SECRET_PATH) == 1


async def test_timeout_is_retried_then_reported(server: Recorder) -> None:
    server.hang_s[SECRET_PATH] = 1.0
    notifier = WebhookNotifier(
        [WebhookSpec(url=server.url(SECRET_PATH), name="#deploys")],
        clock=VirtualClock(),
        timeout_s=0.1,
        retries=1,
    )
    (result,) = await notifier.notify(MESSAGE)
    assert not result.delivered and result.attempts == 2
    assert "timed out after 0.1s" in result.detail and "s3cr3t" not in result.detail


async def test_unreachable_never_raises_and_one_bad_channel_does_not_block_another(server: Recorder) -> None:
    notifier = WebhookNotifier(
        [
            WebhookSpec(url="http://127.0.0.1:1/hook/s3cr3t", name="dead"),
            WebhookSpec(url=server.url("/ok"), name="alive", kind="json"),
            WebhookSpec(url="not a url at all", name="broken"),
        ],
        clock=VirtualClock(),
        timeout_s=1,
        retries=1,
    )
    dead, alive, broken = await notifier.notify(MESSAGE)
    assert alive.delivered
    assert not dead.delivered and dead.attempts == 2 and "cannot connect to http://127.0.0.1:1" in dead.detail
    assert "s3cr3t" not in dead.detail
    assert not broken.delivered


def test_redact_url_keeps_scheme_and_host_only() -> None:
    assert redact_url("https://hooks.slack.com/services/T0/B0/xyz?token=1") == "https://hooks.slack.com"
    assert redact_url("http://user:pw@10.0.0.1:8080/p") == "http://10.0.0.1:8080"
    assert redact_url("nonsense") == "(invalid url)"
