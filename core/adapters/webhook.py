"""Team-channel messages through Slack-compatible incoming webhooks and generic JSON webhooks.

A webhook URL is a secret (whoever has it can post to the channel), so nothing this
module returns or logs contains it: channels are named by their `name` or by
scheme://host. `notify` never raises; a failed channel is reported, never blocking
the rollback that wanted to tell people about itself.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import httpx

from core.adapters.deadline import DeadlineExceeded, within
from core.adapters.tls import verify
from core.clock import Clock
from core.domain import Notification, NotifyResult
from core.plan import WebhookSpec

log = logging.getLogger(__name__)

_SLACK_COLOURS = {"info": "#2eb67d", "warning": "#ecb22e", "critical": "#e01e5a"}
_SLACK_FIELD_LIMIT = 10  # Slack rejects a section block with more fields
#: statuses worth another try: the receiver may be briefly down or rate-limiting us.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def redact_url(url: str) -> str:
    """scheme://host[:port] only: paths and queries of webhook URLs carry the secret."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid url)"
    if not parts.scheme or not parts.hostname:
        return "(invalid url)"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def channel_name(spec: WebhookSpec) -> str:
    return spec.name or redact_url(spec.url)


def slack_payload(message: Notification) -> dict[str, object]:
    """Incoming-webhook body: `text` is the notification fallback, blocks carry the layout."""
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": message.text[:3000] or " "}},
    ]
    items = list(message.fields.items())
    for start in range(0, len(items), _SLACK_FIELD_LIMIT):
        chunk = items[start : start + _SLACK_FIELD_LIMIT]
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:2000]} for k, v in chunk],
            }
        )
    return {
        "text": f"{message.title}: {message.text}"[:3000],
        "blocks": blocks,
        "attachments": [{"color": _SLACK_COLOURS[message.level], "fallback": message.title}],
    }


def json_payload(message: Notification) -> dict[str, object]:
    return {
        "source": "deploydeck",
        "title": message.title,
        "text": message.text,
        "level": message.level,
        "fields": dict(message.fields),
    }


class WebhookNotifier:
    """Notifier port over webhooks; one POST per channel, retried with exponential backoff."""

    def __init__(
        self,
        specs: list[WebhookSpec],
        *,
        clock: Clock,
        timeout_s: float,
        retries: int,
        backoff_s: float = 1.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._specs = list(specs)
        self._clock = clock
        self._timeout_s = timeout_s
        self._retries = max(0, retries)
        self._backoff_s = backoff_s
        self._client = client
        self._own_client = client is None

    @property
    def channels(self) -> list[str]:
        return [channel_name(s) for s in self._specs]

    async def notify(self, message: Notification) -> list[NotifyResult]:
        if not self._specs:
            return []
        client = self._client or httpx.AsyncClient(follow_redirects=False, verify=verify())
        try:
            results = await asyncio.gather(
                *(self._send(client, spec, message) for spec in self._specs), return_exceptions=True
            )
        finally:
            if self._client is None:
                await client.aclose()
        out: list[NotifyResult] = []
        for spec, result in zip(self._specs, results, strict=True):
            if isinstance(result, NotifyResult):
                out.append(result)
            else:
                # _send catches everything it can foresee; this is the guarantee behind it.
                out.append(
                    NotifyResult(
                        channel=channel_name(spec),
                        delivered=False,
                        detail=f"internal error: {type(result).__name__}",
                    )
                )
        return out

    async def close(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()

    async def _send(
        self, client: httpx.AsyncClient, spec: WebhookSpec, message: Notification
    ) -> NotifyResult:
        name = channel_name(spec)
        payload = slack_payload(message) if spec.kind == "slack" else json_payload(message)
        attempts = 0
        detail = ""
        delay = self._backoff_s
        for attempt in range(self._retries + 1):
            attempts = attempt + 1
            retry, detail = await self._attempt(client, spec, payload)
            if detail == "":
                return NotifyResult(channel=name, delivered=True, attempts=attempts, detail="delivered")
            log.warning("webhook %s attempt %d failed: %s", name, attempts, detail)
            if not retry or attempt == self._retries:
                break
            await self._clock.sleep(delay)
            delay *= 2
        return NotifyResult(channel=name, delivered=False, attempts=attempts, detail=detail)

    async def _attempt(
        self, client: httpx.AsyncClient, spec: WebhookSpec, payload: dict[str, object]
    ) -> tuple[bool, str]:
        """(worth retrying, problem); problem "" means delivered. Never shows the URL."""
        host = redact_url(spec.url)
        try:
            # httpx's timeout is per read: a receiver dribbling one byte a second never trips it
            response = await within(
                self._timeout_s,
                client.post(spec.url, json=payload, timeout=self._timeout_s),
                clock=self._clock,
                what=f"webhook {host}",
            )
        except (httpx.TimeoutException, DeadlineExceeded):
            return True, f"timed out after {self._timeout_s:g}s ({host})"
        except httpx.TransportError as exc:
            # httpx error texts can include the full URL; name the class only.
            return True, f"cannot connect to {host}: {type(exc).__name__}"
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            return False, f"cannot send to {host}: {type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return False, ""
        reason = response.reason_phrase or ""
        text = f"{host} answered HTTP {response.status_code} {reason}".rstrip()
        return response.status_code in _RETRY_STATUSES, text
