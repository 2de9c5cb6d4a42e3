"""A ready-capacity watcher for the simulated API server (issue 10 item 2, issue 16).

It listens to every change the server's store publishes (each pod turning Ready, each pod deleted,
each Deployment, Ingress or HTTPRoute write), so it checks the invariants at every instant the
cluster passes through, not at sample points, and it fails the test at the first breach:

- `replicas`: ready stable + canary pods never below total - maxUnavailable;
- `nginx`/`gateway`: a canary weight above 0 only while the canary's pods are all Ready on its
  current image; a weight below 100 only while stable has its floor of Ready pods.

It also records the sequence of cluster writes and readiness changes (a timeline) so tests can
assert their order: Ready before traffic, canary up before stable down, stable Ready before the
weight returns to 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.adapters.kubernetes.traffic import ready_floor
from core.sim.kube.controller import DEPLOYMENTS, PODS
from core.sim.kube.store import Change
from tests.kube_helpers import CANARY, INGRESS, NS, ROUTE, STABLE, Sim

_TRAFFIC = {("networking.k8s.io", "ingresses"), ("gateway.networking.k8s.io", "httproutes")}


def _ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False  # a terminating pod leaves the Service's ready endpoints at once
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _image(obj: dict[str, Any]) -> str | None:
    containers = obj.get("spec", {}).get("containers") or []
    app = next((c for c in containers if c.get("name") == "app"), containers[0] if containers else {})
    return app.get("image")


class CapacityBreach(AssertionError):
    pass


@dataclass
class Event:
    seq: int
    kind: str  # scale | image | weight | ready
    name: str
    value: Any


@dataclass
class ReadyCapacity:
    sim: Sim
    strategy: str
    total: int
    floor: int = -1
    timeline: list[Event] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)
    lowest: int = 10**9
    _last: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.floor < 0:
            self.floor = ready_floor(self.sim.deployment(STABLE), self.total)

    # --- reading the store --------------------------------------------------------------

    def ready(self, track: str) -> int:
        pods = self.sim.server.store.scan(PODS, NS)
        return sum(1 for p in pods if p["metadata"].get("labels", {}).get("track") == track and _ready(p))

    def ready_on(self, track: str, image: str | None) -> int:
        pods = self.sim.server.store.scan(PODS, NS)
        return sum(
            1
            for p in pods
            if p["metadata"].get("labels", {}).get("track") == track and _ready(p) and _image(p) == image
        )

    def weight(self) -> int:
        return self.sim.server.canary_weight(NS, STABLE, CANARY, self.strategy, INGRESS, ROUTE)

    # --- listening ----------------------------------------------------------------------

    def __enter__(self) -> ReadyCapacity:
        self.sim.server.store.listeners.append(self._on_change)
        for name in (STABLE, CANARY):  # where the timeline starts from
            d = self.sim.deployment(name)
            self._note("scale", name, d["spec"].get("replicas"))
            self._note("image", name, _image(d["spec"]["template"]))
        self._check()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.server.store.listeners.remove(self._on_change)

    def _note(self, kind: str, name: str, value: Any) -> None:
        if self._last.get((kind, name)) != value:
            self._last[(kind, name)] = value
            self.timeline.append(Event(len(self.timeline), kind, name, value))

    def _on_change(self, change: Change) -> None:
        if change.res == (DEPLOYMENTS.group, DEPLOYMENTS.plural):
            name = change.obj["metadata"]["name"]
            if name in (STABLE, CANARY):
                self._note("scale", name, change.obj["spec"].get("replicas"))
                self._note("image", name, _image(change.obj["spec"]["template"]))
        elif change.res == (PODS.group, PODS.plural) or change.res in _TRAFFIC:
            pass
        else:
            return
        self._check()

    def _check(self) -> None:
        stable, canary = self.ready("stable"), self.ready("canary")
        self._note("ready", STABLE, stable)
        self._note("ready", CANARY, canary)
        weight = self.weight() if self.strategy != "replicas" else None
        if weight is not None:
            self._note("weight", "traffic", weight)
        self.lowest = min(self.lowest, stable + canary)
        problem = None
        if self.strategy == "replicas":
            if stable + canary < self.floor:
                problem = f"ready stable {stable} + canary {canary} < floor {self.floor}"
        else:
            assert weight is not None
            c = self.sim.deployment(CANARY)
            c_image = _image(c["spec"]["template"])
            c_desired = int(c["spec"].get("replicas", 0))
            s_desired = int(self.sim.deployment(STABLE)["spec"].get("replicas", 0))
            on_image = self.ready_on("canary", c_image)
            if weight > 0 and (on_image == 0 or on_image < ready_floor(c, c_desired)):
                problem = (
                    f"weight {weight}% to the canary with {on_image} of {c_desired} pods Ready on {c_image}"
                )
            s_floor = ready_floor(self.sim.deployment(STABLE), s_desired)
            if weight < 100 and (stable < s_floor or stable == 0):
                problem = f"weight {100 - weight}% to stable with {stable} Ready (floor {s_floor})"
        if problem is not None:
            message = f"ready capacity breached at change {len(self.timeline)}: {problem}"
            self.breaches.append(message)
            # raising inside the store would break the server's own write: record and fail in assert_held
            self._note("breach", "capacity", message)

    def assert_held(self) -> None:
        if self.breaches:
            raise CapacityBreach(self.breaches[0] + f" ({len(self.breaches)} breaches; lowest {self.lowest})")

    # --- ordering -----------------------------------------------------------------------

    def first(self, kind: str, name: str, pred: Any, after: int = -1) -> int | None:
        return next(
            (
                e.seq
                for e in self.timeline
                if e.seq > after and e.kind == kind and e.name == name and pred(e.value)
            ),
            None,
        )

    def events(self, kind: str, name: str) -> list[Event]:
        return [e for e in self.timeline if e.kind == kind and e.name == name]
