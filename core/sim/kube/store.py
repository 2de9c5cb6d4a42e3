"""The object store: resourceVersion, generation, optimistic concurrency and watch history."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.sim.kube import crds, kinds
from core.sim.kube.errors import ApiError, already_exists, conflict, invalid, not_found
from core.sim.kube.resources import Resource
from core.sim.kube.selectors import Matcher

Obj = dict[str, Any]
ResKey = tuple[str, str]  # (group, plural)

#: how many past changes a watch can resume from before answering 410 Gone
HISTORY = 20000


def rfc3339(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Change:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    res: ResKey
    obj: Obj
    #: the object as it was before this change (None for ADDED): lets a list be read as of an older
    #: resourceVersion, as etcd's MVCC does for paginated lists
    prev: Obj | None = None


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


@dataclass
class _Watcher:
    res: ResKey
    namespace: str | None
    matches: Matcher
    queue: asyncio.Queue[Change] = field(default_factory=asyncio.Queue)


class Store:
    def __init__(self) -> None:
        self._rv = 1000
        self._objects: dict[ResKey, dict[tuple[str, str], Obj]] = {}
        self._history: deque[Change] = deque(maxlen=HISTORY)
        self._watchers: list[_Watcher] = []
        self.listeners: list[Callable[[Change], None]] = []

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    # --- reads ---------------------------------------------------------------

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        obj = self._objects.get((res.group, res.plural), {}).get((namespace or "", name))
        if obj is None:
            raise not_found(res.plural, res.group, name)
        return copy.deepcopy(obj)

    def peek(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        """The stored object itself (no copy), for in-process readers that do not mutate it."""
        return self._objects.get((res.group, res.plural), {}).get((namespace or "", name))

    def scan(self, res: Resource, namespace: str | None) -> list[Obj]:
        """The stored objects themselves, for in-process readers that never mutate them (the controller)."""
        bucket = self._objects.get((res.group, res.plural), {})
        return [o for (ns, _), o in bucket.items() if namespace is None or ns == namespace]

    def list(self, res: Resource, namespace: str | None, matches: Matcher) -> list[Obj]:
        bucket = self._objects.get((res.group, res.plural), {})
        items = [
            o
            for (ns, _), o in sorted(bucket.items())
            if (namespace is None or ns == namespace) and matches(o)
        ]
        return [copy.deepcopy(o) for o in items]

    # --- writes --------------------------------------------------------------

    def create(
        self, res: Resource, namespace: str | None, obj: Obj, *, dry_run: bool = False, strict: bool = False
    ) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise invalid(
                res.kind, res.group, "", "metadata.name", "Required value: name or generateName is required"
            )
        if res.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace
            if namespace and self.peek(_NAMESPACES, None, namespace) is None and res.plural != "namespaces":
                raise not_found("namespaces", "", namespace)
        bucket = self._objects.setdefault((res.group, res.plural), {})
        if (namespace or "", name) in bucket:
            raise already_exists(res.plural, res.group, name)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        obj = _drop_nulls(obj)
        if res.schema is not None:
            obj = crds.admit(res, obj, strict=strict)
        meta = obj["metadata"]
        kinds.apply_defaults(res, obj)
        kinds.validate(res, obj, creating=True)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339()
        meta.pop("resourceVersion", None)
        # the kinds whose registry strategy keeps a generation (Pods only since 1.33, behind a gate)
        # custom resources always keep one (apiextensions-apiserver's strategy)
        if res.schema is not None or (
            "spec" in obj and res.kind not in {"Lease", "Namespace", "Service", "Pod"}
        ):
            meta["generation"] = 1
        if res.has_status:
            obj.setdefault("status", {})
        if dry_run:
            meta["resourceVersion"] = self.resource_version
            return obj
        return self._commit(res, "ADDED", obj)

    def update(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        new: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
    ) -> Obj:
        current = self.peek(res, namespace, name)
        if current is None:
            raise not_found(res.plural, res.group, name)
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
            )
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv not in (None, "") and str(wanted_rv) != current["metadata"]["resourceVersion"]:
            raise conflict(res.plural, res.group, name)
        # identity and server-owned fields never come from the client
        for key in ("uid", "creationTimestamp", "namespace", "name", "generation"):
            if key in current["metadata"]:
                meta[key] = current["metadata"][key]
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            # only a graceful delete sets these (mark_deleting); a client can neither set nor clear them
            if key in current["metadata"]:
                meta[key] = current["metadata"][key]
            else:
                meta.pop(key, None)
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        if res.has_status:
            if subresource == "status":
                new = {**copy.deepcopy(current), "status": new.get("status", {})}
                new["metadata"] = {**copy.deepcopy(current["metadata"]), **_mutable_meta(meta)}
            else:
                new["status"] = copy.deepcopy(current.get("status", {}))
        new = _drop_nulls(new)
        if res.schema is not None:
            new = crds.admit(res, new, strict=strict)
        if current["metadata"].get("deletionTimestamp") and subresource != "status":
            added = set(new["metadata"].get("finalizers") or []) - set(
                current["metadata"].get("finalizers") or []
            )
            if added:
                raise invalid(
                    res.kind,
                    res.group,
                    name,
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers {sorted(added)}",
                )
        kinds.apply_defaults(res, new)
        kinds.validate(res, new, current=current if subresource != "status" else None)
        if "generation" in current["metadata"] and _changes_generation(res, current, new, subresource):
            new["metadata"]["generation"] = current["metadata"]["generation"] + 1
        if _same(current, new):
            return copy.deepcopy(current)  # a no-op write does not bump resourceVersion
        if dry_run:
            return new
        written = self._commit(res, "MODIFIED", new)
        if _finalized(written):
            # the last finalizer is gone from an object a DELETE only marked: it goes now (MODIFIED, DELETED)
            self._remove(res, namespace, name)
        return written

    def mark_deleting(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        *,
        deletion_timestamp: str,
        grace_seconds: int,
        status: Obj,
    ) -> Obj:
        """A graceful delete's one write: deletionTimestamp set (and, folded in, the kubelet's not-Ready)."""
        current = self.peek(res, namespace, name)
        if current is None:
            raise not_found(res.plural, res.group, name)
        obj = copy.deepcopy(current)
        obj["metadata"]["deletionTimestamp"] = deletion_timestamp
        obj["metadata"]["deletionGracePeriodSeconds"] = grace_seconds
        obj["status"] = status
        return self._commit(res, "MODIFIED", obj)

    def delete(self, res: Resource, namespace: str | None, name: str, *, dry_run: bool = False) -> Obj:
        bucket = self._objects.get((res.group, res.plural), {})
        if (namespace or "", name) not in bucket:
            raise not_found(res.plural, res.group, name)
        current = bucket[(namespace or "", name)]
        if current["metadata"].get("finalizers"):
            # a finalizer holds the object: DELETE only marks it (deletionTimestamp, grace 0) until the
            # finalizers list is emptied; a second DELETE changes nothing
            if dry_run or current["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(current)
            marked = copy.deepcopy(current)
            marked["metadata"]["deletionTimestamp"] = rfc3339()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(res, "MODIFIED", marked)
        if dry_run:
            return copy.deepcopy(current)
        return self._remove(res, namespace, name)

    def drop(self, res: Resource, namespace: str | None, name: str) -> None:
        """Remove an object whatever its finalizers (its CRD was deleted; the real garbage collector
        would wait for finalizers, the simulator does not)."""
        if (namespace or "", name) in self._objects.get((res.group, res.plural), {}):
            self._remove(res, namespace, name)

    def _remove(self, res: Resource, namespace: str | None, name: str) -> Obj:
        bucket = self._objects.get((res.group, res.plural), {})
        prev = bucket.pop((namespace or "", name))
        self._rv += 1
        obj = copy.deepcopy(prev)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._publish(Change(self._rv, "DELETED", (res.group, res.plural), obj, prev))
        if res.plural == "namespaces":
            for key, objs in self._objects.items():
                for ns_name in [k for k in objs if k[0] == name]:
                    gone = objs.pop(ns_name)
                    self._rv += 1
                    self._publish(Change(self._rv, "DELETED", key, gone, gone))
        return copy.deepcopy(obj)

    def _commit(self, res: Resource, kind: str, obj: Obj) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        bucket = self._objects.setdefault((res.group, res.plural), {})
        key = (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        prev = bucket.get(key)
        bucket[key] = obj  # stored objects are replaced, never changed in place: prev stays as it was
        self._publish(Change(self._rv, kind, (res.group, res.plural), obj, prev))
        return copy.deepcopy(obj)

    # --- history: compaction, reading an older resourceVersion ------------------------

    def oldest_readable(self) -> int:
        """The oldest resourceVersion a watch can resume from or a list continue at (etcd's compaction)."""
        return (self._history[0].rv - 1) if self._history else self._rv

    def compact(self) -> None:
        """Forget every past change, as kube-apiserver's periodic etcd compaction does."""
        self._history.clear()

    def list_at(self, res: Resource, namespace: str | None, matches: Matcher, rv: int) -> list[Obj]:
        """The objects as they were at resourceVersion `rv`, sorted by key; 410 once compacted away."""
        if rv < self.oldest_readable():
            raise expired(f"too old resource version: {rv} ({self.oldest_readable()})")
        key_of = (res.group, res.plural)
        state = dict(self._objects.get(key_of, {}))
        for change in reversed(self._history):
            if change.rv <= rv:
                break
            if change.res != key_of:
                continue
            k = (change.obj["metadata"].get("namespace") or "", change.obj["metadata"]["name"])
            if change.prev is None:
                state.pop(k, None)
            else:
                state[k] = change.prev
        items = [
            o for (ns, _), o in sorted(state.items()) if (namespace is None or ns == namespace) and matches(o)
        ]
        return [copy.deepcopy(o) for o in items]

    def _publish(self, change: Change) -> None:
        self._history.append(change)
        for w in self._watchers:
            if w.res == change.res and _in_scope(w, change.obj):
                w.queue.put_nowait(change)
        for listener in self.listeners:
            listener(change)

    # --- watch ---------------------------------------------------------------

    def open_watch(
        self, res: Resource, namespace: str | None, matches: Matcher, since: str | None
    ) -> tuple[list[Change], _Watcher]:
        """The changes to replay first, and a watcher whose queue receives every later one."""
        watcher = _Watcher((res.group, res.plural), namespace, matches)
        if since not in (None, "", "0"):
            try:
                start = int(str(since))
            except ValueError:
                raise ApiError(400, "BadRequest", f'invalid resource version "{since}"') from None
            if start < self.oldest_readable():
                raise expired(f"too old resource version: {start} ({self.oldest_readable()})")
            backlog = [
                c
                for c in self._history
                if c.rv > start and c.res == watcher.res and _in_scope(watcher, c.obj)
            ]
        else:
            # "0"/unset: synthetic ADDED for everything that exists now, as the real server does
            backlog = [
                Change(int(o["metadata"]["resourceVersion"]), "ADDED", watcher.res, o)
                for o in self.list(res, namespace, matches)
            ]
        self._watchers.append(watcher)
        return backlog, watcher

    def close_watch(self, watcher: _Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)


def _in_scope(w: _Watcher, obj: Obj) -> bool:
    if w.namespace is not None and obj.get("metadata", {}).get("namespace") != w.namespace:
        return False
    return w.matches(obj)


def _finalized(obj: Obj) -> bool:
    meta = obj["metadata"]
    # grace 0: marked by a DELETE held by finalizers (a pod's graceful delete has its grace period)
    return (
        bool(meta.get("deletionTimestamp"))
        and meta.get("deletionGracePeriodSeconds") == 0
        and not meta.get("finalizers")
    )


def _changes_generation(res: Resource, current: Obj, new: Obj, subresource: str | None) -> bool:
    if res.schema is not None:
        # custom resources: every change but metadata and status (apiextensions' strategy)
        rest = lambda o: {k: v for k, v in o.items() if k not in {"metadata", "status"}}  # noqa: E731
        return rest(new) != rest(current)
    if new.get("spec") != current.get("spec"):
        return True
    # apps/v1 deploymentStrategy.PrepareForUpdate (pkg/registry/apps/deployment/strategy.go) also bumps
    # generation when annotations change, "because annotations are copied from deployments to their
    # replica sets"; its status strategy keeps spec, so the controller's /status writes never bump it
    if res.kind == "Deployment" and subresource != "status":
        return (new["metadata"].get("annotations") or {}) != (current["metadata"].get("annotations") or {})
    return False


def _drop_nulls(value: Any) -> Any:
    """Typed Go structs forget JSON nulls (kubectl sends `creationTimestamp: null`); so does the store."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _mutable_meta(meta: Obj) -> Obj:
    return {k: v for k, v in meta.items() if k in {"labels", "annotations"}}


def _same(a: Obj, b: Obj) -> bool:
    strip = lambda o: {**o, "metadata": {k: v for k, v in o["metadata"].items() if k != "resourceVersion"}}  # noqa: E731
    return json.dumps(strip(a), sort_keys=True) == json.dumps(strip(b), sort_keys=True)


_NAMESPACES = Resource("", "v1", "namespaces", "namespace", "Namespace", namespaced=False)
