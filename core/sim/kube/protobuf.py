"""Kubernetes protobuf request bodies, for the kinds `kubectl create ...` sends that way.

kubectl's typed clients (create namespace / deployment / configmap, auth whoami) send
`application/vnd.kubernetes.protobuf`: the magic "k8s\\0" and a runtime.Unknown whose `raw` is the
object in the field numbers of k8s.io/api's generated.proto. This decodes the subset of those messages
the simulator serves into the JSON the rest of the server handles. gogo-protobuf writes every
non-pointer field, empty or not, so zero values are dropped (as Go's JSON `omitempty` would) except on
pointer fields, where an explicit 0 means something (`replicas: 0`). A set field the schema does not
know is refused with 415, never silently dropped.
"""

from __future__ import annotations

import base64
from typing import Any

from core.sim.kube.errors import ApiError

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# a field: (json name, type, repeated, keep_zero); type is a schema name, "str", "int", "bool",
# "bytes", "map" (string->string), "intstr" or "time"
Field = tuple[str, str, bool, bool]


def _f(name: str, kind: str = "str", repeated: bool = False, keep_zero: bool = False) -> Field:
    return (name, kind, repeated, keep_zero)


SCHEMAS: dict[str, dict[int, Field]] = {
    "Unknown": {
        1: _f("typeMeta", "TypeMeta"),
        2: _f("raw", "bytes"),
        3: _f("contentEncoding"),
        4: _f("contentType"),
    },
    "TypeMeta": {1: _f("apiVersion"), 2: _f("kind")},
    # k8s.io/apimachinery/pkg/apis/meta/v1
    "ObjectMeta": {
        1: _f("name"),
        2: _f("generateName"),
        3: _f("namespace"),
        4: _f("selfLink"),
        5: _f("uid"),
        6: _f("resourceVersion"),
        7: _f("generation", "int"),
        8: _f("creationTimestamp", "time"),
        11: _f("labels", "map"),
        12: _f("annotations", "map"),
        14: _f("finalizers", repeated=True),
    },
    "LabelSelector": {
        1: _f("matchLabels", "map"),
        2: _f("matchExpressions", "LabelSelectorRequirement", True),
    },
    "LabelSelectorRequirement": {1: _f("key"), 2: _f("operator"), 3: _f("values", repeated=True)},
    # k8s.io/api/core/v1
    "Namespace": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "NamespaceSpec"),
        3: _f("status", "NamespaceStatus"),
    },
    "NamespaceSpec": {1: _f("finalizers", repeated=True)},
    "NamespaceStatus": {1: _f("phase")},
    "ConfigMap": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("data", "map"),
        3: _f("binaryData", "bytesmap"),
        4: _f("immutable", "bool", keep_zero=True),
    },
    "PodTemplateSpec": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "PodSpec")},
    "PodSpec": {
        2: _f("containers", "Container", True),
        3: _f("restartPolicy"),
        4: _f("terminationGracePeriodSeconds", "int", keep_zero=True),
        6: _f("dnsPolicy"),
        7: _f("nodeSelector", "map"),
        8: _f("serviceAccountName"),
        9: _f("serviceAccount"),
        10: _f("nodeName"),
        11: _f("hostNetwork", "bool"),
        12: _f("hostPID", "bool"),
        13: _f("hostIPC", "bool"),
        16: _f("hostname"),
        17: _f("subdomain"),
        19: _f("schedulerName"),
        20: _f("initContainers", "Container", True),
        24: _f("priorityClassName"),
    },
    "Container": {
        1: _f("name"),
        2: _f("image"),
        3: _f("command", repeated=True),
        4: _f("args", repeated=True),
        5: _f("workingDir"),
        6: _f("ports", "ContainerPort", True),
        7: _f("env", "EnvVar", True),
        8: _f("resources", "ResourceRequirements"),
        13: _f("terminationMessagePath"),
        14: _f("imagePullPolicy"),
        16: _f("stdin", "bool"),
        17: _f("stdinOnce", "bool"),
        18: _f("tty", "bool"),
        20: _f("terminationMessagePolicy"),
    },
    "ContainerPort": {
        1: _f("name"),
        2: _f("hostPort", "int"),
        3: _f("containerPort", "int", keep_zero=True),
        4: _f("protocol"),
        5: _f("hostIP"),
    },
    "EnvVar": {1: _f("name"), 2: _f("value")},
    "ResourceRequirements": {1: _f("limits", "quantities"), 2: _f("requests", "quantities")},
    # k8s.io/api/apps/v1
    "Deployment": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "DeploymentSpec"),
        3: _f("status", "DeploymentStatus"),
    },
    "DeploymentSpec": {
        1: _f("replicas", "int", keep_zero=True),
        2: _f("selector", "LabelSelector"),
        3: _f("template", "PodTemplateSpec"),
        4: _f("strategy", "DeploymentStrategy"),
        5: _f("minReadySeconds", "int"),
        6: _f("revisionHistoryLimit", "int", keep_zero=True),
        7: _f("paused", "bool"),
        9: _f("progressDeadlineSeconds", "int", keep_zero=True),
    },
    "DeploymentStrategy": {1: _f("type"), 2: _f("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: _f("maxUnavailable", "intstr"), 2: _f("maxSurge", "intstr")},
    # a client never sets status on create; these are the counters gogo writes as zeros
    "DeploymentStatus": {n: _f(f"_{n}", "int") for n in (1, 2, 3, 4, 5, 7, 8, 9)},
    # k8s.io/api/authentication/v1: kubectl auth whoami sends an empty one
    "SelfSubjectReview": {1: _f("metadata", "ObjectMeta"), 2: _f("status", "SelfSubjectReviewStatus")},
    "SelfSubjectReviewStatus": {1: _f("userInfo", "UserInfo")},
    "UserInfo": {1: _f("username"), 2: _f("uid"), 3: _f("groups", repeated=True)},
    # k8s.io/api/authorization/v1: kubectl auth can-i sends a SelfSubjectAccessReview
    "SelfSubjectAccessReview": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "SelfSubjectAccessReviewSpec"),
        3: _f("status", "SubjectAccessReviewStatus"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: _f("resourceAttributes", "ResourceAttributes"),
        2: _f("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: _f("namespace"),
        2: _f("verb"),
        3: _f("group"),
        4: _f("version"),
        5: _f("resource"),
        6: _f("subresource"),
        7: _f("name"),
    },
    "NonResourceAttributes": {1: _f("path"), 2: _f("verb")},
    "SubjectAccessReviewStatus": {
        1: _f("allowed", "bool"),
        2: _f("reason"),
        3: _f("evaluationError"),
        4: _f("denied", "bool"),
    },
    # k8s.io/api/rbac/v1: kubectl create rolebinding / clusterrolebinding
    "RoleBinding": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("subjects", "Subject", True),
        3: _f("roleRef", "RoleRef"),
    },
    "ClusterRoleBinding": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("subjects", "Subject", True),
        3: _f("roleRef", "RoleRef"),
    },
    "Subject": {1: _f("kind"), 2: _f("apiGroup"), 3: _f("name"), 4: _f("namespace")},
    "RoleRef": {1: _f("apiGroup"), 2: _f("kind"), 3: _f("name")},
}
_INTSTR = {1: _f("type", "int"), 2: _f("intVal", "int"), 3: _f("strVal")}
_TIME = {1: _f("seconds", "int"), 2: _f("nanos", "int")}


