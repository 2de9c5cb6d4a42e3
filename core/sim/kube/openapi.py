"""Just enough OpenAPI v3 for kubectl: it learns from the PATCH operations that the server
validates fields itself (`fieldValidation`), so `kubectl apply` needs no client-side schema."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from core.sim.kube.resources import RESOURCES, Resource, groups


def _gv_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def gv_doc(group: str, version: str, extra: tuple[Resource, ...] = ()) -> dict[str, Any] | None:
    found = [r for r in (*RESOURCES, *extra) if r.group == group and r.version == version]
    if not found:
        return None
    params = [
        {"name": name, "in": "query", "schema": {"type": "string"}, "description": name}
        for name in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]
    paths: dict[str, Any] = {}
    prefix = "/" + _gv_key(group, version)
    for r in found:
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        item = (
            f"{prefix}/namespaces/{{namespace}}/{r.plural}/{{name}}"
            if r.namespaced
            else f"{prefix}/{r.plural}/{{name}}"
        )
        op = {
            "operationId": f"patch{r.kind}",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": {"200": {"description": "OK"}},
        }
        paths[item] = {"patch": op}
    return {
        "openapi": "3.0.0",
        "info": {"title": "deploydeck simulated Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def index_doc(extra: tuple[Resource, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group, versions in groups(extra).items():
        for version in versions:
            body = json.dumps(gv_doc(group, version, extra), sort_keys=True).encode()
            digest = hashlib.sha256(body).hexdigest()[:32].upper()
            key = _gv_key(group, version)
            out[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": out}
