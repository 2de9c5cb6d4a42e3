"""One driver per rollout: a coordination.k8s.io/v1 Lease, renewed in the background."""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.clock import Clock
from core.ports import ClusterError

MERGE = "application/merge-patch+json"


class LeaseInfo(BaseModel):
    holder: str
    acquired: bool
    expires_at: datetime | None = None


def micro_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        with contextlib.suppress(ValueError):
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
    return None


class LeaseKeeper:
    def __init__(self, api: KubeApi, clock: Clock, namespace: str, name: str) -> None:
        self.api = api
        self.clock = clock
        self.namespace = namespace
        self.name = name
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.holder: str | None = None
        self.ttl_s = 15.0
        self.lost: str | None = None  # why the lease was lost, once it is
        self._rv: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def acquire(self, holder: str, ttl_s: float) -> LeaseInfo:
        self.ttl_s = ttl_s
        for _ in range(5):
            now = self.clock.now()
            try:
                lease = await self.api.request("GET", self.path)
            except KubeApiError as exc:
                if exc.status != 404:
                    raise
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "labels": {"app.kubernetes.io/managed-by": "deploydeck"}},
                    "spec": self._spec(holder, now, acquired=True, transitions=0),
                }
                try:
                    created = await self.api.request(
                        "POST", f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases", body=body
                    )
                except KubeApiError as exc2:
                    if exc2.status == 409:
                        continue  # someone else created it first: read theirs
                    raise
                return self._won(holder, created, now)
            spec = lease.get("spec") or {}
            current = spec.get("holderIdentity") or ""
            renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
            expires = renewed + timedelta(seconds=spec.get("leaseDurationSeconds", 0)) if renewed else None
            if current and current != holder and expires is not None and expires > now:
                return LeaseInfo(holder=current, acquired=False, expires_at=expires)
            transitions = int(spec.get("leaseTransitions", 0)) + (0 if current == holder else 1)
            lease["spec"] = {
                **spec,
                **self._spec(holder, now, acquired=current != holder, transitions=transitions),
            }
            if current == holder and spec.get("acquireTime"):
                lease["spec"]["acquireTime"] = spec["acquireTime"]
            try:
                updated = await self.api.request("PUT", self.path, body=lease)
            except KubeApiError as exc:
                if exc.status == 409:
                    continue  # another instance moved first; look again
                raise
            return self._won(holder, updated, now)
        raise ClusterError(f"lease {self.namespace}/{self.name}: kept conflicting with another instance")

    def _spec(self, holder: str, now: datetime, *, acquired: bool, transitions: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": holder,
            "leaseDurationSeconds": max(1, math.ceil(self.ttl_s)),
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }
        if acquired:
            spec["acquireTime"] = micro_time(now)
        return spec

    def _won(self, holder: str, lease: dict[str, Any], now: datetime) -> LeaseInfo:
        self.holder = holder
        self.lost = None
        self._rv = lease["metadata"]["resourceVersion"]
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._renew_loop())
        return LeaseInfo(holder=holder, acquired=True, expires_at=now + timedelta(seconds=self.ttl_s))

    async def renew(self) -> None:
        if self.holder is None:
            raise ClusterError(f"lease {self.namespace}/{self.name} is not held")
        now = self.clock.now()
        patch = {"metadata": {"resourceVersion": self._rv}, "spec": {"renewTime": micro_time(now)}}
        try:
            lease = await self.api.request("PATCH", self.path, body=patch, content_type=MERGE)
        except KubeApiError as exc:
            if exc.status != 409:
                raise
            lease = await self.api.request("GET", self.path)
            holder = (lease.get("spec") or {}).get("holderIdentity")
            if holder != self.holder:
                self.lost = f"lease {self.namespace}/{self.name} was taken over by {holder or 'nobody'}"
                self.holder = None
                raise ClusterError(self.lost) from None
            self._rv = lease["metadata"]["resourceVersion"]
            lease = await self.api.request(
                "PATCH",
                self.path,
                body={"metadata": {"resourceVersion": self._rv}, "spec": {"renewTime": micro_time(now)}},
                content_type=MERGE,
            )
        self._rv = lease["metadata"]["resourceVersion"]

    async def _renew_loop(self) -> None:
        while self.holder is not None:
            await self.clock.sleep(self.ttl_s / 3)
            try:
                await self.renew()
            except ClusterError as exc:
                self.lost = self.lost or str(exc)
                return

    async def release(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.holder is None:
            return
        self.holder = None
        patch = {
            "metadata": {"resourceVersion": self._rv},
            "spec": {
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "renewTime": micro_time(self.clock.now()),
            },
        }
        with contextlib.suppress(KubeApiError):  # lost or changed meanwhile: nothing of ours to release
            await self.api.request("PATCH", self.path, body=patch, content_type=MERGE)