def _unsupported(why: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the simulator cannot decode this protobuf body ({why}); send it as application/json",
    )


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf):
            raise _unsupported("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(buf, i)
            out.append((number, buf[i : i + size]))
            i += size
        else:
            raise _unsupported(f"wire type {wire}")
    return out


def _empty(value: Any) -> bool:
    return value in ("", 0, False, None, b"") or value == {} or value == []


def _scalar(kind: str, raw: int | bytes) -> Any:
    if kind == "int":
        value = int(raw) if isinstance(raw, int) else 0
        return value - (1 << 64) if value >= 1 << 63 else value  # int64 two's complement
    if kind == "bool":
        return bool(raw)
    if not isinstance(raw, bytes):
        raise _unsupported(f"a number where {kind} was expected")
    if kind == "bytes":
        return raw
    return raw.decode()


def _map_entry(raw: bytes, value_kind: str) -> tuple[str, Any]:
    entry = dict(_fields(raw))
    key = entry.get(1, b"")
    value: Any = entry.get(2, b"")
    if value_kind == "quantity":
        value = dict(_fields(value)).get(1, b"") if isinstance(value, bytes) else b""
    if value_kind == "bytes":
        return _scalar("str", key), base64.b64encode(value if isinstance(value, bytes) else b"").decode()
    return _scalar("str", key), _scalar("str", value)


def decode_message(name: str, buf: bytes) -> dict[str, Any]:
    schema = SCHEMAS[name]
    out: dict[str, Any] = {}
    for number, raw in _fields(buf):
        field = schema.get(number)
        if field is None:
            if not _empty(raw):
                raise _unsupported(f"field {number} of {name}")
            continue
        key, kind, repeated, keep_zero = field
        value: Any
        if kind in {"map", "bytesmap", "quantities"}:
            value_kind = {"map": "str", "bytesmap": "bytes", "quantities": "quantity"}[kind]
            if not isinstance(raw, bytes):
                raise _unsupported(f"field {number} of {name}")
            k, v = _map_entry(raw, value_kind)
            out.setdefault(key, {})[k] = v
            continue
        if kind == "intstr":
            parts = decode_with(_INTSTR, raw)
            value = parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
            out[key] = value
            continue
        if kind == "time":
            if not _empty(decode_with(_TIME, raw)):
                raise _unsupported(f"a timestamp in {name}.{key}")
            continue
        if kind in SCHEMAS:
            if not isinstance(raw, bytes):
                raise _unsupported(f"field {number} of {name}")
            value = decode_message(kind, raw)
        else:
            value = _scalar(kind, raw)
        if repeated:
            out.setdefault(key, []).append(value)
        elif keep_zero or not _empty(value):
            out[key] = value
    return {
        k: v for k, v in out.items() if not k.startswith("_") and not (_empty(v) and k not in _kept(schema))
    }


def _kept(schema: dict[int, Field]) -> set[str]:
    return {name for name, _, _, keep in schema.values() if keep}


def decode_with(schema: dict[int, Field], raw: int | bytes) -> dict[str, Any]:
    if not isinstance(raw, bytes):
        raise _unsupported("a number where a message was expected")
    out: dict[str, Any] = {}
    for number, value in _fields(raw):
        if number in schema:
            out[schema[number][0]] = _scalar(schema[number][1], value)
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON object the client meant."""
    if not body.startswith(_MAGIC):
        raise _unsupported("no k8s protobuf envelope")
    envelope = decode_message("Unknown", body[len(_MAGIC) :])
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in SCHEMAS or kind in {"Unknown", "TypeMeta"}:
        raise _unsupported(f"kind {kind or '(none)'}")
    if envelope.get("contentEncoding"):
        raise _unsupported(f"content encoding {envelope['contentEncoding']}")
    obj = decode_message(kind, envelope.get("raw", b""))
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
