"""Simulated pods: created Pending, Ready after a start delay, Terminating for a grace period, then gone.

What the kubelet does, reduced to the parts a rollout can observe: a new pod is not Ready until its
start delay has passed (in the controller's Clock); a deleted pod first gets a `deletionTimestamp`
and drops out of Ready (endpoints stop sending it traffic), and disappears only once its process
has exited: after `shutdown_s`, never later than the pod's `terminationGracePeriodSeconds`.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from core.clock import Clock
from core.sim.kube.errors import ApiError
from core.sim.kube.events import EventRecorder
from core.sim.kube.resources import BY_PATH
from core.sim.kube.store import Obj, Store, rfc3339

PODS = BY_PATH[("", "v1", "pods")]
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def is_ready(pod: Obj) -> bool:
    return not is_terminating(pod) and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def is_terminating(pod: Obj) -> bool:
    return bool(pod.get("metadata", {}).get("deletionTimestamp"))


def _images(pod: Obj) -> set[str]:
    spec = pod.get("spec") or {}
    return {str(c.get("image")) for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])}


class PodLifecycle:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        ready_delay_s: float,
        shutdown_s: float | None,
        spawn: Callable[[Any], None],
        events: EventRecorder | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        #: simulated seconds from a pod's creation until it is Ready
        self.ready_delay_s = ready_delay_s
        #: simulated seconds a deleted pod stays Terminating (None: as long as it takes to start)
        self.shutdown_s = shutdown_s
        #: images whose pods never become ready (to provoke progress-deadline failures)
        self.unready_images: set[str] = set()
        self._spawn = spawn
        #: when (on the Clock) each pod became Ready, by uid: minReadySeconds counts from there
        self.ready_at: dict[str, float] = {}

    def shutdown_for(self, pod: Obj, grace: float | None = None) -> float:
        limit = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30) if grace is None else grace
        wanted = self.ready_delay_s if self.shutdown_s is None else self.shutdown_s
        return max(0.0, min(float(limit), wanted))

    def create(self, rs: Obj) -> Obj:
        template = rs["spec"]["template"]
        name = f"{rs['metadata']['name']}-{''.join(secrets.choice(_SAFE) for _ in range(5))}"
        pod = {
            "metadata": {
                "name": name,
                "namespace": rs["metadata"]["namespace"],
                "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs["metadata"]["name"],
                        "uid": rs["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": "sim-node-1"},
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": rfc3339()}],
            },
        }
        created = self.store.create(PODS, rs["metadata"]["namespace"], pod)
        self._event(rs, "SuccessfulCreate", f"Created pod: {name}", "replicaset-controller")
        ns = rs["metadata"]["namespace"]
        self._event(
            created, "Scheduled", f"Successfully assigned {ns}/{name} to sim-node-1", "default-scheduler"
        )
        if not _images(pod) & self.unready_images:
            self._spawn(self._become_ready(rs["metadata"]["namespace"], name))
        return created

    async def _become_ready(self, ns: str, name: str) -> None:
        await self.clock.sleep(self.ready_delay_s)
        self.mark_ready(ns, name)

    def mark_ready(self, ns: str, name: str) -> None:
        pod = self.store.peek(PODS, ns, name)
        if pod is None or is_terminating(pod):
            return
        status = {
            "phase": "Running",
            "podIP": f"10.0.0.{(hash(name) % 250) + 2}",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339()}],
            "startTime": rfc3339(),
        }
        updated = self.store.update(PODS, ns, name, {"metadata": {}, "status": status}, subresource="status")
        self.ready_at.setdefault(updated["metadata"]["uid"], self.clock.now().timestamp())
        for container in (pod.get("spec") or {}).get("containers") or []:
            self._event(updated, "Started", f"Started container {container.get('name')}", "kubelet")

    def _event(self, obj: Obj, reason: str, message: str, component: str) -> None:
        if self.events is not None:
            self.events.record(obj, "Normal", reason, message, component)

    def terminate(self, pod: Obj, grace: float | None = None) -> Obj | None:
        """Graceful deletion: deletionTimestamp now, not Ready, removed once the process has exited."""
        meta = pod["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        current = self.store.peek(PODS, ns, name)
        if current is None:
            return None
        if is_terminating(current):
            return copy.deepcopy(current)
        seconds = self.shutdown_for(current, grace)
        if seconds <= 0:
            self._remove(ns, name)
            return None
        limit = (
            (current.get("spec") or {}).get("terminationGracePeriodSeconds", 30) if grace is None else grace
        )
        status = copy.deepcopy(current.get("status") or {})
        status["conditions"] = [
            {**c, "status": "False", "lastTransitionTime": rfc3339()} if c.get("type") == "Ready" else c
            for c in status.get("conditions") or []
        ]
        marked = self.store.mark_deleting(
            PODS,
            ns,
            name,
            deletion_timestamp=rfc3339(self.clock.now() + timedelta(seconds=float(limit))),
            grace_seconds=int(limit),
            status=status,
        )
        self._spawn(self._remove_later(ns, name, meta.get("uid") or current["metadata"]["uid"], seconds))
        for container in (current.get("spec") or {}).get("containers") or []:
            self._event(marked, "Killing", f"Stopping container {container.get('name')}", "kubelet")
        return marked

    async def _remove_later(self, ns: str | None, name: str, uid: str, seconds: float) -> None:
        await self.clock.sleep(seconds)
        current = self.store.peek(PODS, ns, name)
        if current is not None and current["metadata"].get("uid") == uid:
            self._remove(ns, name)

    def _remove(self, ns: str | None, name: str) -> None:
        try:
            gone = self.store.delete(PODS, ns, name)
        except ApiError:
            return
        self.ready_at.pop(gone["metadata"].get("uid", ""), None)

    def available_in(self, pod: Obj, min_ready_s: float) -> float | None:
        """0 when the pod is available (Ready for minReadySeconds), the seconds still to go, or None."""
        if not is_ready(pod):
            return None
        if min_ready_s <= 0:
            return 0.0
        since = self.ready_at.get(pod["metadata"].get("uid", ""), float("-inf"))
        return max(0.0, since + min_ready_s - self.clock.now().timestamp())

    def settle(self) -> None:
        """Seeding: every pod that can be ready is ready now, and terminating pods are gone."""
        for pod in list(self.store.scan(PODS, None)):
            ns, name = pod["metadata"].get("namespace"), pod["metadata"]["name"]
            if is_terminating(pod):
                self._remove(ns, name)
            elif not is_ready(pod) and not _images(pod) & self.unready_images:
                self.mark_ready(ns, name)
                self.ready_at[pod["metadata"]["uid"]] = float("-inf")  # seeded: long since available


__all__ = ["PODS", "PodLifecycle", "is_ready", "is_terminating"]
