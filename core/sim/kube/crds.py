"""CustomResourceDefinitions: a stored CRD becomes a served resource, its objects pruned and validated
against the version's openAPIV3Schema as apiextensions-apiserver does (structural schemas only)."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

from core.sim.kube.errors import ApiError, invalid_all
from core.sim.kube.resources import BY_PATH, Resource

Obj = dict[str, Any]

CRDS = BY_PATH[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]

_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def crd_problems(crd: Obj) -> list[tuple[str, str]]:
    """The CRD's own validation, the part that decides whether its objects can be served at all."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    errors: list[tuple[str, str]] = []
    for key in ("plural", "kind"):
        if not names.get(key):
            errors.append((f"spec.names.{key}", "Required value"))
    if not spec.get("group"):
        errors.append(("spec.group", "Required value"))
    name = (crd.get("metadata") or {}).get("name", "")
    if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
        errors.append(("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    if spec.get("scope") not in {"Namespaced", "Cluster"}:
        errors.append(
            (
                "spec.scope",
                f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        errors.append(
            ("spec.versions", "Invalid value: null: must have exactly one version marked as storage version")
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        errors.append(
            ("spec.versions", "Invalid value: must have exactly one version marked as storage version")
        )
    for i, v in enumerate(versions):
        if not isinstance((v.get("schema") or {}).get("openAPIV3Schema"), dict):
            errors.append(
                (f"spec.versions[{i}].schema.openAPIV3Schema", "Required value: schemas are required")
            )
    return errors


def served(crd: Obj) -> list[Resource]:
    """One Resource per served version of a stored CRD."""
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served"):
            continue
        subs = tuple(s for s in ("status", "scale") if s in (v.get("subresources") or {}))
        columns = tuple(
            (c["name"], c.get("type", "string"), c.get("jsonPath", ""), int(c.get("priority", 0)))
            for c in v.get("additionalPrinterColumns") or []
        )
        out.append(
            Resource(
                spec["group"],
                v["name"],
                names["plural"],
                names.get("singular") or names["kind"].lower(),
                names["kind"],
                namespaced=spec.get("scope") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                subresources=subs,
                categories=tuple(names.get("categories") or ()),
                schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                columns=columns,
            )
        )
    return out


def established(crd: Obj, now: str) -> Obj:
    """The status the apiextensions controllers write at once: names accepted, established."""
    names = crd["spec"]["names"]
    crd["status"] = {
        "acceptedNames": {
            k: names[k]
            for k in ("plural", "singular", "kind", "listKind", "shortNames", "categories")
            if k in names
        },
        "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": now, "reason": r, "message": m}
            for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ],
    }
    return crd


def on_change(store: Any, change: Any) -> dict[tuple[str, str, str], Resource]:
    """What the stored CRDs serve after `change`; a deleted CRD's objects go with it."""
    custom: dict[tuple[str, str, str], Resource] = {}
    for crd in store.scan(CRDS, None):
        for r in served(crd):
            custom[(r.group, r.version, r.plural)] = r
    if change.type == "DELETED":
        for r in served(change.obj):
            for obj in list(store.scan(r, None)):
                store.drop(r, obj["metadata"].get("namespace"), obj["metadata"]["name"])
    return custom


# --- objects of a custom resource ---------------------------------------------------------------


def prune(schema: Obj, value: Any, path: str, dropped: list[str]) -> Any:
    """Drop the fields the schema does not declare (unless it preserves unknown fields), as the real
    server does before validation; `dropped` collects their paths for fieldValidation=Strict."""
    if isinstance(value, dict) and (schema.get("type") == "object" or "properties" in schema):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        out: Obj = {}
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if props is not None and key in props:
                out[key] = prune(props[key], item, sub, dropped)
            elif isinstance(extra, dict):
                out[key] = prune(extra, item, sub, dropped)
            elif preserve or extra is True or extra is False:
                out[key] = item  # kept; additionalProperties: false then fails validation
            else:
                dropped.append(sub)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], item, f"{path}[{i}]", dropped) for i, item in enumerate(value)]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "object" if isinstance(value, dict) else "array"
    return str(value)


