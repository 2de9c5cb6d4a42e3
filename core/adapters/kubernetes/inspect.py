"""KubeCluster's read-only views (core.cluster_view): the ReplicaSet/pod tree and one pod's events and log.

Only GETs, with the same requests kubectl makes: `get rs,pods -l <selector>` for the tree, `get events
--field-selector involvedObject.kind=Pod,involvedObject.name=<pod>` and `logs --tail=N -c <container>`
for a pod. Pod STATUS reads as kubectl's printer writes it (pkg/printers/internalversion printPod).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.adapters.kubernetes.api import KubeApiError
from core.adapters.kubernetes.undo import owned_by, revision
from core.cluster_view import ClusterTree, PodDetail, PodEvent, PodView, ReplicaSetView
from core.ports import ClusterError, Role

if TYPE_CHECKING:
    from core.adapters.kubernetes.cluster import KubeCluster

#: a pod's events as `kubectl describe pod` shows them: the most recent few
EVENT_LIMIT = 12


def _label(obj: dict[str, Any]) -> str:
    selector = obj.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _age(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (now - then).total_seconds())


def pod_status(pod: dict[str, Any]) -> str:
    """kubectl's STATUS column: the phase, or a container's waiting/terminated reason, or Terminating."""
    status = pod.get("status") or {}
    reason = str(status.get("reason") or status.get("phase") or "Unknown")
    for c in reversed(status.get("containerStatuses") or []):
        state = c.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def pod_view(pod: dict[str, Any], now: datetime) -> PodView:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    containers = len((pod.get("spec") or {}).get("containers") or []) or len(statuses)
    return PodView(
        name=pod["metadata"]["name"],
        status=pod_status(pod),
        ready=sum(1 for c in statuses if c.get("ready")),
        containers=containers,
        restarts=sum(int(c.get("restartCount") or 0) for c in statuses),
        age_s=_age(pod["metadata"].get("creationTimestamp"), now),
    )


def _rs_image(rs: dict[str, Any], container: str | None) -> str | None:
    spec = rs.get("spec", {}).get("template", {}).get("spec", {})
    containers = spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == container), None) if container else None
    chosen = chosen or (containers[0] if containers else None)
    return chosen.get("image") if chosen else None


async def tree(cluster: KubeCluster) -> ClusterTree:
    ns = cluster.target.namespace
    now = cluster.clock.now()
    deployments: dict[Role, dict[str, Any]] = {
        "stable": await cluster._get("stable"),
        "canary": await cluster._get("canary"),
    }
    weight = await cluster._read_weight(deployments["stable"], deployments["canary"])
    sets: list[ReplicaSetView] = []
    revisions: dict[Role, int | None] = {}
    for role, deployment in deployments.items():
        label = _label(deployment)
        query = {"labelSelector": label} if label else None
        listed = await cluster.api.request("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets", query=query)
        pods = await cluster.api.request("GET", f"/api/v1/namespaces/{ns}/pods", query=query)
        owned = [rs for rs in listed.get("items", []) if owned_by(rs, deployment)]
        current = revision(deployment)
        revisions[role] = current
        for rs in sorted(owned, key=lambda r: revision(r) or 0, reverse=True):
            uid = rs["metadata"].get("uid")
            mine = [
                pod_view(p, now)
                for p in pods.get("items", [])
                if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
            ]
            desired = int(rs.get("spec", {}).get("replicas") or 0)
            if desired == 0 and not mine and revision(rs) != current:
                continue  # rollout history, not running: kubectl argo rollouts folds these too
            sets.append(
                ReplicaSetView(
                    name=rs["metadata"]["name"],
                    role=role,
                    revision=revision(rs),
                    image=_rs_image(rs, cluster.target.container),
                    desired=desired,
                    ready=int((rs.get("status") or {}).get("readyReplicas") or 0),
                    pods=sorted(mine, key=lambda p: p.name),
                )
            )
    stable_ready = sum(rs.ready for rs in sets if rs.role == "stable")
    canary_ready = sum(rs.ready for rs in sets if rs.role == "canary")
    return ClusterTree(
        strategy=cluster.target.strategy,
        stable_image=_image_of(deployments["stable"], cluster.target.container),
        canary_image=_image_of(deployments["canary"], cluster.target.container),
        stable_revision=revisions["stable"],
        canary_revision=revisions["canary"],
        weight_configured=weight,
        weight_actual=actual_weight(cluster.target.strategy, weight, stable_ready, canary_ready),
        replica_sets=sets,
    )


def actual_weight(strategy: str, configured: int, stable_ready: int, canary_ready: int) -> int:
    """The share the canary can carry now: a Service spreads over ready endpoints (replicas); an
    ingress or route sends its weight only while the canary has a ready pod to send it to."""
    if strategy == "replicas":
        total = stable_ready + canary_ready
        return round(100 * canary_ready / total) if total else 0
    if canary_ready == 0:
        return 0
    return 100 if stable_ready == 0 and configured > 0 else configured


def _image_of(deployment: dict[str, Any], container: str | None) -> str | None:
    return _rs_image(deployment, container)


async def pod_detail(cluster: KubeCluster, name: str, tail: int = 50) -> PodDetail:
    ns = cluster.target.namespace
    now = cluster.clock.now()
    pod = await cluster.api.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    listed = await cluster.api.request(
        "GET",
        f"/api/v1/namespaces/{ns}/events",
        query={"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={name}"},
    )
    items = sorted(
        listed.get("items", []),
        key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""),
    )
    events = [
        PodEvent(
            type=str(e.get("type") or "Normal"),
            reason=str(e.get("reason") or ""),
            message=str(e.get("message") or ""),
            count=int(e.get("count") or 1),
            age_s=_age(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp"), now),
        )
        for e in items[-EVENT_LIMIT:]
    ]
    containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    wanted = cluster.target.container
    container = wanted if wanted in containers else (containers[0] if containers else None)
    if container is None:
        raise ClusterError(f"pod {ns}/{name} has no containers")
    try:
        answer = await cluster.api.request(
            "GET",
            f"/api/v1/namespaces/{ns}/pods/{name}/log",
            query={"container": container, "tailLines": str(max(0, tail)), "timestamps": "true"},
            text=True,
        )
    except KubeApiError as exc:
        if exc.status not in {400, 404}:
            raise
        # a container still creating (400) or a pod gone meanwhile (404): the events say why
        return PodDetail(name=name, events=events, log_error=str(exc))
    lines = [_short_stamp(line) for line in str(answer.get("text", "")).splitlines()]
    return PodDetail(name=name, events=events, log=lines[-tail:] if tail else [])


def _short_stamp(line: str) -> str:
    """`2026-11-24T10:15:35.5Z message` (kubectl logs --timestamps) → `10:15:35 message`."""
    stamp, _, rest = line.partition(" ")
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return line  # not stamped as the kubelet stamps: shown as it came
    return f"{at.strftime('%H:%M:%S')} {rest}"
