"""The client of the agent's HTTP API (core.agent.api): what `deploydeck attach` and `run --agent` use.

Every request carries the caller's Kubernetes bearer token, taken from their kubeconfig context by
the same loader the Kubernetes adapter uses (static ``token``, ``tokenFile``, exec plugins with their
``expirationTimestamp``, OIDC): the agent authenticates it with a TokenReview, so whatever kubectl
would send is what the agent sees. A 401 renews the credential once (an exec plugin is run again)
and retries, as the adapter does.

Errors name the endpoint and the status (:class:`AgentError`). Every call has a total deadline;
reads and connection failures are retried inside it, commands only when the request never left
(a command that may have reached the agent is not sent twice). The event stream (Server-Sent
Events) reconnects with ``Last-Event-ID`` so nothing is missed or repeated, and gives up, saying so,
when the agent stays unreachable for ``reconnect_deadline_s``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.agent.runs import SUBRESOURCE_OF, FleetRow
from core.clock import Clock, SystemClock
from core.events import Event, Finished, parse_event

API = "/api/v1"
VERB_SUBRESOURCE = SUBRESOURCE_OF  # the commands the API takes (core.agent.runs)
_TRANSIENT = {502, 503, 504}
M = TypeVar("M", bound=BaseModel)


# --- what the API answers (pydantic at the boundary; unknown fields are ignored, so an agent one
# --- version ahead still works) ----------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Identity(_Answer):
    username: str
    groups: list[str] = Field(default_factory=list)


class FleetEntry(FleetRow):
    """A fleet row as the API serves it: the run's row plus who is attached to it now."""

    model_config = ConfigDict(extra="ignore")
    attached: list[str] = Field(default_factory=list)


class Verdict(_Answer):
    ok: bool
    reason: str = ""


class RunState(_Answer):
    """What the engine allows now, streamed after every event (``event: state``)."""

    phase: str = "pending"
    weight: int = 0
    outcome: str | None = None
    step_index: int | None = None
    allowed: dict[str, Verdict] = Field(default_factory=dict)
    proceed_preview: str | None = None
    promote_early_preview: str | None = None
    pending_reasons: list[str] = Field(default_factory=list)


class You(_Answer):
    """The caller, and what their RBAC lets them do on this run (SubjectAccessReviews)."""

    username: str
    groups: list[str] = Field(default_factory=list)
    may: dict[str, bool] = Field(default_factory=dict)


class RunDetail(_Answer):
    """``plan`` and ``state`` are null when no replica drives the run (finished, or between two)."""

    row: FleetEntry
    plan: dict[str, Any] | None = None
    state: RunState | None = None
    you: You


class CommandAnswer(_Answer):
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class StreamEvent:
    """An engine event from the stream; ``seq`` is its SSE id (what ``Last-Event-ID`` resumes after)."""

    seq: int | None
    event: Event


@dataclass(frozen=True)
class StreamState:
    state: RunState


StreamItem = StreamEvent | StreamState


class AgentError(Exception):
    """A call to the agent failed: the message names the agent, the endpoint and the status."""

    def __init__(self, message: str, *, endpoint: str, status: int = 0) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status  # 0: no HTTP answer (unreachable, timed out)

    @property
    def unreachable(self) -> bool:
        return self.status == 0


# --- credentials ----------------------------------------------------------------------------


class TokenSource(Protocol):
    async def header(self) -> str | None:
        """The Authorization header value (``Bearer …``), renewed first when its own expiry passed."""
        ...

    async def renew(self) -> bool:
        """After a 401: get a new credential now; True when it changed (worth one retry)."""
        ...


