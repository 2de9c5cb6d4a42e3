"""No active SEV1/SEV2 incidents: firing alerts from Alertmanager, open incidents from PagerDuty."""

from __future__ import annotations

from core.adapters.http_probe import redact_url
from core.domain import Alert, GateResult, GateStatus
from core.gates.base import GateContext, result
from core.ports import PortError

GATE_ID = "no-sev-incident"

#: PagerDuty priorities and urgencies that count as SEV1/SEV2
_SEV_PRIORITIES = {"p1", "p2", "sev1", "sev2", "sev-1", "sev-2"}


def _describe(alert: Alert) -> str:
    sev = alert.severity or "?"
    return f"{alert.name} [{sev}]" + (f": {alert.summary}" if alert.summary else "")


async def pagerduty_incidents(url: str, token: str | None, timeout_s: float) -> list[str]:
    """Open high-priority incidents from a PagerDuty-compatible REST API; raises PortError."""
    import httpx

    endpoint = url.rstrip("/") + ("" if url.rstrip("/").endswith("/incidents") else "/incidents")
    headers = {"Accept": "application/vnd.pagerduty+json;version=2"}
    if token:
        headers["Authorization"] = f"Token token={token}"
    params = [("statuses[]", "triggered"), ("statuses[]", "acknowledged"), ("limit", "100")]
    where = redact_url(endpoint)
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            resp = await client.get(endpoint, headers=headers, params=params)
    except httpx.TimeoutException:
        raise PortError(f"PagerDuty {where}: timed out after {timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        raise PortError(f"PagerDuty {where}: unreachable ({type(exc).__name__})") from None
    if resp.status_code == 401:
        raise PortError(
            f"PagerDuty {where}: HTTP 401, the token (gates.incidents.pagerduty_token) is rejected"
        )
    if resp.status_code >= 400:
        raise PortError(f"PagerDuty {where}: HTTP {resp.status_code}")
    try:
        incidents = resp.json().get("incidents", [])
    except (ValueError, AttributeError):
        raise PortError(f"PagerDuty {where}: answer is not the expected JSON") from None
    out: list[str] = []
    for inc in incidents:
        if not isinstance(inc, dict):
            continue
        priority = str((inc.get("priority") or {}).get("summary", "")).lower()
        if priority in _SEV_PRIORITIES or (not priority and inc.get("urgency") == "high"):
            label = priority.upper() or "high urgency"
            out.append(f"{inc.get('incident_number', '?')} {inc.get('title', '')} [{label}]".strip())
    return out


async def check_incidents(ctx: GateContext) -> GateResult:
    spec = ctx.plan.gates.incidents
    if ctx.alerts is None and not spec.pagerduty_url:
        return result(
            ctx,
            GATE_ID,
            GateStatus.ERROR,
            "not configured: set alertmanager.url (or gates.incidents.pagerduty_url)",
        )
    found: list[str] = []
    sources: list[str] = []
    try:
        if ctx.alerts is not None:
            alerts = await ctx.alerts.active_alerts(spec.matchers)
            found += [_describe(a) for a in alerts]
            sources.append(f"Alertmanager {len(alerts)} firing")
        if spec.pagerduty_url:
            incidents = await pagerduty_incidents(
                spec.pagerduty_url, spec.pagerduty_token, ctx.plan.gates.timeout
            )
            found += incidents
            sources.append(f"PagerDuty {len(incidents)} open")
    except PortError as exc:
        return result(ctx, GATE_ID, GateStatus.ERROR, f"cannot read incidents: {exc}")
    matchers = ", ".join(spec.matchers)
    detail = f"matchers: {matchers}\n" + "\n".join(f"  {f}" for f in found)
    if found:
        evidence = f"{len(found)} active SEV1/SEV2: " + "; ".join(found[:3])
        return result(ctx, GATE_ID, GateStatus.FAIL, evidence, detail)
    return result(ctx, GATE_ID, GateStatus.PASS, "no active SEV1/SEV2 (" + "; ".join(sources) + ")", detail)
