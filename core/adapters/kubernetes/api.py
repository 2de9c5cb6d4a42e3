"""One HTTP call to the Kubernetes API with deploydeck's error handling.

Transient answers (429, 5xx, timeouts, dropped connections) are retried with jittered
exponential backoff until a deadline measured on the Clock; 401/403 become RBAC messages
naming verb, resource and namespace; everything else is a KubeApiError the caller can
inspect (404 for "missing", 409 for "re-read and retry").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from core.clock import Clock
from core.ports import ClusterError

_TRANSIENT = {429, 500, 502, 503, 504}
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class KubeApiError(ClusterError):
    def __init__(self, message: str, status: int, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def redact(url: str) -> str:
    """Scheme and host only: a server URL may carry credentials or tokens in its path/query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def describe_path(method: str, path: str, query: dict[str, str] | None) -> tuple[str, str, str, str]:
    """(verb, resource, namespace, name) for a request path, as RBAC names them."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    group = "" if parts[:1] == ["api"] else (parts[1] if len(parts) > 1 else "")
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        plural = f"{plural}/{rest[2]}"
    resource = f"{plural}.{group}" if group else plural
    if method == "GET":
        verb = "get" if name else ("watch" if (query or {}).get("watch") == "true" else "list")
    else:
        verb = _VERBS.get(method, method.lower())
    return verb, resource, namespace, name


class KubeApi:
    def __init__(
        self,
        api_client: Any,
        clock: Clock,
        *,
        deadline_s: float = 30.0,
        request_timeout_s: float = 10.0,
        base_backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        rng: random.Random | None = None,
        credentials: Any = None,
    ) -> None:
        self._client = api_client
        #: core.adapters.kubernetes.credentials.Credentials: renews the token once after a 401
        self.credentials = credentials
        self.clock = clock
        self.deadline_s = deadline_s
        self.request_timeout_s = request_timeout_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._rng = rng or random.Random()
        self.host = redact(api_client.configuration.host)
        self.api_calls: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        #: called as fence(method, path) before every write attempt; raises to refuse it (the lease fence)
        self.fence: Callable[[str, str], None] | None = None

    async def close(self) -> None:
        await self._client.close()

    def _hold(self) -> contextlib.AbstractContextManager[Any]:
        # a VirtualClock must not jump ahead while a real socket is in flight
        hold = getattr(self.clock, "hold", None)
        return hold() if callable(hold) else contextlib.nullcontext()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: dict[str, str] | None = None,
        idempotent: bool = False,
        text: bool = False,
    ) -> dict[str, Any]:
        """`idempotent`: a write without a precondition that sets absolute values (a scale, an
        annotation): a 409 is retried like a transient error instead of asking the caller to re-read.
        `text`: the answer is plain text (a pod's log), returned as ``{"text": ...}``."""
        verb, resource, namespace, name = describe_path(method, path, query)
        started = self.clock.now()
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            if method != "GET" and self.fence is not None:
                self.fence(method, path)  # before every attempt: a retry may come after the lease is gone
            self.api_calls[verb] += 1
            sent: str | None = None
            try:
                status, payload, retry_after, sent = await self._once(
                    method, path, body, content_type, query, text
                )
            except (TimeoutError, OSError, _client_errors()) as exc:
                status, payload, retry_after = (
                    0,
                    {"message": f"{type(exc).__name__}: {exc}".rstrip(": ")},
                    None,
                )
            if 200 <= status < 300:
                return payload
            if status == 401 and not renewed and self.credentials is not None:
                # an expired short-lived token (exec plugin, OIDC, projected SA token): renew it
                # once through the kubeconfig's own loader and retry; a second 401 is final
                renewed = True
                with self._hold():
                    changed = await self.credentials.refresh(sent)
                if changed:
                    continue
            if status not in _TRANSIENT and status != 0 and not (idempotent and status == 409):
                raise self._error(status, payload, verb, resource, namespace, name)
            delay = min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempt - 1))
            delay *= 0.5 + self._rng.random() / 2  # jitter: many clients must not retry in lockstep
            if retry_after is not None:
                # the server knows its load: honour its Retry-After; the deadline below still bounds it
                delay = max(delay, retry_after)
            elapsed = (self.clock.now() - started).total_seconds()
            if elapsed + delay > self.deadline_s:
                what = f"HTTP {status}" if status else payload.get("message", "no answer")
                raise KubeApiError(
                    f"{verb} {resource} {_where(namespace, name)} on {self.host}: gave up after {attempt} attempts "
                    f"in {elapsed:.1f}s ({what})",
                    status,
                    "Timeout",
                )
            self.retries[str(status or "network")] += 1
            await self.clock.sleep(delay)

    async def _once(
        self,
        method: str,
        path: str,
        body: Any,
        content_type: str | None,
        query: dict[str, str] | None,
        text: bool = False,
    ) -> tuple[int, dict[str, Any], float | None, str | None]:
        """(status, payload, Retry-After, the token the request carried)."""
        # a log is served as text/plain; its errors still come as a JSON Status
        headers = {"Accept": "text/plain, application/json" if text else "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        with self._hold():
            serialized = await self._client.param_serialize(
                method=method,
                resource_path=path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            m, url, hdrs, data, post = serialized
            # what this request carries: a shared client's token may be renewed by another caller
            sent = self._client.configuration.api_key.get("BearerToken")
            # asyncio.timeout, not wait_for: in 3.11 wait_for drops a cancellation (a signal, a lost
            # lease) that lands in the same turn as the answer, and the caller went on driving
            async with asyncio.timeout(self.request_timeout_s + 1):
                response = await self._client.call_api(
                    m, url, hdrs, data, post, _request_timeout=self.request_timeout_s
                )
                raw = await response.read()
        if text and 200 <= response.status < 300:
            return response.status, {"text": raw.decode("utf-8", "replace")}, None, sent
        try:
            payload = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            payload = {"message": raw[:200].decode("utf-8", "replace")}
        if not isinstance(payload, dict):
            payload = {"items": payload}
        retry_after: float | None = None
        header = response.headers.get("Retry-After") if response.headers else None
        if header:
            with contextlib.suppress(ValueError):
                retry_after = float(header)
        return response.status, payload, retry_after, sent

    def _error(
        self, status: int, payload: dict[str, Any], verb: str, resource: str, ns: str, name: str
    ) -> KubeApiError:
        message = str(payload.get("message", "")) or "no message"
        reason = str(payload.get("reason", ""))
        scope = f'in namespace "{ns}"' if ns else "at cluster scope"
        if status == 401:
            renewed = " (renewed once, still rejected)" if self.credentials is not None else ""
            return KubeApiError(
                f"not authenticated by {self.host} (HTTP 401) to {verb} {resource} {scope}{renewed}: "
                "check the kubeconfig credentials for this context",
                status,
                reason,
            )
        if status == 403:
            return KubeApiError(
                f"RBAC: not allowed to {verb} {resource} {scope} (HTTP 403 from {self.host}); "
                f"grant it with a Role like examples/rbac.yaml. Server said: {message}",
                status,
                reason,
            )
        if status == 404:
            kind = resource.split(".")[0].split("/")[0].rstrip("s")
            return KubeApiError(
                f"{kind} {_where(ns, name)} not found on {self.host} (HTTP 404 on {verb} {resource})",
                status,
                reason,
            )
        return KubeApiError(
            f"{verb} {resource} {_where(ns, name)} failed on {self.host}: HTTP {status} {reason}: {message}",
            status,
            reason,
        )


def _where(ns: str, name: str) -> str:
    return "/".join(p for p in (ns, name) if p) or "(all)"


def _client_errors() -> type[BaseException]:
    import aiohttp

    return aiohttp.ClientError
