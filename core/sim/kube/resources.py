"""The resource types the simulator serves, and the discovery documents kubectl reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = field(default=tuple(ALL_VERBS))
    #: a custom resource's openAPIV3Schema (None: a built-in kind, validated by kinds.py)
    schema: Any = field(default=None, compare=False, hash=False)
    #: a custom resource's additionalPrinterColumns: (name, type, jsonPath, priority)
    columns: tuple[tuple[str, str, str, int], ...] = field(default=(), compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "namespace", "Namespace", namespaced=False, short_names=("ns",)),
    Resource(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        short_names=("po",),
        subresources=("log", "status"),
        categories=("all",),
    ),
    Resource("", "v1", "services", "service", "Service", short_names=("svc",), categories=("all",)),
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", short_names=("cm",)),
    Resource("", "v1", "events", "event", "Event", short_names=("ev",)),
    # the same Events as events.k8s.io/v1 (regarding/note/reportingController), as the real server serves
    Resource("events.k8s.io", "v1", "events", "event", "Event", short_names=("ev",)),
    Resource(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        short_names=("deploy",),
        subresources=("scale", "status"),
        categories=("all",),
    ),
    Resource(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        short_names=("rs",),
        subresources=("scale", "status"),
        categories=("all",),
    ),
    Resource("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", short_names=("ing",)),
    Resource(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        short_names=("hpa",),
        subresources=("status",),
        categories=("all",),
    ),
    Resource("gateway.networking.k8s.io", "v1", "httproutes", "httproute", "HTTPRoute"),
    Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease"),
    # `kubectl auth whoami`: create-only, answered from the request's credentials, never stored
    Resource(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "",
        "SelfSubjectReview",
        namespaced=False,
        verbs=("create",),
    ),
    # TokenReview and SubjectAccessReview: create-only, answered from the token table and RBAC objects
    Resource(
        "authentication.k8s.io", "v1", "tokenreviews", "", "TokenReview", namespaced=False, verbs=("create",)
    ),
    Resource(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "",
        "SubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
    Resource(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "role", "Role"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding"),
    Resource(
        "rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", namespaced=False
    ),
    Resource(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    Resource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        subresources=("status",),
    ),
)

BY_PATH: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND: dict[tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in RESOURCES}


def groups(extra: tuple[Resource, ...] = ()) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in (*RESOURCES, *extra):
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def version_doc() -> dict[str, Any]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-deploydeck-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions_doc() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "apiVersion": "v1",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group_list_doc(extra: tuple[Resource, ...] = ()) -> dict[str, Any]:
    items = []
    for group, versions in groups(extra).items():
        if not group:
            continue
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        items.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}


def api_group_doc(group: str, extra: tuple[Resource, ...] = ()) -> dict[str, Any] | None:
    versions = groups(extra).get(group)
    if not group or versions is None:
        return None
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": gvs,
        "preferredVersion": gvs[0],
    }


def resource_list_doc(group: str, version: str, extra: tuple[Resource, ...] = ()) -> dict[str, Any] | None:
    found = [r for r in (*RESOURCES, *extra) if r.group == group and r.version == version]
    if not found:
        return None
    entries: list[dict[str, Any]] = []
    for r in found:
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entries.append(entry)
        for sub in r.subresources:
            sub_kind = "Scale" if sub == "scale" else r.kind
            sub_entry: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub_kind,
                # a log is read only (kube-apiserver's pods/log REST storage has only Get)
                "verbs": ["get"] if sub == "log" else ["get", "patch", "update"],
            }
            if sub == "scale":
                sub_entry["group"] = "autoscaling"
                sub_entry["version"] = "v1"
            entries.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}
