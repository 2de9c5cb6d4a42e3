"""HorizontalPodAutoscalers on the stable Deployment (issue 10 item 3).

Under the `replicas` strategy deploydeck writes stable's spec.replicas at every step; an HPA on the
same Deployment writes it too and the two fight. The plan decides (targets.*.hpa):
- "refuse" (default): preflight refuses the plan (exit 2) and names the HPA;
- "suspend": for the rollout, the HPA's scaling is switched off with autoscaling/v2
  `spec.behavior.{scaleUp,scaleDown}.selectPolicy: Disabled` (the HPA object, its metrics and
  bounds stay); its own behavior is saved in deploydeck's state annotation first and put back when
  the weight returns to 0 (promotion done or rolled back), so a crash in between resumes and restores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.adapters.kubernetes.api import KubeApiError
from core.ports import ClusterError

if TYPE_CHECKING:
    from core.adapters.kubernetes.cluster import KubeCluster

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
DISABLED = {"scaleUp": {"selectPolicy": "Disabled"}, "scaleDown": {"selectPolicy": "Disabled"}}


def _hpa_base(namespace: str) -> str:
    return f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"


async def find_hpa(cluster: KubeCluster) -> dict[str, Any] | None:
    """The HPA whose scaleTargetRef is the stable Deployment, if any.

    A 404 on the list means the cluster serves no autoscaling/v2, so there can be none; a 403 is
    not "none": we cannot tell, and say so rather than risk the fight."""
    t = cluster.target
    try:
        listed = await cluster.api.request("GET", _hpa_base(t.namespace))
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        if exc.status == 403:
            raise ClusterError(
                f"cannot check for a HorizontalPodAutoscaler on {t.namespace}/{t.deployment}: {exc} "
                "(add list on horizontalpodautoscalers.autoscaling, see examples/rbac.yaml)"
            ) from None
        raise
    for hpa in listed.get("items") or []:
        ref = hpa.get("spec", {}).get("scaleTargetRef") or {}
        if ref.get("kind") == "Deployment" and ref.get("name") == t.deployment:
            return hpa
    return None


def refusal(hpa: dict[str, Any], cluster: KubeCluster) -> str:
    t = cluster.target
    spec = hpa.get("spec", {})
    return (
        f"HorizontalPodAutoscaler {t.namespace}/{hpa['metadata']['name']} scales deployment {t.deployment} "
        f"({spec.get('minReplicas', 1)}..{spec.get('maxReplicas')} replicas) and would fight the 'replicas' "
        "strategy's scaling: set hpa: suspend on the target (scaling paused during the rollout, then "
        "restored), or use strategy nginx or gateway"
    )


async def suspend(cluster: KubeCluster) -> None:
    """Before the first replica write of a deploy: refuse, or switch the HPA's scaling off."""
    if "hpa" in cluster._own or cluster._hpa_checked:
        return  # already suspended by this deploy (maybe before a restart), or known to be absent
    hpa = await find_hpa(cluster)
    cluster._hpa_checked = True
    if hpa is None:
        return
    if cluster.target.hpa != "suspend":
        raise ClusterError(refusal(hpa, cluster))
    # saved before acting: a crash after the patch still knows what to put back
    cluster._own["hpa"] = {"name": hpa["metadata"]["name"], "behavior": hpa["spec"].get("behavior")}
    await cluster._write_own()
    await cluster.api.request(
        "PATCH",
        f"{_hpa_base(cluster.target.namespace)}/{hpa['metadata']['name']}",
        body={"spec": {"behavior": DISABLED}},
        content_type=MERGE,
        idempotent=True,
    )


async def restore(cluster: KubeCluster) -> None:
    """After the weight is back at 0: the HPA's own behavior again (none: the field removed)."""
    saved = cluster._own.get("hpa")
    if not isinstance(saved, dict):
        return
    # a JSON patch puts back exactly what was there (a merge patch would keep our Disabled keys)
    behavior = saved.get("behavior")
    body = [
        {"op": "add", "path": "/spec/behavior", "value": behavior}
        if behavior is not None
        else {"op": "remove", "path": "/spec/behavior"}
    ]
    try:
        await cluster.api.request(
            "PATCH",
            f"{_hpa_base(cluster.target.namespace)}/{saved['name']}",
            body=body,
            content_type=JSON_PATCH,
            idempotent=True,
        )
    except KubeApiError as exc:
        if exc.status != 404:  # deleted meanwhile: nothing to restore
            raise
    cluster._own.pop("hpa", None)
    cluster._hpa_checked = False
    await cluster._write_own()
