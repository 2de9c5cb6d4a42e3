"""One driver per rollout: a coordination.k8s.io/v1 Lease, renewed in the background, fencing writes.

Expiry is judged as client-go's leader election judges it: from the LOCAL time at
which this process last saw the lease record change (its resourceVersion), never by
comparing another machine's ``renewTime`` with our clock, so clock skew cannot let a
takeover happen early. A candidate therefore takes a held lease only after watching
it stay unchanged for a whole ``leaseDurationSeconds`` (or when its holder is provably
dead: a process of this host that no longer exists).

The holder acts only until ``valid_until``: the local time its last successful renewal
was *sent* plus the renew deadline (two thirds of the duration). Anyone else waits the
full duration from when they saw that renewal, which is later, so the last third is
the margin for a write already in flight. Every cluster write is checked against
``valid_until`` first (:meth:`LeaseKeeper.check`, installed as the KubeApi fence), so
a process that was stopped (SIGSTOP, a VM pause) cannot write after it wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from core.adapters.deadline import DeadlineExceeded, within
from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.clock import Clock
from core.ports import ClusterError

MERGE = "application/merge-patch+json"
#: fraction of the lease duration within which a renewal must succeed (client-go: 10 s of 15 s)
RENEW_DEADLINE_FRACTION = 2 / 3
#: renewal attempts per lease duration (client-go: RetryPeriod 2 s of 15 s)
RETRIES_PER_DURATION = 6


class LeaseLost(ClusterError):
    """This process no longer holds the rollout's lease: it must not write to the cluster."""


class LeaseInfo(BaseModel):
    holder: str
    acquired: bool
    #: holder's lease ends at the earliest here, by OUR clock (from when we saw it change)
    expires_at: datetime | None = None


def micro_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    from datetime import datetime as dt

    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        with contextlib.suppress(ValueError):
            return dt.strptime(value, fmt).replace(tzinfo=UTC)
    return None


def holder_identity(actor: str) -> str:
    """``actor@host:pid``: names the person and lets a later run on this host see the process died."""
    return f"{actor}@{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(holder: str) -> bool:
    """True only when the holder is a process of THIS host that no longer exists (a crash)."""
    _, _, where = holder.rpartition("@")
    host, _, pid_text = where.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists but not ours to signal
    return False


