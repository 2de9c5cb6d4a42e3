"""A Deployment's status as the controller computes it (calculateStatus, syncRolloutStatus in
pkg/controller/deployment/sync.go and progress.go); Terminating pods count nowhere."""

from __future__ import annotations

from typing import Any

from core.sim.kube import strategy
from core.sim.kube.store import Obj, rfc3339


def deployment_status(
    d: Obj,
    owned: list[Obj],
    new_uid: str | None,
    counts: dict[str, int],
    ready: dict[str, int],
    avail: dict[str, int],
) -> tuple[dict[str, Any], bool]:
    """The status counters (zero ones left out, as omitempty does) and whether the rollout is complete."""
    desired = strategy.replicas(d)
    uids = [rs["metadata"]["uid"] for rs in owned]
    total = sum(counts.get(u, 0) for u in uids)
    available = sum(avail.get(u, 0) for u in uids)
    updated = counts.get(new_uid or "", 0)
    wanted_total = sum(strategy.replicas(rs) for rs in owned)
    status: dict[str, Any] = {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": sum(ready.get(u, 0) for u in uids),
        "availableReplicas": available,
        "unavailableReplicas": max(0, wanted_total - available),
    }
    complete = new_uid is not None and updated == desired and total == desired and available == desired
    return {k: v for k, v in status.items() if v or k == "observedGeneration"}, complete


def conditions(
    d: Obj, owned: list[Obj], new_uid: str | None, status: dict[str, Any], complete: bool, timed_out: bool
) -> list[dict[str, Any]]:
    old = d.get("status") or {}
    desired = strategy.replicas(d)
    avail_ok = status.get("availableReplicas", 0) >= desired - strategy.max_unavailable(d)
    out = [
        _condition(
            old,
            "Available",
            "True" if avail_ok else "False",
            "MinimumReplicasAvailable" if avail_ok else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if avail_ok
            else "Deployment does not have minimum availability.",
        )
    ]
    rs_name = next(
        (rs["metadata"]["name"] for rs in owned if rs["metadata"]["uid"] == new_uid), d["metadata"]["name"]
    )
    if d["spec"].get("paused"):
        prog = ("Unknown", "DeploymentPaused", "Deployment is paused")
    elif complete:
        prog = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
    elif timed_out:
        prog = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
    else:
        prog = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
    out.append(_condition(old, "Progressing", *prog))
    return out


def _condition(old: Obj, kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    for c in old.get("conditions") or []:
        if c.get("type") == kind and c.get("status") == status and c.get("reason") == reason:
            return {**c, "message": message}
    now = rfc3339()
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }
