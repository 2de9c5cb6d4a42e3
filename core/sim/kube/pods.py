"""Simulated pods: created Pending, Ready after a start delay, Terminating for a grace period, then gone.

What the kubelet does, reduced to the parts a rollout can observe: a new pod is not Ready until its
start delay has passed (in the controller's Clock); a deleted pod first gets a `deletionTimestamp`
and drops out of Ready (endpoints stop sending it traffic), and disappears only once its process
has exited: after `shutdown_s`, never later than the pod's `terminationGracePeriodSeconds`.
"""

from __future__ import annotations

import copy
import secrets
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from core.clock import Clock
from core.sim.kube.errors import ApiError, bad_request, invalid_all
from core.sim.kube.events import EventRecorder
from core.sim.kube.resources import BY_PATH
from core.sim.kube.store import Obj, Store, rfc3339

PODS = BY_PATH[("", "v1", "pods")]
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


#: lines kept per container (a node rotates container logs; `kubectl logs` shows what is left)
LOG_LINES = 1000


def _container_status(container: Obj, state: Obj, *, ready: bool) -> Obj:
    return {
        "name": container.get("name"),
        "image": container.get("image"),
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
    }


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
        #: what each container wrote to stdout, by (pod uid, container), each line with the time the
        #: kubelet stamped it (RFC 3339): `kubectl logs` reads it, `--timestamps` shows the stamps
        self.logs: dict[tuple[str, str], deque[tuple[str, str]]] = {}
        #: more lines for a running container, asked per log read (the simulated workload's requests)
        self.log_source: Callable[[Obj, str], list[str]] | None = None

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
                # the kubelet reports each container waiting until its process starts
                "containerStatuses": [
                    _container_status(c, {"waiting": {"reason": "ContainerCreating"}}, ready=False)
                    for c in (template.get("spec") or {}).get("containers") or []
                ],
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
        started = rfc3339(self.clock.now())
        containers = (pod.get("spec") or {}).get("containers") or []
        status = {
            "phase": "Running",
            "podIP": f"10.0.0.{(hash(name) % 250) + 2}",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339()}],
            "startTime": started,
            "containerStatuses": [
                _container_status(c, {"running": {"startedAt": started}}, ready=True) for c in containers
            ],
        }
        updated = self.store.update(PODS, ns, name, {"metadata": {}, "status": status}, subresource="status")
        uid = updated["metadata"]["uid"]
        self.ready_at.setdefault(uid, self.clock.now().timestamp())
        for container in containers:
            self._event(
                updated,
                "Pulled",
                f'Container image "{container.get("image")}" already present on machine',
                "kubelet",
            )
            self._event(updated, "Created", f"Created container {container.get('name')}", "kubelet")
            self._event(updated, "Started", f"Started container {container.get('name')}", "kubelet")
            self._write(uid, str(container.get("name")), f"starting {container.get('image')}")
            self._write(uid, str(container.get("name")), "listening on :8080, ready")

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
        status["containerStatuses"] = [{**c, "ready": False} for c in status.get("containerStatuses") or []]
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
            self._write(
                marked["metadata"]["uid"], str(container.get("name")), "SIGTERM: draining connections"
            )
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
        uid = gone["metadata"].get("uid", "")
        self.ready_at.pop(uid, None)
        for key in [k for k in self.logs if k[0] == uid]:
            del self.logs[key]  # the container's log goes with its pod, as on a node

    def _write(self, uid: str, container: str, line: str) -> None:
        now = self.clock.now()
        # RFC3339Nano as the kubelet writes it: trailing zeros of the fraction dropped
        fraction = f".{now.microsecond:06d}".rstrip("0") if now.microsecond else ""
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
        self.logs.setdefault((uid, container), deque(maxlen=LOG_LINES)).append((stamp, line))

    def log(self, pod: Obj, container: str | None, tail_lines: str | None, timestamps: bool = False) -> str:
        """`GET pods/NAME/log`: the container's output, as the kubelet serves it; errors as the API
        server words them (pkg/registry/core/pod/strategy.go LogLocation, validateContainer)."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        tail: int | None = None
        if tail_lines is not None:
            try:
                tail = int(tail_lines)
            except ValueError:
                raise bad_request(
                    f'tailLines: strconv.ParseInt: parsing "{tail_lines}": invalid syntax'
                ) from None
            if tail < 0:
                raise invalid_all(
                    "PodLogOptions",
                    "",
                    meta["name"],
                    [("tailLines", f"Invalid value: {tail}: must be greater than or equal to 0")],
                )
        names = [str(c.get("name")) for c in spec.get("containers") or []]
        inits = [str(c.get("name")) for c in spec.get("initContainers") or []]
        if container is None:
            if len(names) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {meta['name']}, choose one of: [{' '.join(names)}]"
                    + (f" or one of the init containers: [{' '.join(inits)}]" if inits else "")
                )
            container = names[0]
        if container not in names and container not in inits:
            raise bad_request(f"container {container} is not valid for pod {meta['name']}")
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (c.get("state") or {}).get("waiting")
            if c.get("name") == container and waiting:
                reason = waiting.get("reason") or "ContainerCreating"
                raise bad_request(
                    f'container "{container}" in pod "{meta["name"]}" is waiting to start: {reason}'
                )
        key = (str(meta.get("uid")), container)
        if self.log_source is not None and not is_terminating(pod) and is_ready(pod):
            for line in self.log_source(pod, container):
                self._write(key[0], container, line)
        lines = list(self.logs.get(key, ()))
        if tail is not None:
            lines = lines[-tail:] if tail else []
        if timestamps:
            return "".join(f"{stamp} {line}\n" for stamp, line in lines)
        return "".join(f"{line}\n" for _, line in lines)

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
