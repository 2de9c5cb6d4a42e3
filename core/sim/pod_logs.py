"""What the simulated workload's pods write to stdout, and the in-memory cluster's ReplicaSet/pod tree.

Both simulators answer the same read-only questions as a real cluster (core.cluster_view): the
simulated API server through `pods/NAME/log` and Events, the in-memory SimCluster directly. A pod's
request lines follow the scenario's behaviour for its version at the moment of the read (a canary
of `bad-canary` at 25 % logs its 5xx), seeded per pod, so a log read twice never changes its past.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING

from core.cluster_view import ClusterTree, PodDetail, PodEvent, PodView, ReplicaSetView
from core.ports import ClusterError, Role

if TYPE_CHECKING:
    from core.sim.world import SimCluster, WorkloadModel

#: request lines a pod writes per simulated second it serves, at most (a log read shows the latest)
LINES_PER_READ = 8
PATHS = ("/api/cart", "/api/checkout", "/api/orders", "/health/ready")


class RequestLog:
    """Request lines for one pod since its last read, from the scenario's behaviour for its role."""

    def __init__(self, model: WorkloadModel, seed: int, new_image: str) -> None:
        self.model = model
        self.seed = seed
        self.new_image = new_image  # pods of this image behave as the scenario's new version
        self._last: dict[str, datetime] = {}
        self._rng: dict[str, random.Random] = {}

    def lines(self, pod: str, image: str | None, started: datetime | None = None) -> list[str]:
        """Lines since the last read (the first read: since the pod started, else one second)."""
        role: Role = "canary" if image == self.new_image else "stable"
        now = self.model.clock.now()
        last = self._last.get(pod) or started
        self._last[pod] = now
        seconds = 1.0 if last is None else (now - last).total_seconds()
        count = min(LINES_PER_READ, max(0, int(seconds)))
        if count == 0:
            return []
        rng = self._rng.setdefault(pod, random.Random(f"{self.seed}:{pod}"))
        behaviour, _ = self.model.behaviour(role)
        out: list[str] = []
        for _ in range(count):
            path = PATHS[rng.randrange(len(PATHS))]
            failed = rng.random() < behaviour.error_rate
            slow = rng.random() < 0.01
            ms = round(1000 * (behaviour.p99_s if slow else behaviour.p50_s) * rng.uniform(0.8, 1.2))
            status = 503 if failed else 200
            extra = " upstream error: redis connection reset" if failed else ""
            out.append(f"GET {path} {status} {ms}ms{extra}")
        return out  # unstamped: whoever keeps the log stamps a line when it is written


def _stamped(at: datetime, lines: list[str]) -> list[str]:
    """As KubeCluster.pod_detail shows a line: the kubelet's time of day, then the output."""
    stamp = at.strftime("%H:%M:%S")
    return [f"{stamp} {line}" for line in lines]


def rs_name(deployment: str, image: str) -> str:
    """A ReplicaSet name as the deployment controller makes it: the Deployment's plus a template hash."""
    digest = hashlib.sha256(image.encode()).hexdigest()
    return f"{deployment}-{int(digest[:8], 16) % 10**10:x}"[: len(deployment) + 11]


def pod_names(rs: str, count: int) -> list[str]:
    safe = "bcdfghjklmnpqrstvwxz2456789"
    names = []
    for i in range(count):
        digest = hashlib.sha256(f"{rs}/{i}".encode()).digest()
        names.append(f"{rs}-{''.join(safe[b % len(safe)] for b in digest[:5])}")
    return names


class SimTree:
    """The in-memory cluster's tree: one ReplicaSet per role and image, every pod Ready at once
    (the in-memory world has no kubelet: wait_ready's pause is its pod start)."""

    def __init__(self, cluster: SimCluster, deployment: str = "checkout") -> None:
        self.cluster = cluster
        self.deployment = deployment
        self.started: dict[str, datetime] = {}  # ReplicaSet name → when its pods started
        self.logs: dict[str, deque[str]] = {}
        self.requests: RequestLog | None = None

    def deployed(self, role: Role, image: str) -> None:
        """A new template: its ReplicaSet's pods start now (ages count from here)."""
        name = rs_name(self.deployment if role == "stable" else f"{self.deployment}-canary", image)
        self.started[name] = self.cluster.clock.now()

    def _sets(self) -> list[tuple[Role, str, str, int, int]]:
        """(role, ReplicaSet name, image, revision, pods) for what runs now."""
        c = self.cluster
        canary = round(c.replicas * c.weight / 100) if c.canary_image else 0
        out: list[tuple[Role, str, str, int, int]] = [
            (
                "stable",
                rs_name(self.deployment, c.stable_image),
                c.stable_image,
                len(c.stable_history),
                c.replicas - canary,
            )
        ]
        if c.canary_image:
            name = rs_name(f"{self.deployment}-canary", c.canary_image)
            out.append(("canary", name, c.canary_image, 1, canary))
        return out

    def tree(self) -> ClusterTree:
        c = self.cluster
        now = c.clock.now()
        sets: list[ReplicaSetView] = []
        for role, name, image, revision, count in self._sets():
            since = self.started.setdefault(name, now)
            age = (now - since).total_seconds()
            pods = [
                PodView(name=p, status="Running", ready=1, containers=1, restarts=0, age_s=age)
                for p in pod_names(name, count)
            ]
            sets.append(
                ReplicaSetView(
                    name=name,
                    role=role,
                    revision=revision,
                    image=image,
                    desired=count,
                    ready=count,
                    pods=pods,
                )
            )
        canary = next((s for s in sets if s.role == "canary"), None)
        return ClusterTree(
            strategy="replicas",
            stable_image=c.stable_image,
            canary_image=c.canary_image,
            stable_revision=len(c.stable_history),
            canary_revision=1 if c.canary_image else None,
            weight_configured=c.weight if canary else 0,
            # what the ready pods carry (a Service spreads over ready endpoints), not what was asked
            weight_actual=round(100 * canary.ready / c.replicas) if canary and c.replicas else 0,
            replica_sets=sets,
        )

    def pod_detail(self, pod: str, tail: int) -> PodDetail:
        now = self.cluster.clock.now()
        for _, name, image, _, count in self._sets():
            if pod not in pod_names(name, count):
                continue
            since = self.started.setdefault(name, now)
            age = (now - since).total_seconds()
            events = [
                PodEvent(
                    type="Normal",
                    reason="Scheduled",
                    message=f"Successfully assigned shop/{pod} to sim-node-1",
                    age_s=age,
                ),
                PodEvent(
                    type="Normal",
                    reason="Pulled",
                    message=f'Container image "{image}" already present on machine',
                    age_s=age,
                ),
                PodEvent(type="Normal", reason="Created", message="Created container app", age_s=age),
                PodEvent(type="Normal", reason="Started", message="Started container app", age_s=age),
            ]
            log = self.logs.get(pod)
            if log is None:
                log = self.logs[pod] = deque(maxlen=1000)
                log.extend(_stamped(since, [f"starting {image}", "listening on :8080, ready"]))
            if self.requests is not None:
                log.extend(_stamped(now, self.requests.lines(pod, image, since)))
            return PodDetail(name=pod, events=events, log=list(log)[-tail:] if tail else [])
        raise ClusterError(f'pods "{pod}" not found')