class StaticToken:
    """A bearer token given as is (tests, `--token`-style callers)."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    async def header(self) -> str | None:
        return f"Bearer {self.token}" if self.token else None

    async def renew(self) -> bool:
        return False


class KubeconfigToken:
    """The bearer token of one kubeconfig context, through kubernetes.aio's own loader (kept, so an
    exec plugin runs again once its ExecCredential's ``expirationTimestamp`` passes, a tokenFile is
    re-read, an OIDC token refreshed). Also what the context says besides: its namespace, its
    cluster's CA, and an API client for the cluster itself (``run --agent`` creates the DeployRun
    with it)."""

    def __init__(self, api_client: Any, credentials: Any, *, context: str | None, namespace: str | None):
        self.api_client = api_client
        self.credentials = credentials  # core.adapters.kubernetes.credentials.Credentials
        self.context = context
        self.namespace = namespace

    @classmethod
    async def load(cls, kubeconfig: str | None, context: str | None) -> KubeconfigToken:
        """Raises core.ports.ClusterError naming the kubeconfig when it cannot be read."""
        from core.adapters.kubernetes.credentials import load

        api_client, credentials = await load(kubeconfig, context)
        current: dict[str, Any] = {}
        loader = credentials.loader
        if hasattr(loader, "current_context"):
            current = dict(loader.current_context or {})
        namespace = (current.get("context") or {}).get("namespace")
        return cls(api_client, credentials, context=current.get("name") or context, namespace=namespace)

    @property
    def ca_file(self) -> str | None:
        """The cluster's CA bundle (a file the loader wrote from certificate-authority-data)."""
        return getattr(self.credentials.configuration, "ssl_ca_cert", None) or None

    async def header(self) -> str | None:
        configuration = self.credentials.configuration
        await self.credentials.before_request(configuration)
        value = configuration.api_key.get("BearerToken")
        return str(value) if value else None

    async def renew(self) -> bool:
        return bool(await self.credentials.refresh())

    async def close(self) -> None:
        await self.api_client.close()


