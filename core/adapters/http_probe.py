"""HTTP health checks (the Probe port) over httpx, with the `/health/ready` dependency detail."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.adapters.deadline import DeadlineExceeded, within
from core.adapters.tls import verify
from core.domain import ProbeResult

if TYPE_CHECKING:
    import httpx

_OK_WORDS = {"ok", "up", "pass", "passing", "healthy", "green", "ready", "true"}


def redact_url(url: str) -> str:
    """Scheme and host only: paths and queries of webhooks and APIs can carry secrets."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "<url>"
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{host}"


def probe_label(url: str) -> str:
    """Scheme, host and path of a health URL; user info and query are dropped (they may hold tokens)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "<url>"
    return redact_url(url) + parts.path


def _healthy(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        value = value.get("status", value.get("state"))
    return str(value).strip().lower() in _OK_WORDS


def parse_dependencies(body: object) -> dict[str, bool]:
    """`{"dependencies": {"db": "ok"}}`, `{"checks": [{"name": "db", "status": "up"}]}` and similar."""
    if not isinstance(body, dict):
        return {}
    deps = body.get("dependencies", body.get("checks", body.get("details")))
    if isinstance(deps, dict):
        return {str(k): _healthy(v) for k, v in deps.items()}
    if isinstance(deps, list):
        out: dict[str, bool] = {}
        for item in deps:
            if isinstance(item, dict) and "name" in item:
                out[str(item["name"])] = _healthy(item)
        return out
    return {}


class HttpProbe:
    """Probe port: one shared AsyncClient; every failure is a ProbeResult with ok=False, never raised."""

    def __init__(self, client: httpx.AsyncClient | None = None, *, verify_tls: bool = True) -> None:
        self._client = client
        self._own = client is None
        self._verify = verify_tls

    def _get_client(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(verify=verify(self._verify), follow_redirects=False)
        return self._client

    async def check(
        self,
        url: str,
        *,
        expect_status: int = 200,
        expect_body: str | None = None,
        timeout_s: float = 5.0,
    ) -> ProbeResult:
        import httpx

        label = probe_label(url)
        client = self._get_client()
        started = time.monotonic()  # latency is a property of the real request, not of the Clock
        try:
            # httpx's timeout is per read; a health endpoint dribbling bytes must still fail in time
            resp = await within(
                timeout_s,
                client.get(url, timeout=timeout_s, headers={"Accept": "application/json"}),
                what="health probe",
            )
        except (httpx.TimeoutException, DeadlineExceeded):
            return ProbeResult(url=label, ok=False, detail=f"timed out after {timeout_s:g}s")
        except httpx.HTTPError as exc:
            return ProbeResult(url=label, ok=False, detail=f"unreachable ({type(exc).__name__})")
        latency = (time.monotonic() - started) * 1000.0
        text = resp.text
        deps: dict[str, bool] = {}
        body_status: str | None = None
        if "json" in resp.headers.get("content-type", "") or text.lstrip().startswith("{"):
            try:
                body = resp.json()
            except ValueError:
                body = None
            deps = parse_dependencies(body)
            if isinstance(body, dict) and isinstance(body.get("status"), str):
                body_status = body["status"]
        problems: list[str] = []
        if resp.status_code != expect_status:
            problems.append(f"HTTP {resp.status_code}, expected {expect_status}")
        if expect_body is not None and expect_body not in text:
            problems.append(f"body lacks {expect_body!r}")
        failed = sorted(name for name, ok in deps.items() if not ok)
        if failed:
            problems.append("dependencies failing: " + ", ".join(failed))
        elif body_status is not None and not _healthy(body_status) and not deps:
            problems.append(f"status {body_status!r}")
        detail = "; ".join(problems) if problems else f"HTTP {resp.status_code}"
        return ProbeResult(
            url=label,
            ok=not problems,
            status=resp.status_code,
            latency_ms=latency,
            detail=detail,
            dependencies=deps,
        )

    async def close(self) -> None:
        if self._client is not None and self._own:
            await self._client.aclose()
            self._client = None
