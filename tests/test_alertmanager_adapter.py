"""Alertmanager adapter against a real Alertmanager (v2 API), plus error paths through respx."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from core.adapters.alertmanager import AlertmanagerAlerts, new_since
from core.domain import Alert
from core.plan import AlertmanagerSpec
from core.ports import Alerts, PortError
from core.sim.monitoring import AlertmanagerServer, wait_until


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _post(server: AlertmanagerServer, body: object, path: str = "alerts") -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.post(f"{server.url}/api/v2/{path}", json=body)
    assert response.status_code == 200, response.text


def _alert(
    run: str, severity: str, *, name: str = "HighErrorRate", ends: datetime | None = None
) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "service": "shop", "run": run},
        "annotations": {"summary": f"{name} on shop"},
        "startsAt": _iso(now - timedelta(seconds=5)),
        "endsAt": _iso(ends or now + timedelta(minutes=10)),
    }


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.real
async def test_sev1_alert_is_seen_then_resolving_it_clears_it(
    alertmanager_server: AlertmanagerServer,
) -> None:
    run = uuid.uuid4().hex
    adapter = AlertmanagerAlerts(AlertmanagerSpec(url=alertmanager_server.url))
    assert isinstance(adapter, Alerts)
    matchers = ['severity=~"SEV1|SEV2"', f'run="{run}"']
    try:
        assert await adapter.active_alerts(matchers) == []
        await _post(alertmanager_server, [_alert(run, "SEV1"), _alert(run, "SEV4", name="DiskSlow")])

        async def seen() -> bool:
            return len(await adapter.active_alerts(matchers)) == 1

        await _eventually(seen, "the SEV1 alert")
        (alert,) = await adapter.active_alerts(matchers)
        assert alert.name == "HighErrorRate"
        assert alert.severity == "SEV1"
        assert alert.summary == "HighErrorRate on shop"
        assert alert.starts_at is not None and alert.starts_at.tzinfo is not None
        # the SEV4 is there too, just not matched
        assert {a.name for a in await adapter.active_alerts([f'run="{run}"'])} == {
            "HighErrorRate",
            "DiskSlow",
        }

        await _post(alertmanager_server, [_alert(run, "SEV1", ends=datetime.now(UTC) - timedelta(seconds=1))])

        async def gone() -> bool:
            return await adapter.active_alerts(matchers) == []

        await _eventually(gone, "the resolved alert to disappear")
    finally:
        await adapter.close()


@pytest.mark.real
async def test_silenced_alert_is_not_reported(alertmanager_server: AlertmanagerServer) -> None:
    run = uuid.uuid4().hex
    adapter = AlertmanagerAlerts(AlertmanagerSpec(url=alertmanager_server.url))
    matchers = [f'run="{run}"']
    try:
        await _post(alertmanager_server, [_alert(run, "SEV2")])

        async def seen() -> bool:
            return len(await adapter.active_alerts(matchers)) == 1

        await _eventually(seen, "the SEV2 alert")
        now = datetime.now(UTC)
        silence = {
            "matchers": [{"name": "run", "value": run, "isRegex": False, "isEqual": True}],
            "startsAt": _iso(now - timedelta(seconds=1)),
            "endsAt": _iso(now + timedelta(hours=1)),
            "createdBy": "test",
            "comment": "maintenance",
        }
        await _post(alertmanager_server, silence, "silences")

        async def silenced() -> bool:
            return await adapter.active_alerts(matchers) == []

        await _eventually(silenced, "the silence to apply")
    finally:
        await adapter.close()


@pytest.mark.real
async def test_bad_matcher_names_endpoint_and_status(alertmanager_server: AlertmanagerServer) -> None:
    adapter = AlertmanagerAlerts(AlertmanagerSpec(url=alertmanager_server.url))
    try:
        with pytest.raises(PortError) as err:
            await adapter.active_alerts(["severity=~("])
        message = str(err.value)
        assert f"{alertmanager_server.url}/api/v2/alerts" in message
        assert "HTTP 400" in message
    finally:
        await adapter.close()


@pytest.mark.real
def test_alertmanager_fixture_is_ready(alertmanager_server: AlertmanagerServer) -> None:
    wait_until(lambda: httpx.get(f"{alertmanager_server.url}/-/healthy").status_code == 200, 5, "healthy")


# --- error paths without a server -------------------------------------------------------------


@respx.mock
async def test_http_error_names_status_and_never_the_token() -> None:
    respx.get("https://am.example.com/api/v2/alerts").mock(
        return_value=httpx.Response(503, text="overloaded")
    )
    adapter = AlertmanagerAlerts(AlertmanagerSpec(url="https://am.example.com/", token="s3cret-token"))
    try:
        with pytest.raises(PortError) as err:
            await adapter.active_alerts()
    finally:
        await adapter.close()
    message = str(err.value)
    assert message == "Alertmanager https://am.example.com/api/v2/alerts answered HTTP 503: overloaded"
    assert "s3cret" not in message
    sent = respx.calls.last.request
    assert sent.headers["Authorization"] == "Bearer s3cret-token"
    assert sent.url.params.get_list("active") == ["true"]
    assert sent.url.params.get_list("silenced") == ["false"]
    assert sent.url.params.get_list("inhibited") == ["false"]


@respx.mock
async def test_credentials_in_the_url_never_reach_the_message() -> None:
    respx.get("https://am.example.com/api/v2/alerts").mock(return_value=httpx.Response(401, text="denied"))
    adapter = AlertmanagerAlerts(AlertmanagerSpec(url="https://admin:hunter2@am.example.com:9093"))
    try:
        with pytest.raises(PortError) as err:
            await adapter.active_alerts()
    finally:
        await adapter.close()
    assert "hunter2" not in str(err.value) and "admin" not in str(err.value)
    assert "https://am.example.com:9093/api/v2/alerts answered HTTP 401" in str(err.value)


async def test_unreachable_alertmanager_is_a_port_error() -> None:
    from core.sim.monitoring import free_port

    adapter = AlertmanagerAlerts(AlertmanagerSpec(url=f"http://127.0.0.1:{free_port()}", timeout=2))
    try:
        with pytest.raises(PortError, match=r"unreachable"):
            await adapter.active_alerts()
    finally:
        await adapter.close()


@respx.mock
async def test_non_json_body_is_a_port_error() -> None:
    respx.get("http://am/api/v2/alerts").mock(return_value=httpx.Response(200, text="<html>login</html>"))
    adapter = AlertmanagerAlerts(AlertmanagerSpec(url="http://am"))
    try:
        with pytest.raises(PortError, match="without JSON"):
            await adapter.active_alerts()
    finally:
        await adapter.close()


def test_new_since_keeps_alerts_that_fired_after_the_start() -> None:
    start = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    old = Alert(name="old", starts_at=start - timedelta(minutes=5))
    new = Alert(name="new", starts_at=start + timedelta(minutes=5))
    unknown = Alert(name="unknown")
    assert [a.name for a in new_since([old, new, unknown], start)] == ["new", "unknown"]
