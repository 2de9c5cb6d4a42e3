"""List and watch DeployRuns through the adapter's KubeApi, keeping a cache of what exists.

The usual informer loop: list (remember ``resourceVersion``), then watch from it; a watch that
ends is reopened from the last version seen; ``410 Gone`` (the version was compacted away) means
list again. The list goes through :meth:`KubeApi.request`, so it has the adapter's retries,
deadlines and RBAC messages; the watch streams lines over the same authenticated client.

Today the agent only *reports* what it would drive (see :mod:`core.agent.runner`): driving a run
needs the resume machinery, so a second replica can pick it up where the first one stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.agent.crd import GROUP, PLURAL, VERSION
from core.domain import Outcome

log = logging.getLogger("deploydeck.agent")

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class RunChange:
    type: str  # ADDED, MODIFIED, DELETED (a relist's disappearances come as DELETED too)
    obj: dict[str, Any]

    @property
    def key(self) -> Key:
        meta = self.obj.get("metadata", {})
        return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def runs_path(namespace: str | None) -> str:
    base = f"/apis/{GROUP}/{VERSION}"
    return f"{base}/namespaces/{namespace}/{PLURAL}" if namespace else f"{base}/{PLURAL}"


def phase_of(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "pending")


def finished(obj: dict[str, Any]) -> bool:
    outcome = (obj.get("status") or {}).get("outcome")
    return outcome in {o.value for o in Outcome}


class DeployRunWatcher:
    """One namespace (or all, with ``namespace=None``): keeps ``runs`` current, calls ``on_change``."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str | None,
        on_change: Callable[[RunChange], Awaitable[None]],
        *,
        watch_timeout_s: int = 290,
        retry_s: float = 1.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.on_change = on_change
        self.watch_timeout_s = watch_timeout_s
        self.retry_s = retry_s
        self.runs: dict[Key, dict[str, Any]] = {}
        self.resource_version = ""
        self.synced = False  # listed at least once, and the last list or watch did not fail
        self.last_error = ""
        self.lists = 0

    async def run(self) -> None:
        """Forever: list, then watch; errors are logged, retried, and make the agent not ready."""
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except _Gone:
                self.resource_version = ""  # compacted: start over from a list
            except Exception as exc:  # one failed round must not end the agent; readiness shows it
                self.synced = False
                self.last_error = str(exc)
                log.warning("watch %s: %s", self.namespace or "all namespaces", exc)
                await self.api.clock.sleep(self.retry_s)

    async def _list(self) -> None:
        payload = await self.api.request("GET", runs_path(self.namespace))
        self.lists += 1
        seen: dict[Key, dict[str, Any]] = {}
        for item in payload.get("items", []):
            item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
            item.setdefault("kind", "DeployRun")
            key = RunChange("", item).key
            seen[key] = item
            await self._apply(RunChange("MODIFIED" if key in self.runs else "ADDED", item))
        for key in set(self.runs) - set(seen):
            await self._apply(RunChange("DELETED", self.runs[key]))
        self.resource_version = str(payload.get("metadata", {}).get("resourceVersion", ""))
        self.synced = True
        self.last_error = ""

    async def _apply(self, change: RunChange) -> None:
        if change.type == "DELETED":
            self.runs.pop(change.key, None)
        else:
            self.runs[change.key] = change.obj
        await self.on_change(change)

    async def _watch(self) -> None:
        query = {
            "watch": "1",
            "resourceVersion": self.resource_version,
            "timeoutSeconds": str(self.watch_timeout_s),
            "allowWatchBookmarks": "true",
        }
        client = self.api._client  # the same authenticated client KubeApi uses for its requests
        method, url, headers, body, post = await client.param_serialize(
            method="GET",
            resource_path=runs_path(self.namespace),
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = await client.call_api(
            method, url, headers, body, post, _request_timeout=self.watch_timeout_s + 30
        )
        stream = response.response
        try:
            if response.status == 410:
                raise _Gone
            if response.status != 200:
                raw = await stream.read()
                raise KubeApiError(
                    f"watch {PLURAL}: HTTP {response.status}: {raw[:200].decode('utf-8', 'replace')}",
                    response.status,
                )
            while line := await stream.content.readline():
                if not line.strip():
                    continue
                await self._event(json.loads(line))
        finally:
            stream.release()

    async def _event(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise KubeApiError(f"watch {PLURAL}: {obj.get('message', obj)}", int(obj.get("code") or 0))
        version = obj.get("metadata", {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return
        if kind in {"ADDED", "MODIFIED", "DELETED"}:
            await self._apply(RunChange(str(kind), obj))


class _Gone(Exception):
    """410: the resourceVersion is too old to watch from."""
