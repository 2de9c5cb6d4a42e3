"""Pre-built objects for the demo and tests: a service with stable and canary Deployments."""

from __future__ import annotations

from typing import Any

from core.sim.kube.controller import DEPLOYMENTS, DeploymentController
from core.sim.kube.errors import ApiError
from core.sim.kube.resources import BY_PATH
from core.sim.kube.store import Store

NAMESPACES = BY_PATH[("", "v1", "namespaces")]
SERVICES = BY_PATH[("", "v1", "services")]
INGRESSES = BY_PATH[("networking.k8s.io", "v1", "ingresses")]
HTTPROUTES = BY_PATH[("gateway.networking.k8s.io", "v1", "httproutes")]
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"


def _deployment(name: str, labels: dict[str, str], image: str, replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def _service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"selector": dict(selector), "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def seed_service(
    store: Store,
    controller: DeploymentController,
    *,
    namespace: str,
    deployment: str,
    canary_deployment: str,
    image: str,
    replicas: int = 10,
    service: str | None = None,
    ingress: str | None = None,
    httproute: str | None = None,
    labels: dict[str, str] | None = None,
    settle: bool = True,
) -> None:
    """``settle=False``: leave the rollout to the controller (or a later seed's settle); seeding many
    services, settling after each one reconciled every earlier one again (quadratic)."""
    base = dict(labels or {"app": deployment})
    service = service or deployment
    try:
        store.create(NAMESPACES, None, {"metadata": {"name": namespace}})
    except ApiError as exc:
        if exc.code != 409:
            raise
    store.create(
        DEPLOYMENTS, namespace, _deployment(deployment, {**base, "track": "stable"}, image, replicas)
    )
    store.create(
        DEPLOYMENTS, namespace, _deployment(canary_deployment, {**base, "track": "canary"}, image, 0)
    )
    split = bool(ingress or httproute)
    # with an ingress or a route each track has its own Service; with replicas one Service spans both
    store.create(SERVICES, namespace, _service(service, {**base, "track": "stable"} if split else base))
    if split:
        store.create(SERVICES, namespace, _service(canary_deployment, {**base, "track": "canary"}))
    if ingress:
        rule = {
            "host": f"{service}.example.test",
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": canary_deployment, "port": {"number": 80}}},
                    }
                ]
            },
        }
        store.create(
            INGRESSES,
            namespace,
            {
                "metadata": {
                    "name": ingress,
                    "annotations": {CANARY_ANNOTATION: "true", WEIGHT_ANNOTATION: "0"},
                },
                "spec": {"ingressClassName": "nginx", "rules": [rule]},
            },
        )
    if httproute:
        store.create(
            HTTPROUTES,
            namespace,
            {
                "metadata": {"name": httproute},
                "spec": {
                    "parentRefs": [{"name": "gateway"}],
                    "rules": [
                        {
                            "backendRefs": [
                                {"name": service, "port": 80, "weight": 100},
                                {"name": canary_deployment, "port": 80, "weight": 0},
                            ]
                        }
                    ],
                },
            },
        )
    if settle:
        controller.settle_now()


def canary_weight(
    store: Store,
    namespace: str,
    deployment: str,
    canary_deployment: str,
    strategy: str,
    ingress: str | None = None,
    httproute: str | None = None,
) -> int:
    if strategy == "nginx":
        obj = store.peek(INGRESSES, namespace, ingress or "")
        annotations = (obj or {}).get("metadata", {}).get("annotations") or {}
        if annotations.get(CANARY_ANNOTATION) != "true":
            return 0
        try:
            return max(0, min(100, int(annotations.get(WEIGHT_ANNOTATION, "0"))))
        except ValueError:
            return 0
    if strategy == "gateway":
        obj = store.peek(HTTPROUTES, namespace, httproute or "")
        refs = [
            r
            for rule in ((obj or {}).get("spec") or {}).get("rules") or []
            for r in rule.get("backendRefs") or []
        ]
        total = sum(int(r.get("weight", 1)) for r in refs)
        canary = sum(int(r.get("weight", 1)) for r in refs if r.get("name") == canary_deployment)
        return round(100 * canary / total) if total else 0
    # replicas: traffic spreads over ready endpoints, so the ready pods decide the split
    stable = (store.peek(DEPLOYMENTS, namespace, deployment) or {}).get("status", {}).get("readyReplicas", 0)
    canary = (
        (store.peek(DEPLOYMENTS, namespace, canary_deployment) or {})
        .get("status", {})
        .get("readyReplicas", 0)
    )
    return round(100 * canary / (stable + canary)) if stable + canary else 0


def deployment_image(store: Store, namespace: str, name: str) -> str | None:
    obj = store.peek(DEPLOYMENTS, namespace, name)
    if obj is None:
        return None
    containers = obj["spec"]["template"]["spec"].get("containers") or []
    return containers[0].get("image") if containers else None
