"""The no-SEV incident and monitoring gates against a real Alertmanager on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx

from core.adapters.alertmanager import AlertmanagerAlerts
from core.domain import GateStatus
from core.gates.incidents import check_incidents
from core.gates.monitoring import check_monitoring
from core.plan import AlertmanagerSpec
from tests.test_gates_predeploy import make_ctx, make_plan


async def post_alert(url: str, labels: dict[str, str], summary: str) -> None:
    now = dt.datetime.now(dt.UTC)
    body = [
        {
            "labels": labels,
            "annotations": {"summary": summary},
            "startsAt": now.isoformat(),
            "endsAt": (now + dt.timedelta(minutes=10)).isoformat(),
        }
    ]
    async with httpx.AsyncClient(timeout=5) as client:
        resp = await client.post(f"{url}/api/v2/alerts", json=body)
        resp.raise_for_status()


async def poll_status(check, ctx, want: GateStatus, timeout_s: float = 10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        res = await check(ctx)
        if res.status == want or loop.time() > deadline:
            return res
        await asyncio.sleep(0.1)


async def test_sev_alert_in_alertmanager_blocks_and_others_do_not(alertmanager_server):
    run = uuid.uuid4().hex[:8]
    plan = make_plan(
        extra=(
            "gates:\n"
            f"  incidents: {{matchers: ['severity=~\"SEV1|SEV2\"', 'run=\"{run}\"']}}\n"
            f"  monitoring_matchers: ['service=\"checkout\"', 'run=\"{run}\"']\n"
        )
    )
    alerts = AlertmanagerAlerts(AlertmanagerSpec(url=alertmanager_server.url, timeout=5))
    try:
        ctx = make_ctx(plan, alerts=alerts)
        clear = await check_incidents(ctx)
        assert (
            clear.status == GateStatus.PASS
            and clear.evidence == "no active SEV1/SEV2 (Alertmanager 0 firing)"
        )

        await post_alert(
            alertmanager_server.url,
            {"alertname": "DiskSlow", "severity": "warning", "run": run, "service": "checkout"},
            "io wait",
        )
        monitoring = await poll_status(check_monitoring, ctx, GateStatus.FAIL)
        assert monitoring.status == GateStatus.FAIL and "DiskSlow [warning]" in monitoring.evidence
        assert (await check_incidents(ctx)).status == GateStatus.PASS  # a warning is not a SEV

        await post_alert(
            alertmanager_server.url,
            {"alertname": "PaymentsDown", "severity": "SEV1", "run": run},
            "card auth 100 % 5xx",
        )
        blocked = await poll_status(check_incidents, ctx, GateStatus.FAIL)
        assert blocked.status == GateStatus.FAIL
        assert blocked.evidence == "1 active SEV1/SEV2: PaymentsDown [SEV1]: card auth 100 % 5xx"
    finally:
        await alerts.close()


async def test_unreachable_alertmanager_is_an_error_that_blocks():
    alerts = AlertmanagerAlerts(AlertmanagerSpec(url="http://127.0.0.1:9", timeout=1))
    try:
        res = await check_incidents(make_ctx(alerts=alerts))
    finally:
        await alerts.close()
    assert res.status == GateStatus.ERROR and "unreachable" in res.evidence and not res.status.satisfied
