"""`kubectl rollout undo` for Deployments, as pure functions over API objects.

Reference: kubectl's polymorphichelpers/rollback.go (DeploymentRollbacker): pick the
ReplicaSet of the wanted (default: previous) revision, refuse a paused Deployment, skip
when the template already matches ignoring pod-template-hash, else one JSON Patch that
replaces /spec/template and /metadata/annotations.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from core.ports import ClusterError

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
STATE_ANNOTATION = "deploydeck.io/state"
# kubectl keeps these from the Deployment instead of taking them from the ReplicaSet
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


def revision(obj: dict[str, Any]) -> int | None:
    value = (obj.get("metadata", {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def owned_by(rs: dict[str, Any], deployment: dict[str, Any]) -> bool:
    uid = deployment["metadata"].get("uid")
    return any(
        r.get("uid") == uid and r.get("controller") for r in rs["metadata"].get("ownerReferences") or []
    )


def pick_revision(replicasets: list[dict[str, Any]], to_revision: int = 0) -> dict[str, Any]:
    latest: tuple[int, dict[str, Any] | None] = (-1, None)
    previous: tuple[int, dict[str, Any] | None] = (-1, None)
    for rs in replicasets:
        v = revision(rs)
        if v is None:
            continue
        if to_revision:
            if v == to_revision:
                return rs
            continue
        if v > latest[0]:
            previous, latest = latest, (v, rs)
        elif v > previous[0]:
            previous = (v, rs)
    if to_revision:
        raise ClusterError(f"unable to find specified revision {to_revision} in history")
    if previous[1] is None:
        raise ClusterError("no rollout history found for the deployment")
    return previous[1]


def strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(template)
    labels = out.setdefault("metadata", {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def equal_ignore_hash(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(strip_hash(a), sort_keys=True) == json.dumps(strip_hash(b), sort_keys=True)


def undo_patch(
    deployment: dict[str, Any], rs: dict[str, Any], *, keep: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The JSON Patch kubectl sends; `keep` names extra annotations to carry over from the Deployment
    (deploydeck keeps its own state annotation so an undo does not rewind the rollout's record)."""
    current = deployment["metadata"].get("annotations") or {}
    annotations = {k: v for k, v in current.items() if k in ANNOTATIONS_TO_SKIP or k in keep}
    for k, v in (rs["metadata"].get("annotations") or {}).items():
        if k not in ANNOTATIONS_TO_SKIP and k not in keep:
            annotations[k] = v
    return [
        {"op": "replace", "path": "/spec/template", "value": strip_hash(rs["spec"]["template"])},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
