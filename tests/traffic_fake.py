"""A recording stand-in for KubeApi, for the traffic routers' tests (issue 16).

`FakeApi` keeps Deployments, an Ingress and an HTTPRoute in memory, applies merge patches as the API
server does (generation bumped on a spec change, resourceVersion on every write and checked when a
patch carries one), and records every request with its body. A Deployment's status catches up with
its spec over `lag` reads of it: the first read after a spec change sees it observed (the new
replica count, all on the template), the `lag`-th its pods available; a scale down takes pods away
at once. After every
write `capacity` records the available pods of both Deployments, so a test can check the ready floor
at each step. `StepClock` is a Clock whose sleeps advance time at once, and are recorded.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.adapters.kubernetes import KubeCluster
from core.adapters.kubernetes.api import KubeApiError
from core.plan import TargetSpec

NS = "prod"
STABLE = "web"
CANARY = "web-canary"
INGRESS = "web-ing"
ROUTE = "web-route"
DEPLOYS = f"/apis/apps/v1/namespaces/{NS}/deployments"
STABLE_PATH = f"{DEPLOYS}/{STABLE}"
CANARY_PATH = f"{DEPLOYS}/{CANARY}"
INGRESS_PATH = f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses/{INGRESS}"
ROUTE_PATH = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/{ROUTE}"
HPA_LIST = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"
MERGE = "application/merge-patch+json"
STATE = "deploydeck.io/state"


@dataclass
class Call:
    method: str
    path: str
    body: Any
    content_type: str | None
    idempotent: bool
    at: float  # seconds on the StepClock


class StepClock:
    def __init__(self) -> None:
        self.start = datetime(2026, 1, 1, tzinfo=UTC)
        self.t = self.start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.t

    def elapsed(self) -> float:
        return (self.t - self.start).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += timedelta(seconds=seconds)


def deployment(name: str, replicas: int, available: int | None = None, **spec: Any) -> dict[str, Any]:
    ready = replicas if available is None else available
    return {
        "metadata": {"name": name, "namespace": NS, "generation": 1, "resourceVersion": "1"},
        "spec": {"replicas": replicas, **spec},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeApi:
    def __init__(self, clock: StepClock, objects: dict[str, dict[str, Any]], lag: int = 1) -> None:
        self.clock = clock
        self.objects = objects
        self.lag = lag
        self.pending: dict[str, int] = {}
        self.calls: list[Call] = []
        self.api_calls: Counter[str] = Counter()
        self.fail: dict[tuple[str, str], list[Exception]] = {}
        self.capacity: list[tuple[int, int]] = []
        self.on_get: dict[str, Any] = {}  # path -> fn(obj) run before a read is answered
        self.deadline_s = 30.0

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET"]

    def trail(self) -> list[tuple[str, str]]:
        """(method, last path segment) of every call, in order."""
        return [(c.method, c.path.rsplit("/", 1)[-1]) for c in self.calls]

    async def close(self) -> None:
        return None

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
        self.calls.append(
            Call(method, path, copy.deepcopy(body), content_type, idempotent, self.clock.elapsed())
        )
        self.api_calls[method.lower()] += 1
        queued = self.fail.get((method, path))
        if queued:
            raise queued.pop(0)
        obj = self.objects.get(path)
        if obj is None:
            raise KubeApiError(f"{path} not found", 404, "NotFound")
        if method.upper() == "GET":
            self._settle(path, obj)
            hook = self.on_get.get(path)
            if hook is not None:
                hook(obj)
            return copy.deepcopy(obj)
        assert method.upper() == "PATCH" and content_type == MERGE, (method, content_type)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise KubeApiError("the object has been modified", 409, "Conflict")
        before = copy.deepcopy(obj.get("spec"))
        merge(obj, {k: v for k, v in body.items()})
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
        if "status" in obj and obj["spec"] != before:
            obj["metadata"]["generation"] += 1
            replicas = int(obj["spec"].get("replicas", 0))
            status = obj["status"]
            status["availableReplicas"] = min(status.get("availableReplicas", 0), replicas)
            status["readyReplicas"] = status["availableReplicas"]
            self.pending[path] = self.lag
            if self.lag == 0:
                self._settle(path, obj, observe=True)
        self.capacity.append((self._available(STABLE_PATH), self._available(CANARY_PATH)))
        return copy.deepcopy(obj)

    def _available(self, path: str) -> int:
        obj = self.objects.get(path)
        return int(obj["status"].get("availableReplicas", 0)) if obj else 0

    def _settle(self, path: str, obj: dict[str, Any], observe: bool = False) -> None:
        if path not in self.pending:
            return
        replicas = int(obj["spec"].get("replicas", 0))
        obj["status"].update(
            observedGeneration=obj["metadata"]["generation"], replicas=replicas, updatedReplicas=replicas
        )
        self.pending[path] -= 1
        if self.pending[path] > 0 and not observe:
            return
        del self.pending[path]
        obj["status"].update(readyReplicas=replicas, availableReplicas=replicas)


def target(strategy: str = "replicas", **extra: Any) -> TargetSpec:
    fields: dict[str, Any] = {
        "namespace": NS,
        "deployment": STABLE,
        "canary_deployment": CANARY,
        "strategy": strategy,
        "ingress": INGRESS,
        "httproute": ROUTE,
    }
    fields.update(extra)
    return TargetSpec(**fields)


def cluster(
    strategy: str = "replicas",
    *,
    stable: int = 10,
    canary: int = 0,
    lag: int = 1,
    extra: dict[str, dict[str, Any]] | None = None,
    stable_extra: dict[str, Any] | None = None,
    **target_fields: Any,
) -> tuple[KubeCluster, FakeApi, StepClock]:
    clock = StepClock()
    objects = {STABLE_PATH: deployment(STABLE, stable), CANARY_PATH: deployment(CANARY, canary)}
    merge(objects[STABLE_PATH], stable_extra or {})
    objects.update(extra or {})
    api = FakeApi(clock, objects, lag=lag)
    return KubeCluster(target(strategy, **target_fields), api, clock), api, clock  # type: ignore[arg-type]
