"""Sending an API request on to the replica that drives the run.

One replica drives a run (it holds the run's Lease); a Service may send a caller to any replica.
The others pass the request on to the driver's API URL (``RunView.driver_url``) with the caller's
own token, so the driver authenticates, authorizes and journals it. A forwarded request carries
:data:`FORWARDED` and is never forwarded again: if the lease moved meanwhile the caller gets a 503
and retries, rather than the request bouncing between replicas.

Between HTTPS replicas the trust anchor is their shared serving certificate (see
:func:`forward_context`), so a caller's token only ever goes to a holder of that key.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from core.agent.runs import RunView

#: set on a forwarded request: the replica it came from (a forwarded request is not forwarded again)
FORWARDED = "X-Deploydeck-Forwarded-By"
#: what is passed on: the caller's credentials and what the driver needs to answer the same way
_PASSED = ("Authorization", "Content-Type", "Last-Event-ID", "Accept")


class HttpProblem(Exception):
    """An API answer other than success: ``status`` and the message the caller reads (JSON)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def forward_context(tls_cert: str | Path | None, ca: str | Path | None = None) -> ssl.SSLContext | None:
    """How this replica verifies another's HTTPS API when it forwards a request there.

    With ``ca``: that CA, host names checked. Without: the replicas' shared serving certificate is
    the only trust anchor, a pin: a peer must present that very certificate (so hold its key), and
    its host name is not checked, since replicas are reached at Pod IPs no certificate can list."""
    if tls_cert is None and ca is None:
        return None
    context = ssl.create_default_context(cafile=str(ca or tls_cert))
    if ca is None:
        context.check_hostname = False  # verify_mode stays CERT_REQUIRED: the pin is checked
    return context


class Forwarder:
    def __init__(
        self,
        own_url: Callable[[], str],
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
        keepalive_s: float = 15.0,
        count: Callable[[str], None] | None = None,
    ) -> None:
        self._own_url = own_url  # read each time: the agent learns its URL once it is serving
        self.ssl = ssl_context
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self.count = count or (lambda _endpoint: None)
        self._session: aiohttp.ClientSession | None = None

    def own_url(self) -> str:
        return (self._own_url() or "").rstrip("/")

    def is_self(self, url: str) -> bool:
        return bool(self.own_url()) and url.rstrip("/") == self.own_url()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(
        self, request: web.Request, view: RunView, endpoint: str, *, stream: bool = False
    ) -> web.StreamResponse:
        """The driver's answer to this request; HttpProblem(503) when nobody (else) drives it."""
        ns, name = view.key
        url = view.driver_url
        if not url or FORWARDED in request.headers or self.is_self(url):
            came = request.headers.get(FORWARDED)
            why = (
                f"forwarded here by {came}, but this replica does not drive it"
                if came
                else "no replica drives it"
            )
            raise HttpProblem(503, f"deployrun {ns}/{name}: {why} right now; retry in a few seconds")
        headers = {h: request.headers[h] for h in _PASSED if h in request.headers}
        headers[FORWARDED] = self.own_url() or "unknown"
        timeout = (
            # an event stream lasts as long as the caller watches; a silent one is dead after 3 keepalives
            aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=3 * self.keepalive_s + 5)
            if stream
            else aiohttp.ClientTimeout(total=self.timeout_s)
        )
        self.count(endpoint)
        try:
            upstream = await self._client().request(
                request.method,
                url.rstrip("/") + request.rel_url.path_qs,
                headers=headers,
                data=await request.read() or None,
                timeout=timeout,
                ssl=self.ssl,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HttpProblem(
                503,
                f"deployrun {ns}/{name}: the replica driving it ({url}) did not answer: {type(exc).__name__} {exc}",
            ) from None
        try:
            kind = upstream.headers.get("Content-Type", "application/json")
            if not stream or upstream.status != 200:
                return web.Response(
                    body=await upstream.read(), status=upstream.status, headers={"Content-Type": kind}
                )
            response = web.StreamResponse(
                status=200,
                headers={"Content-Type": kind, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
            await response.prepare(request)
            with contextlib.suppress(aiohttp.ClientError, ConnectionResetError, TimeoutError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            return response
        finally:
            upstream.release()

    async def attached_elsewhere(
        self, request: web.Request, views: dict[tuple[str, str], RunView], runs_path: str
    ) -> dict[tuple[str, str], list[str]]:
        """Who is attached to the runs other replicas drive (their streams are open there), asked
        with the caller's token; best effort and quick: a replica that does not answer within a
        second leaves "attached" as this replica knows it."""
        urls = sorted(
            {
                v.driver_url
                for v in views.values()
                if v.rollout is None and v.driver_url and not self.is_self(v.driver_url)
            }
        )
        out: dict[tuple[str, str], list[str]] = {}

        async def ask(url: str) -> None:
            headers = {"Authorization": request.headers.get("Authorization", ""), FORWARDED: self.own_url()}
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
                async with self._client().get(
                    url.rstrip("/") + runs_path,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=1.0),
                    ssl=self.ssl,
                ) as response:
                    if response.status == 200:
                        rows: list[dict[str, Any]] = (await response.json())["runs"]
                        for row in rows:
                            key = (row["namespace"], row["name"])
                            if key in views and views[key].driver_url == url:
                                out[key] = list(row.get("attached") or [])

        await asyncio.gather(*(ask(u) for u in urls))
        return out