class LeaseKeeper:
    """Acquire, renew (one loop), fence and release one Lease."""

    def __init__(self, api: KubeApi, clock: Clock, namespace: str, name: str) -> None:
        self.api = api
        # renewals make ONE attempt each (the loop is the retry): no backoff sleeps inside,
        # so the renewal can hold a VirtualClock still from its wake-up to its next sleep
        self._renew_api = copy.copy(api)
        self._renew_api.deadline_s = 0.0
        self.clock = clock
        self.namespace = namespace
        self.name = name
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.holder: str | None = None
        self.ttl_s = 15.0
        self.lost: str | None = None  # why the lease was lost, once it is
        self.renewals = 0
        self.failed_renewals = 0
        self._rv: str | None = None
        self._valid_until: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._observed: tuple[str, datetime] | None = None  # (resourceVersion, local time first seen)
        self._on_lost: list[Callable[[str], None]] = []
        self._seen_change = False

    # --- the fence -------------------------------------------------------------------

    @property
    def renew_deadline_s(self) -> float:
        return self.ttl_s * RENEW_DEADLINE_FRACTION

    @property
    def valid_until(self) -> datetime | None:
        return self._valid_until

    def on_lost(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` once, the moment the lease is known lost."""
        self._on_lost.append(callback)
        if self.lost is not None:
            callback(self.lost)

    def fence(self, *apis: KubeApi) -> None:
        """Every write through these APIs first checks the lease is still ours."""
        for api in apis:
            api.fence = self._fence_write

    def _fence_write(self, method: str, path: str) -> None:
        if path.split("?")[0] == self.path:
            return  # our own renew/release: judged by the API server's resourceVersion check
        self.check(f"{method} {path}")

    def check(self, what: str = "write") -> None:
        """Raise LeaseLost unless we hold the lease by our own clock right now."""
        if self.lost is not None:
            raise LeaseLost(f"refused {what}: {self.lost}")
        if self.holder is None or self._valid_until is None:
            raise LeaseLost(f"refused {what}: lease {self.namespace}/{self.name} is not held")
        now = self.clock.now()
        if now >= self._valid_until:
            late = (now - self._valid_until).total_seconds()
            self._lose(
                f"lease {self.namespace}/{self.name} not renewed in time "
                f"(renew deadline passed {late:.1f}s ago by this process's clock)"
            )
            raise LeaseLost(f"refused {what}: {self.lost}")

    def _lose(self, reason: str) -> None:
        if self.lost is not None:
            return
        self.lost = reason
        self.holder = None
        self._valid_until = None
        for callback in list(self._on_lost):
            callback(reason)

    # --- acquiring ---------------------------------------------------------------------

    async def acquire(self, holder: str, ttl_s: float, *, wait_s: float = 0.0) -> LeaseInfo:
        """Take the lease if it is free, ours, expired by our own observation, or its holder died.

        With ``wait_s`` keep watching a held lease up to that long: a renewal seen meanwhile
        proves the holder alive (return at once); a record unchanged for its whole duration
        is expired (take it).
        """
        self.ttl_s = ttl_s
        give_up = self.clock.now() + timedelta(seconds=wait_s)
        conflicts = 0
        while True:
            info, retry = await self._try_acquire(holder)
            if info.acquired:
                return info
            if retry:
                conflicts += 1
                if conflicts > 5:
                    raise ClusterError(
                        f"lease {self.namespace}/{self.name}: kept conflicting with another instance"
                    )
                continue
            now = self.clock.now()
            renewed_meanwhile = info.expires_at is not None and self._seen_change
            if renewed_meanwhile or now >= give_up:
                return info
            assert info.expires_at is not None
            step = min(ttl_s / RETRIES_PER_DURATION, (give_up - now).total_seconds())
            step = min(step, max(0.05, (info.expires_at - now).total_seconds()))
            await self.clock.sleep(step)

    async def _try_acquire(self, holder: str) -> tuple[LeaseInfo, bool]:
        """(result, retry at once after a conflict)."""
        now = self.clock.now()
        self._seen_change = False
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
                    return LeaseInfo(holder="", acquired=False), True  # someone created it first
                raise
            return self._won(holder, created, now), False
        spec = lease.get("spec") or {}
        current = spec.get("holderIdentity") or ""
        rv = str(lease["metadata"].get("resourceVersion", ""))
        duration = float(spec.get("leaseDurationSeconds") or 0)
        if self._observed is None or self._observed[0] != rv:
            # the record changed (or we never saw it): its clock starts now, on OUR clock
            self._seen_change = self._observed is not None
            self._observed = (rv, now)
        expires = self._observed[1] + timedelta(seconds=duration)
        free = not current or current == holder or holder_is_dead(current)
        if not free and now < expires:
            return LeaseInfo(holder=current, acquired=False, expires_at=expires), False
        transitions = int(spec.get("leaseTransitions", 0)) + (0 if current == holder else 1)
        lease["spec"] = {
            **spec,
            **self._spec(holder, now, acquired=current != holder, transitions=transitions),
        }
        try:
            updated = await self.api.request("PUT", self.path, body=lease)
        except KubeApiError as exc:
            if exc.status == 409:
                return LeaseInfo(holder=current, acquired=False), True  # another instance moved first
            raise
        return self._won(holder, updated, now), False

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

    def _won(self, holder: str, lease: dict[str, Any], sent_at: datetime) -> LeaseInfo:
        self.holder = holder
        self.lost = None
        self._rv = lease["metadata"]["resourceVersion"]
        self._valid_until = sent_at + timedelta(seconds=self.renew_deadline_s)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._renew_loop(), name="lease-renewal")
        return LeaseInfo(holder=holder, acquired=True, expires_at=sent_at + timedelta(seconds=self.ttl_s))

    # --- renewing ----------------------------------------------------------------------

    async def renew(self) -> None:
        """One renewal: ``renewTime`` only, conditional on the resourceVersion we last wrote."""
        if self.holder is None:
            raise LeaseLost(self.lost or f"lease {self.namespace}/{self.name} is not held")
        self.check("lease renewal")  # past our deadline we may not even renew: someone may hold it
        sent_at = self.clock.now()
        try:
            lease = await self._patch_renew_time(sent_at)
        except KubeApiError as exc:
            if exc.status not in {404, 409}:
                raise
            current = None
            if exc.status == 409:
                fresh = await self._renew_api.request("GET", self.path)
                current = (fresh.get("spec") or {}).get("holderIdentity")
            if current != self.holder:
                self._lose(f"lease {self.namespace}/{self.name} was taken over by {current or 'nobody'}")
                raise LeaseLost(self.lost or "lease lost") from None
            # still ours, changed meanwhile (a concurrent renewal of our own): once more on the new version
            self._rv = fresh["metadata"]["resourceVersion"]
            lease = await self._patch_renew_time(sent_at)
        self._rv = lease["metadata"]["resourceVersion"]
        if self.holder is not None:
            self._valid_until = sent_at + timedelta(seconds=self.renew_deadline_s)
            self.renewals += 1

    async def _patch_renew_time(self, sent_at: datetime) -> dict[str, Any]:
        patch = {"metadata": {"resourceVersion": self._rv}, "spec": {"renewTime": micro_time(sent_at)}}
        return await self._renew_api.request("PATCH", self.path, body=patch, content_type=MERGE)

    async def _renew_loop(self) -> None:
        """The only renewal loop: one attempt every duration/6 until the renew deadline, then it says so."""
        while self.holder is not None:
            await self.clock.sleep(self.ttl_s / RETRIES_PER_DURATION)
            # A VirtualClock must not jump past our deadline while this attempt is under way.
            with _hold(self.clock):
                if not await self._renew_once():
                    return

    async def _renew_once(self) -> bool:
        """One attempt; False once the lease is lost (the loop ends, the callbacks were told)."""
        if self.holder is None:
            return False
        until = self._valid_until
        remaining = (until - self.clock.now()).total_seconds() if until else 0.0
        try:
            if remaining <= 0:
                self.check("lease renewal")  # loses it, with the reason
            await within(remaining, self.renew(), clock=self.clock, what="lease renewal")
        except LeaseLost:
            return False
        except KubeApiError as exc:
            self.failed_renewals += 1
            if exc.status == 409:  # ours still but changed: take the new resourceVersion
                with contextlib.suppress(ClusterError, DeadlineExceeded):
                    fresh = await within(
                        max(0.1, remaining), self._renew_api.request("GET", self.path), clock=self.clock
                    )
                    if (fresh.get("spec") or {}).get("holderIdentity") == self.holder:
                        self._rv = fresh["metadata"]["resourceVersion"]
        except (ClusterError, DeadlineExceeded):
            self.failed_renewals += 1  # tried again next period; the deadline check above ends it
        return self.holder is not None

    # --- releasing ---------------------------------------------------------------------

    async def release(self) -> None:
        """Hand the lease back, only while it is certainly still ours (no write otherwise)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.holder is None or self._valid_until is None or self.clock.now() >= self._valid_until:
            self.holder = None
            return
        holder, self.holder = self.holder, None
        self._valid_until = None
        with contextlib.suppress(ClusterError, DeadlineExceeded):  # changed meanwhile: nothing of ours
            await within(5.0, self._hand_back(holder), clock=self.clock)

    async def _hand_back(self, holder: str) -> None:
        """Clear the holder, conditional on the version we know. A renewal the release cut off may
        have landed without its answer reaching us, which leaves that version stale: on a conflict
        the record is read again and cleared only if it still names us (else the next driver would
        wait a whole duration for a lease nobody holds)."""
        try:
            await self._clear(self._rv)
        except KubeApiError as exc:
            if exc.status != 409:
                raise
            fresh = await self._renew_api.request("GET", self.path)
            if (fresh.get("spec") or {}).get("holderIdentity") != holder:
                return  # another instance's now
            await self._clear(str(fresh["metadata"]["resourceVersion"]))

    async def _clear(self, rv: str | None) -> None:
        patch = {
            "metadata": {"resourceVersion": rv},
            "spec": {
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "renewTime": micro_time(self.clock.now()),
            },
        }
        await self._renew_api.request("PATCH", self.path, body=patch, content_type=MERGE)


def _hold(clock: Clock) -> contextlib.AbstractContextManager[Any]:
    hold = getattr(clock, "hold", None)
    return hold() if callable(hold) else contextlib.nullcontext()