# --- the client -------------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_agent_url(url: str) -> str:
    """The agent's base URL without a trailing slash; ValueError saying what is wrong.

    A bearer token is a password: it goes over plain HTTP only to this machine (the agent, too,
    serves plain HTTP only on loopback)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"agent URL {url!r}: expected http(s)://HOST:PORT")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(
            f"agent URL {url!r}: plain HTTP sends your Kubernetes token in the clear; use https:// "
            "(plain HTTP only to 127.0.0.1/localhost)"
        )
    return url.strip().rstrip("/")


def run_path(namespace: str, name: str) -> str:
    return f"{API}/namespaces/{quote(namespace, safe='')}/runs/{quote(name, safe='')}"


def _why(payload: Any, text: str) -> str:
    if isinstance(payload, dict) and payload.get("error"):
        return str(payload["error"])
    return text.strip()[:300] or "no message"


class AgentClient:
    """One agent, one caller. Use as ``async with AgentClient(...) as client``."""

    def __init__(
        self,
        url: str,
        token: TokenSource | str | None,
        *,
        ca_file: str | Path | None = None,
        clock: Clock | None = None,
        deadline_s: float = 15.0,
        request_timeout_s: float = 5.0,
        stream_idle_s: float = 45.0,
        reconnect_deadline_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        tls_server_name: str | None = None,
    ) -> None:
        self.url = check_agent_url(url)
        # through `kubectl port-forward` the agent is 127.0.0.1, its certificate names its Service:
        # verify (and send SNI) for that name, as a kubeconfig's tls-server-name does
        self._extensions = {"sni_hostname": tls_server_name} if tls_server_name else {}
        self.token: TokenSource = token if not isinstance(token, str | None) else StaticToken(token)
        self.clock = clock or SystemClock()
        self.deadline_s = deadline_s
        self.request_timeout_s = request_timeout_s
        # the agent sends a keepalive every 15 s: three missed ones mean the connection is dead
        self.stream_idle_s = stream_idle_s
        self.reconnect_deadline_s = reconnect_deadline_s
        self.reconnects = 0  # streams reopened with Last-Event-ID (tests and benchmarks read it)
        verify: ssl.SSLContext | bool = True
        if ca_file is not None and self.url.startswith("https://"):
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._http = httpx.AsyncClient(
            base_url=self.url,
            verify=verify,
            timeout=httpx.Timeout(request_timeout_s),
            transport=transport,
            follow_redirects=False,
        )
        self._rng = random.Random()

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # --- plumbing -------------------------------------------------------------------------

    def _error(self, method: str, path: str, status: int, why: str) -> AgentError:
        endpoint = f"{method} {path}"
        if status == 0:
            return AgentError(
                f"agent {self.url}: {endpoint}: unreachable ({why}); is `deploydeck agent --api-port` "
                "running there? Give its URL with --agent or $DEPLOYDECK_AGENT",
                endpoint=endpoint,
            )
        hint = ""
        if status == 401:
            hint = " (your kubeconfig credential was not accepted: check --context / --kubeconfig)"
        elif status == 403:
            hint = " (your Kubernetes RBAC does not allow it)"
        return AgentError(
            f"agent {self.url}: {endpoint}: HTTP {status}: {why}{hint}", endpoint=endpoint, status=status
        )

    def _tls_error(self, method: str, path: str, exc: Exception) -> AgentError:
        # not "unreachable": the agent answered, with a certificate nobody told us to trust
        return AgentError(
            f"agent {self.url}: {method} {path}: TLS: the agent's certificate is not trusted ({exc}); "
            "give its CA with --agent-ca PATH (default: your kubeconfig cluster's CA)",
            endpoint=f"{method} {path}",
        )

    async def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        auth = await self.token.header()
        if auth:
            headers["Authorization"] = auth
        headers.update(extra or {})
        return headers

    async def _backoff(self, attempt: int) -> float:
        delay = min(2.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + self._rng.random() / 2)
        await self.clock.sleep(delay)
        return delay

    async def _call(
        self, method: str, path: str, body: Any = None, *, retry_sent: bool, deadline_s: float | None = None
    ) -> tuple[int, Any]:
        """(status, JSON payload) of a 2xx or 409; AgentError otherwise. ``retry_sent``: the request
        may be repeated after it reached the agent (reads); commands are only repeated when the
        connection could not even be made."""
        started = self.clock.now()
        deadline = self.deadline_s if deadline_s is None else deadline_s
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            elapsed = (self.clock.now() - started).total_seconds()
            remaining = deadline - elapsed
            try:
                async with asyncio.timeout(max(0.1, remaining)):
                    response = await self._http.request(
                        method, path, json=body, headers=await self._headers(), extensions=self._extensions
                    )
                status, text = response.status_code, response.text
            except httpx.ConnectError as exc:
                if _untrusted(exc):
                    raise self._tls_error(method, path, exc) from None
                status, text = 0, f"{type(exc).__name__}: {exc}".rstrip(": ")
            except (httpx.TransportError, TimeoutError) as exc:
                if not retry_sent:
                    raise self._error(method, path, 0, f"no answer: {type(exc).__name__}") from None
                status, text = 0, f"no answer within the deadline ({type(exc).__name__})"
            payload: Any = None
            if text:
                try:
                    payload = json.loads(text)
                except json.JSONDecodeError:
                    payload = None
            if 200 <= status < 300 or status == 409:
                return status, payload
            if status == 401 and not renewed:
                renewed = True  # an expired short-lived credential: renew once and retry
                if await self.token.renew():
                    continue
            transient = status == 0 or (status in _TRANSIENT and retry_sent)
            elapsed = (self.clock.now() - started).total_seconds()
            if not transient or elapsed >= deadline:
                why = _why(payload, text)
                if transient:
                    why = f"gave up after {attempt} attempts in {elapsed:.1f}s: {why}"
                raise self._error(method, path, status, why)
            await self._backoff(attempt)

    async def _get(self, path: str) -> Any:
        return (await self._call("GET", path, retry_sent=True))[1]

    def _parse(self, model: type[M], payload: Any, endpoint: str) -> M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(body)"
            raise AgentError(
                f"agent {self.url}: {endpoint}: unexpected answer at {where}: {first['msg']}",
                endpoint=endpoint,
                status=200,
            ) from None

    # --- the API ---------------------------------------------------------------------------

    async def whoami(self, *, deadline_s: float | None = None) -> Identity:
        """Who the agent says the caller is; ``deadline_s`` shorter than the client's for the first
        call of a command line, so a wrong URL is said in seconds."""
        path = f"{API}/whoami"
        _, payload = await self._call("GET", path, retry_sent=True, deadline_s=deadline_s)
        return self._parse(Identity, payload, f"GET {path}")

    async def runs(self) -> list[FleetEntry]:
        path = f"{API}/runs"
        payload = await self._get(path)
        if not isinstance(payload, dict) or not isinstance(payload.get("runs"), list):
            raise AgentError(
                f'agent {self.url}: GET {path}: expected {{"runs": [...]}}',
                endpoint=f"GET {path}",
                status=200,
            )
        return [self._parse(FleetEntry, row, f"GET {path}") for row in payload["runs"]]

    async def run(self, namespace: str, name: str) -> RunDetail:
        path = run_path(namespace, name)
        return self._parse(RunDetail, await self._get(path), f"GET {path}")

    async def command(
        self, namespace: str, name: str, verb: str, body: dict[str, Any] | None = None
    ) -> CommandAnswer:
        """200: done; 409: the engine refused (``ok`` false, with its reason). 403 (RBAC) and every
        other failure raise AgentError."""
        if verb not in VERB_SUBRESOURCE:
            raise ValueError(f"unknown command {verb!r}; one of {', '.join(VERB_SUBRESOURCE)}")
        path = f"{run_path(namespace, name)}/commands/{verb}"
        status, payload = await self._call("POST", path, body or {}, retry_sent=False)
        if status == 409 and not isinstance(payload, dict):
            payload = {"ok": False, "reason": "refused (HTTP 409)"}
        return self._parse(CommandAnswer, payload, f"POST {path}")

    async def events(
        self, namespace: str, name: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[StreamItem]:
        """Every event of the run (history first, then live) and the state after each.

        A dropped connection is reopened with ``Last-Event-ID`` (nothing repeated, nothing
        missed); the iterator ends when the stream closes after the run's ``finished`` event, and
        raises AgentError when the agent refuses (401/403/404) or stays unreachable longer than
        ``reconnect_deadline_s``."""
        path = f"{run_path(namespace, name)}/events"
        last = last_event_id
        finished = False
        failing_since = None
        attempt = 0
        renewed = False
        while True:
            extra = {"Accept": "text/event-stream"}
            if last is not None:
                extra["Last-Event-ID"] = str(last)
            why = ""
            status = 0
            try:
                timeout = httpx.Timeout(self.request_timeout_s, read=self.stream_idle_s)
                async with asyncio.timeout(self.request_timeout_s):  # an exec plugin that hangs
                    headers = await self._headers(extra)
                request = self._http.build_request(
                    "GET",
                    path,
                    headers=headers,
                    timeout=timeout,
                    extensions=self._extensions,
                )
                response = await self._http.send(request, stream=True)
                try:
                    status = response.status_code
                    if status != 200:
                        text = (await response.aread()).decode("utf-8", "replace")
                        try:
                            why = _why(json.loads(text), text)
                        except json.JSONDecodeError:
                            why = _why(None, text)
                    else:
                        failing_since, attempt, renewed = None, 0, False
                        async for kind, ident, data in _sse(response.aiter_lines()):
                            item = self._item(kind, data, path)
                            if item is None:
                                continue
                            if isinstance(item, StreamEvent):
                                seq = item.seq if item.seq is not None else _int(ident)
                                if seq is not None and last is not None and seq <= last:
                                    continue  # already seen before a reconnect
                                last = seq if seq is not None else last
                                item = StreamEvent(seq, item.event)
                                finished = finished or isinstance(item.event, Finished)
                            yield item
                        why = "the agent closed the stream"
                finally:
                    await response.aclose()
            except (httpx.TransportError, TimeoutError) as exc:
                if _untrusted(exc):
                    raise self._tls_error("GET", path, exc) from None
                why = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if status == 200 and finished:
                return  # the run is over and the agent said everything
            if status == 401 and not renewed:
                renewed = True
                if await self.token.renew():
                    continue
            if status not in {0, 200} and status not in _TRANSIENT:
                raise self._error("GET", path, status, why)
            now = self.clock.now()
            failing_since = failing_since or now
            down = (now - failing_since).total_seconds()
            if down >= self.reconnect_deadline_s:
                raise self._error("GET", path, status, f"stream lost for {down:.0f}s: {why}")
            attempt += 1
            self.reconnects += 1
            await self._backoff(attempt)

    def _item(self, kind: str, data: str, path: str) -> StreamItem | None:
        if kind not in {"event", "state"}:
            return None  # a kind this client does not know yet
        try:
            raw = json.loads(data)
        except json.JSONDecodeError:
            raise AgentError(
                f"agent {self.url}: GET {path}: a '{kind}' message is not JSON: {data[:80]!r}",
                endpoint=f"GET {path}",
                status=200,
            ) from None
        if kind == "state":
            return StreamState(self._parse(RunState, raw, f"GET {path}"))
        try:
            return StreamEvent(None, parse_event(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise AgentError(
                f"agent {self.url}: GET {path}: event {raw.get('type') if isinstance(raw, dict) else '?'} "
                f"at {'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
                endpoint=f"GET {path}",
                status=200,
            ) from None


def _untrusted(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


async def _sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str | None, str]]:
    """(event kind, id, data) per message of a text/event-stream (the WHATWG rules this API uses:
    ``:`` comments, ``event``/``id``/``data`` fields, multi-line data joined by newlines)."""
    kind, ident, data = "", None, []
    async for line in lines:
        if line == "":
            if data:
                yield kind or "message", ident, "\n".join(data)
            kind, ident, data = "", None, []
            continue
        if line.startswith(":"):
            continue  # keepalive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            ident = value