def problems(schema: Obj, value: Any, path: str) -> list[tuple[str, str]]:
    """Every (field, problem) the go-openapi validator reports, in its words."""
    errors: list[tuple[str, str]] = []
    if value is None:
        return (
            errors
            if schema.get("nullable")
            else [
                (
                    path,
                    f'Invalid value: "null": {path} in body must be of type {schema.get("type", "object")}: "null"',
                )
            ]
        )
    kind = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return [
                (
                    path,
                    f"Invalid value: {_shown(value)}: {path} in body must be of type integer,string: {_shown(value)}",
                )
            ]
    elif kind in _TYPES:
        wrong = not isinstance(value, _TYPES[kind]) or (
            kind in {"integer", "number"} and isinstance(value, bool)
        )
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            wrong = False
        if wrong:
            got = {
                dict: "object",
                list: "array",
                str: "string",
                bool: "boolean",
                int: "integer",
                float: "number",
            }[type(value)]
            return [(path, f'Invalid value: "{got}": {path} in body must be of type {kind}: "{got}"')]
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_shown(e) for e in schema["enum"])
        errors.append((path, f"Unsupported value: {_shown(value)}: supported values: {allowed}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(
                (
                    path,
                    f"Invalid value: {value}: {path} in body should be greater than or equal to {schema['minimum']}",
                )
            )
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(
                (
                    path,
                    f"Invalid value: {value}: {path} in body should be less than or equal to {schema['maximum']}",
                )
            )
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append((path, f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(
                (
                    path,
                    f"Invalid value: {_shown(value)}: {path} in body should be at least {schema['minLength']} chars long",
                )
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(
                (path, f"Invalid value: {_shown(value)}: {path} in body should match '{schema['pattern']}'")
            )
        fmt = {"date": _DATE, "date-time": _DATE_TIME}.get(schema.get("format", ""))
        if fmt is not None and not fmt.match(value):
            errors.append(
                (
                    path,
                    f"Invalid value: {_shown(value)}: {path} in body must be of type {schema['format']}: {_shown(value)}",
                )
            )
    if isinstance(value, dict):
        for key in schema.get("required") or []:
            if key not in value:
                errors.append((f"{path}.{key}" if path else key, "Required value"))
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key in props:
                errors += problems(props[key], item, sub)
            elif isinstance(extra, dict):
                errors += problems(extra, item, sub)
            elif extra is False:
                errors.append((sub, f"Forbidden: {sub} in body is a forbidden property"))
    if isinstance(value, list):
        items = schema.get("items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append((path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items"))
        if isinstance(items, dict):
            for i, item in enumerate(value):
                errors += problems(items, item, f"{path}[{i}]")
    return errors


def admit(res: Resource, obj: Obj, *, strict: bool) -> Obj:
    """The object pruned to its schema, or 422 Invalid naming every field (400 on unknown fields
    when the client asked for fieldValidation=Strict, as kubectl does by default)."""
    schema = res.schema or {}
    body = {k: v for k, v in obj.items() if k not in {"apiVersion", "kind", "metadata"}}
    dropped: list[str] = []
    pruned = prune(schema, body, "", dropped)
    if strict and dropped:
        listed = ", ".join(f'unknown field "{d}"' for d in dropped)
        raise ApiError(400, "BadRequest", f"strict decoding error: {listed}")
    out = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": obj["metadata"], **pruned}
    check = copy.deepcopy(schema)
    # apiVersion/kind/metadata are the server's to check, whatever the schema says of them
    for key in ("apiVersion", "kind", "metadata"):
        (check.get("properties") or {}).pop(key, None)
        if key in (check.get("required") or []):
            check["required"] = [r for r in check["required"] if r != key]
    errors = problems(
        check, {k: v for k, v in out.items() if k not in {"apiVersion", "kind", "metadata"}}, ""
    )
    if errors:
        raise invalid_all(res.kind, res.group, obj["metadata"].get("name", ""), errors)
    return out


def json_path(obj: Obj, path: str) -> Any:
    """A printer column's simple JSONPath (.a.b.c), None when a step is missing."""
    value: Any = obj
    for step in [p for p in path.strip().lstrip(".").split(".") if p]:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def cell(value: Any, kind: str, age: Any) -> Any:
    if value is None:
        return None  # kubectl prints <none>
    if kind == "date" and isinstance(value, str):
        try:
            datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return value
        return age(value)
    return value
