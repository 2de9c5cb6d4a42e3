"""The Alerts port on Alertmanager's v2 API (``GET /api/v2/alerts``) through httpx.

Only firing alerts count: silenced and inhibited ones are filtered out by
Alertmanager itself, so a silence set by the on-call engineer is respected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from core.adapters.deadline import DeadlineExceeded, within
from core.adapters.prometheus import redact_url
from core.adapters.tls import verify
from core.domain import Alert
from core.plan import AlertmanagerSpec
from core.ports import PortError

ALERTS_PATH = "/api/v2/alerts"


def _timestamp(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_alert(item: dict[str, Any]) -> Alert:
    labels = {str(k): str(v) for k, v in (item.get("labels") or {}).items()}
    annotations = item.get("annotations") or {}
    state = (item.get("status") or {}).get("state", "active")
    return Alert(
        name=labels.get("alertname", "(unnamed)"),
        labels=labels,
        starts_at=_timestamp(item.get("startsAt")),
        state=state if state in ("active", "suppressed", "unprocessed") else "active",
        summary=str(annotations.get("summary") or annotations.get("description") or ""),
    )


def new_since(alerts: list[Alert], started_at: datetime) -> list[Alert]:
    """Alerts that began firing at or after ``started_at`` (the "no new alerts" gate).

    An alert without a start time cannot be shown to be old, so it counts as new.
    """
    return [a for a in alerts if a.starts_at is None or a.starts_at >= started_at]


class AlertmanagerAlerts:
    """Implements :class:`core.ports.Alerts`; raises :class:`PortError` naming endpoint and status."""

    def __init__(self, spec: AlertmanagerSpec, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.spec = spec
        self.endpoint = redact_url(spec.url) + ALERTS_PATH
        headers = {"Accept": "application/json"}
        if spec.token:
            headers["Authorization"] = f"Bearer {spec.token}"
        self._client = httpx.AsyncClient(
            base_url=spec.url.rstrip("/"),
            headers=headers,
            timeout=spec.timeout,
            transport=transport,
            verify=verify(),  # one CA bundle per process, not one per client (issue 12)
        )

    async def active_alerts(self, matchers: list[str] | None = None) -> list[Alert]:
        params: list[tuple[str, str]] = [("active", "true"), ("silenced", "false"), ("inhibited", "false")]
        params += [("filter", m) for m in matchers or []]
        try:
            # httpx's timeout is per read; the whole answer gets one total deadline
            response = await within(
                self.spec.timeout, self._client.get(ALERTS_PATH, params=params), what="Alertmanager"
            )
        except (httpx.TimeoutException, DeadlineExceeded):
            raise PortError(f"Alertmanager {self.endpoint} timed out after {self.spec.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise PortError(f"Alertmanager {self.endpoint} unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            detail = _error_text(response)
            raise PortError(
                f"Alertmanager {self.endpoint} answered HTTP {response.status_code}"
                + (f": {detail}" if detail else "")
            )
        try:
            data = response.json()
        except ValueError:
            raise PortError(f"Alertmanager {self.endpoint} answered 200 without JSON") from None
        if not isinstance(data, list):
            raise PortError(f"Alertmanager {self.endpoint} answered 200 with an unexpected body (not a list)")
        alerts = [parse_alert(item) for item in data if isinstance(item, dict)]
        # Alertmanager already filters; this guards proxies or old versions that ignore the flags.
        return [a for a in alerts if a.state == "active"]

    async def close(self) -> None:
        await self._client.aclose()


def _error_text(response: httpx.Response) -> str:
    """Alertmanager's own complaint (e.g. a bad matcher), trimmed; never a header or token."""
    text = response.text.strip()
    if not text or text.startswith("<"):
        return ""
    try:
        data = response.json()
    except ValueError:
        return text[:200]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or "")[:200]
    return text[:200]
