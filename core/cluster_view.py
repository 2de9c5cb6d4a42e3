"""What `kubectl argo rollouts get rollout` shows, read through the Cluster port: images, revisions,
configured vs actual weight, the ReplicaSet/pod tree, and one pod's recent events and log tail.

Read-only: nothing here writes to the cluster. The dashboard asks through :class:`ClusterInspector`,
which bounds every read with a total deadline on the Clock (a stalled API server is "no answer",
never a frozen screen) and says plainly when the cluster behind the session cannot answer at all.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Literal, Protocol, TypeVar, runtime_checkable

from core.adapters.deadline import DeadlineExceeded, within
from core.clock import Clock
from core.domain import Frozen
from core.ports import ClusterError

T = TypeVar("T")


class PodView(Frozen):
    name: str
    status: str  # what kubectl's STATUS column says: Running, ContainerCreating, Terminating, …
    ready: int  # ready containers
    containers: int
    restarts: int = 0
    age_s: float | None = None  # seconds since creation, on the cluster's clock


class ReplicaSetView(Frozen):
    name: str
    role: Literal["stable", "canary"]
    revision: int | None
    image: str | None
    desired: int
    ready: int
    pods: list[PodView] = []

    @property
    def status(self) -> str:
        """argo's words: Healthy (all desired ready), Progressing, ScaledDown (none wanted)."""
        if self.desired == 0:
            return "ScaledDown" if not self.pods else "Terminating"
        return "Healthy" if self.ready >= self.desired else "Progressing"


class ClusterTree(Frozen):
    strategy: str
    stable_image: str | None
    canary_image: str | None
    stable_revision: int | None
    canary_revision: int | None
    weight_configured: int  # what the traffic object (or the replica split) is set to
    weight_actual: int  # what the ready endpoints can carry now
    replica_sets: list[ReplicaSetView] = []


class PodEvent(Frozen):
    type: str  # Normal / Warning
    reason: str
    message: str
    count: int = 1
    age_s: float | None = None


class PodDetail(Frozen):
    name: str
    events: list[PodEvent] = []
    log: list[str] = []
    log_error: str | None = None  # why there is no log (e.g. the container has not started yet)


@runtime_checkable
class ClusterInspect(Protocol):
    """Read-only views a Cluster adapter may offer besides the port (both simulators and KubeCluster)."""

    async def tree(self) -> ClusterTree: ...

    async def pod_detail(self, pod: str, tail: int = 50) -> PodDetail: ...


class ClusterInspector:
    """The dashboard's read-only window onto one target, each read bounded on the Clock."""

    def __init__(self, cluster: object, clock: Clock, deadline_s: float = 5.0) -> None:
        inner = getattr(cluster, "inner", cluster)  # core.sim.world.ObservedCluster wraps the simulator
        self._cluster = inner if isinstance(inner, ClusterInspect) else None
        self.clock = clock
        self.deadline_s = deadline_s

    @property
    def available(self) -> bool:
        return self._cluster is not None

    async def tree(self) -> ClusterTree:
        if self._cluster is None:
            raise ClusterError("this cluster adapter cannot list its ReplicaSets and pods")
        return await self._bounded(self._cluster.tree(), "listing ReplicaSets and pods")

    async def pod_detail(self, pod: str, tail: int = 50) -> PodDetail:
        if self._cluster is None:
            raise ClusterError("this cluster adapter cannot read pod events or logs")
        return await self._bounded(self._cluster.pod_detail(pod, tail), f"reading pod {pod}")

    async def _bounded(self, call: Awaitable[T], what: str) -> T:
        try:
            return await within(self.deadline_s, call, clock=self.clock, what=what)
        except DeadlineExceeded as exc:
            raise ClusterError(str(exc)) from None


__all__ = [
    "ClusterInspect",
    "ClusterInspector",
    "ClusterTree",
    "PodDetail",
    "PodEvent",
    "PodView",
    "ReplicaSetView",
]
