"""Server-side printing: the `meta.k8s.io/v1 Table` answers kubectl asks for in `get` without `-o`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.sim.kube import crds
from core.sim.kube.resources import Resource

Obj = dict[str, Any]


def _age(obj: Obj) -> str:
    return _since(obj.get("metadata", {}).get("creationTimestamp"))


def _since(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    seconds = int(
        (datetime.now(UTC) - datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)).total_seconds()
    )
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _images(obj: Obj) -> tuple[str, str]:
    containers = ((obj.get("spec", {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _columns(res: Resource) -> list[tuple[str, str, int]]:
    kind = res.kind
    if res.schema is not None:  # a custom resource: Name, then its CRD's additionalPrinterColumns
        return [("Name", "string", 0)] + [
            (n, t, p) for n, t, _, p in res.columns or (("Age", "date", "", 0),)
        ]
    if kind == "Deployment":
        return [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ]
    if kind == "ReplicaSet":
        return [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ]
    if kind == "Pod":
        return [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
        ]
    if kind == "Service":
        return [
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
        ]
    if kind == "Lease":
        return [("Name", "string", 0), ("Holder", "string", 0), ("Age", "string", 0)]
    if kind == "Namespace":
        return [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)]
    if kind == "HorizontalPodAutoscaler":
        return [
            ("Name", "string", 0),
            ("Reference", "string", 0),
            ("Targets", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "integer", 0),
            ("Replicas", "integer", 0),
            ("Age", "string", 0),
        ]
    if kind == "Event":  # pkg/printers/internalversion: eventColumnDefinitions
        return [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ]
    return [("Name", "string", 0), ("Age", "string", 0)]


def _cells(res: Resource, obj: Obj) -> list[Any]:
    name, spec, status = obj["metadata"]["name"], obj.get("spec") or {}, obj.get("status") or {}
    if res.schema is not None:
        if not res.columns:
            return [name, _age(obj)]
        return [name] + [crds.cell(crds.json_path(obj, path), t, _since) for _, t, path, _ in res.columns]
    if res.kind == "Deployment":
        containers, images = _images(obj)
        return [
            name,
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0),
            status.get("availableReplicas", 0),
            _age(obj),
            containers,
            images,
        ]
    if res.kind == "ReplicaSet":
        containers, images = _images(obj)
        return [
            name,
            spec.get("replicas", 0),
            status.get("replicas", 0),
            status.get("readyReplicas", 0),
            _age(obj),
            containers,
            images,
        ]
    if res.kind == "Pod":
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        total = len(spec.get("containers") or []) or 1
        # the pod printer shows a deleted pod as Terminating, whatever its phase
        shown = "Terminating" if obj["metadata"].get("deletionTimestamp") else status.get("phase", "Pending")
        return [name, f"{total if ready else 0}/{total}", shown, "0", _age(obj)]
    if res.kind == "Service":
        ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
        return [
            name,
            spec.get("type", "ClusterIP"),
            spec.get("clusterIP", "None"),
            "<none>",
            ports or "<none>",
            _age(obj),
        ]
    if res.kind == "Lease":
        return [name, spec.get("holderIdentity") or "<none>", _age(obj)]
    if res.kind == "Namespace":
        return [name, status.get("phase", ""), _age(obj)]
    if res.kind == "HorizontalPodAutoscaler":
        ref = spec.get("scaleTargetRef") or {}
        return [
            name,
            f"{ref.get('kind', '')}/{ref.get('name', '')}",
            "<unknown>",  # no metrics in the simulator
            str(spec.get("minReplicas", 1)),
            spec.get("maxReplicas", 0),
            status.get("currentReplicas", 0),
            _age(obj),
        ]
    if res.kind == "Event":
        involved = obj.get("involvedObject") or {}
        return [
            _since(obj.get("lastTimestamp")),
            obj.get("type", ""),
            obj.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
            involved.get("fieldPath", ""),
            (obj.get("source") or {}).get("component", ""),
            obj.get("message", "").strip(),
            _since(obj.get("firstTimestamp")),
            str(obj.get("count", 1)),
            name,
        ]
    return [name, _age(obj)]


def table(res: Resource, items: list[Obj], resource_version: str, *, with_columns: bool = True) -> Obj:
    rows = [
        {
            "cells": _cells(res, o),
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            },
        }
        for o in items
    ]
    out: Obj = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "rows": rows,
    }
    if with_columns:
        out["columnDefinitions"] = [
            {"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n, "priority": p}
            for n, t, p in _columns(res)
        ]
    return out


def wants_table(accept: str) -> bool:
    first = accept.split(",")[0]
    return "as=Table" in first
