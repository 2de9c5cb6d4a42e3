"""The three patch types the API server accepts: JSON Patch, JSON merge patch, strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from core.sim.kube.errors import ApiError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Kubernetes' Go structs carry `patchMergeKey` tags; the simulator keys lists by field name instead.
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
# lists of scalars that strategic merge unions instead of replacing
_MERGED_SCALAR_LISTS = {"finalizers"}


def _invalid_patch(message: str) -> ApiError:
    return ApiError(
        422, "Invalid", f"the server rejected our request due to an error in our request: {message}"
    )


# --- RFC 6902 ------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _invalid_patch(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    for part in parts:
        if isinstance(doc, dict):
            if part not in doc:
                raise _invalid_patch(f"doc is missing path: {path!r}")
            doc = doc[part]
        elif isinstance(doc, list):
            try:
                doc = doc[int(part)]
            except (ValueError, IndexError):
                raise _invalid_patch(f"doc is missing path: {path!r}") from None
        else:
            raise _invalid_patch(f"doc is missing path: {path!r}")
    return doc


def _add(doc: Any, parts: list[str], value: Any, path: str, replace: bool) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    key = parts[-1]
    if isinstance(parent, dict):
        if replace and key not in parent:
            raise _invalid_patch(f"replace operation does not apply: doc is missing key: {path}")
        parent[key] = value
    elif isinstance(parent, list):
        if key == "-" and not replace:
            parent.append(value)
        else:
            try:
                idx = int(key)
            except ValueError:
                raise _invalid_patch(f"invalid array index {key!r} in {path!r}") from None
            if replace:
                if not 0 <= idx < len(parent):
                    raise _invalid_patch(f"replace operation does not apply: index out of range: {path}")
                parent[idx] = value
            else:
                if not 0 <= idx <= len(parent):
                    raise _invalid_patch(f"add operation does not apply: index out of range: {path}")
                parent.insert(idx, value)
    else:
        raise _invalid_patch(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise _invalid_patch("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    key = parts[-1]
    if isinstance(parent, dict):
        if key not in parent:
            raise _invalid_patch(f"remove operation does not apply: doc is missing path: {path!r}")
        return parent.pop(key)
    if isinstance(parent, list):
        try:
            return parent.pop(int(key))
        except (ValueError, IndexError):
            raise _invalid_patch(f"remove operation does not apply: doc is missing path: {path!r}") from None
    raise _invalid_patch(f"doc is missing path: {path!r}")


def json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    if not isinstance(ops, list):
        raise ApiError(
            400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise _invalid_patch(f"invalid JSON patch operation {op!r}")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind in {"add", "replace"}:
            if "value" not in op:
                raise _invalid_patch(f"{kind} operation at {path!r} has no value")
            doc = _add(doc, parts, copy.deepcopy(op["value"]), path, replace=kind == "replace")
        elif kind == "remove":
            _remove(doc, parts, path)
        elif kind == "test":
            if _walk(doc, parts, path) != op.get("value"):
                raise _invalid_patch(f"testing value {path} failed: test failed")
        elif kind in {"move", "copy"}:
            src = op.get("from", "")
            src_parts = _pointer(src)
            value = (
                _remove(doc, src_parts, src) if kind == "move" else copy.deepcopy(_walk(doc, src_parts, src))
            )
            doc = _add(doc, parts, value, path, replace=False)
        else:
            raise _invalid_patch(f"unexpected kind of operation {kind!r}")
    if not isinstance(doc, dict):
        raise _invalid_patch("patch did not produce an object")
    return doc


# --- RFC 7386 ------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- strategic merge -------------------------------------------------------------


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return _MERGE_KEYS.get(field)


def _strategic_list(field: str, current: list[Any], patch: list[Any]) -> list[Any]:
    if field in _MERGED_SCALAR_LISTS:
        out = list(current)
        out.extend(v for v in patch if v not in out)
        return out
    key = _merge_key(field, [*current, *patch])
    if key is None or not all(isinstance(i, dict) for i in patch):
        # replace semantics; `$patch: replace` markers are dropped
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    out = [copy.deepcopy(i) for i in current]
    for item in patch:
        directive = item.get("$patch")
        if directive == "replace":
            return [copy.deepcopy(i) for i in patch if i.get("$patch") != "replace"]
        idx = next(
            (
                n
                for n, existing in enumerate(out)
                if isinstance(existing, dict) and existing.get(key) == item.get(key)
            ),
            None,
        )
        if directive == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


def strategic_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    order: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            order[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$"):
            # $retainKeys / $deleteFromPrimitiveList: directives the simulator accepts and ignores
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _strategic_list(key, result[key], value)
        elif isinstance(value, list):
            result[key] = _strategic_list(key, [], value)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    for field, wanted in order.items():
        key = _merge_key(field, result.get(field) or [])
        current = result.get(field)
        if not key or not isinstance(current, list):
            continue
        rank = {w.get(key): n for n, w in enumerate(wanted) if isinstance(w, dict)}
        result[field] = sorted(current, key=lambda i: rank.get(i.get(key), len(rank)))
    return result


def apply_patch(doc: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    if content_type == JSON_PATCH:
        return json_patch(doc, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "BadRequest", "patch body must be a JSON object")
    if content_type == MERGE_PATCH:
        return merge_patch(doc, patch)
    if content_type == STRATEGIC_PATCH:
        merged = strategic_merge(doc, patch)
        return merged if isinstance(merged, dict) else {}
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_PATCH}",
    )
