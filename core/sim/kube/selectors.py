"""Label and field selectors as the API server parses them from list/watch query strings."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from core.sim.kube.errors import bad_request

Matcher = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_./-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*$")


def _split(selector: str) -> list[str]:
    # commas inside "in (a,b)" do not separate requirements
    parts, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def label_matcher(selector: str | None) -> Matcher:
    if not selector:
        return lambda _obj: True
    tests: list[Callable[[dict[str, str]], bool]] = []
    for req in _split(selector):
        if m := _SET.match(req):
            key, op = m.group(2), m.group(3)
            values = {v.strip() for v in m.group(4).split(",") if v.strip()}
            if op == "in":
                tests.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                tests.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m := _EQ.match(req):
            key, op, value = m.group(1), m.group(2), m.group(3)
            if op == "!=":
                tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif m := _EXISTS.match(req):
            negate, key = m.group(1) == "!", m.group(2)
            tests.append(lambda labels, k=key, n=negate: (k in labels) != n)
        else:
            raise bad_request(f"unable to parse requirement: {req.strip()!r}")

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(t(labels) for t in tests)

    return match


#: the field labels each kind's fieldSelector accepts besides metadata.name/namespace (its GetAttrs)
FIELDS_BY_KIND: dict[str, set[str]] = {
    "Event": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "Pod": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "Namespace": {"status.phase"},
    "ReplicaSet": {"status.replicas"},
}
#: field labels whose value is not at their own path
_FIELD_PATHS = {"source": "source.component"}


def _field_value(obj: dict[str, Any], label: str) -> str:
    value: Any = obj
    for part in _FIELD_PATHS.get(label, label).split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_matcher(selector: str | None, kind: str | None = None) -> Matcher:
    if not selector:
        return lambda _obj: True
    allowed = {"metadata.name", "metadata.namespace"} | FIELDS_BY_KIND.get(kind or "", set())
    tests: list[Matcher] = []
    for req in _split(selector):
        m = _EQ.match(req)
        if not m or m.group(1) not in allowed:
            raise bad_request(f'field label not supported: "{req.strip()}"')
        label, op, value = m.group(1), m.group(2), m.group(3)
        if op == "!=":
            tests.append(lambda o, f=label, v=value: _field_value(o, f) != v)
        else:
            tests.append(lambda o, f=label, v=value: _field_value(o, f) == v)
    return lambda obj: all(t(obj) for t in tests)


def selector_string(selector: dict[str, Any] | None) -> str:
    """metav1.LabelSelector -> the query-string form (as LabelSelectorAsSelector prints it)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """A Deployment or ReplicaSet seen through its /scale subresource (autoscaling/v1 Scale)."""
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: obj["metadata"][k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in obj["metadata"]
        },
        "spec": {"replicas": obj["spec"].get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_string(obj["spec"].get("selector")),
        },
    }
