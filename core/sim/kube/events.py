"""Events as client-go's recorder writes them, and their events.k8s.io/v1 view.

The real API server stores one Event and serves it as core/v1 (`kubectl get events`, `describe`)
and as events.k8s.io/v1 (`kubectl events`); the simulator does the same: it stores core/v1 and
converts on the way out (pkg/apis/core/v1/conversion for Event <-> events/v1).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.clock import Clock
from core.sim.kube.errors import ApiError
from core.sim.kube.resources import BY_PATH, Resource
from core.sim.kube.store import Obj, Store, rfc3339

EVENTS = BY_PATH[("", "v1", "events")]


class EventRecorder:
    """record() creates a core/v1 Event, or bumps `count` of an identical recent one (as the recorder's
    EventCorrelator aggregates repeats)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        #: kube-apiserver --event-ttl: an Event is gone an hour after its last write
        self.ttl_s = 3600.0
        self._seen: dict[tuple[str, ...], str] = {}
        self._last_nanos = 0
        self._expiry: dict[tuple[str, str], float] = {}
        self._queue: deque[tuple[float, str, str]] = deque()

    def _keep(self, ns: str, name: str, now: float) -> None:
        self._expiry[(ns, name)] = now + self.ttl_s
        self._queue.append((now + self.ttl_s, ns, name))

    def _expire(self, now: float) -> None:
        while self._queue and self._queue[0][0] <= now:
            _, ns, name = self._queue.popleft()
            if self._expiry.get((ns, name), now + 1) > now:
                continue  # written again since: a later entry decides
            self._expiry.pop((ns, name), None)
            with contextlib.suppress(ApiError):
                self.store.delete(EVENTS, ns, name)

    def record(self, obj: Obj, kind: str, reason: str, message: str, component: str) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        now = self.clock.now()
        self._expire(now.timestamp())
        key = (component, str(meta.get("uid")), kind, reason, message)
        existing = self._seen.get(key)
        if existing is not None:
            current = self.store.peek(EVENTS, ns, existing)
            if current is not None:
                bumped = {**current, "count": int(current.get("count", 1)) + 1, "lastTimestamp": rfc3339(now)}
                bumped["metadata"] = {**current["metadata"], "resourceVersion": None}
                self.store.update(EVENTS, ns, existing, bumped)
                self._keep(ns, existing, now.timestamp())
                return
        # "%v.%x" of the object's name and UnixNano, as client-go's recorder names events; a later
        # nanosecond when two land at the same instant (a VirtualClock does not move between them)
        nanos = max(int(now.timestamp() * 1e9), self._last_nanos + 1)
        self._last_nanos = nanos
        name = f"{meta['name']}.{nanos:x}"
        event = {
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "kind": obj.get("kind"),
                "namespace": ns,
                "name": meta["name"],
                "uid": meta.get("uid"),
                "apiVersion": obj.get("apiVersion"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
            "type": kind,
            "reportingComponent": component,
            "reportingInstance": "",
        }
        try:
            self.store.create(EVENTS, ns, event)
        except ApiError:
            return  # same name within a nanosecond, or the namespace is going away: events are best effort
        self._seen[key] = name
        self._keep(ns, name, now.timestamp())


def to_events_v1(event: Obj) -> Obj:
    """A stored core/v1 Event as events.k8s.io/v1 shows it (regarding/note/deprecated* fields)."""
    out: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "metadata": event.get("metadata", {}),
        "eventTime": event.get("eventTime"),
        "reportingController": event.get("reportingComponent")
        or (event.get("source") or {}).get("component", ""),
        "reportingInstance": event.get("reportingInstance", ""),
        "action": event.get("action", ""),
        "reason": event.get("reason", ""),
        "regarding": event.get("involvedObject", {}),
        "note": event.get("message", ""),
        "type": event.get("type", ""),
        "deprecatedSource": event.get("source", {}),
        "deprecatedFirstTimestamp": event.get("firstTimestamp"),
        "deprecatedLastTimestamp": event.get("lastTimestamp"),
        "deprecatedCount": event.get("count", 0),
    }
    if event.get("related"):
        out["related"] = event["related"]
    return out


def from_events_v1(event: Obj) -> Obj:
    """An events.k8s.io/v1 Event a client sends, stored as core/v1."""
    out: dict[str, Any] = {
        "metadata": event.get("metadata", {}),
        "eventTime": event.get("eventTime"),
        "reportingComponent": event.get("reportingController", ""),
        "reportingInstance": event.get("reportingInstance", ""),
        "action": event.get("action", ""),
        "reason": event.get("reason", ""),
        "involvedObject": event.get("regarding", {}),
        "message": event.get("note", ""),
        "type": event.get("type", ""),
        "source": event.get("deprecatedSource", {}),
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": event.get("deprecatedCount", 0),
    }
    return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class View:
    """How one served resource maps onto another's storage (events.k8s.io/v1 onto core/v1)."""

    storage: Resource
    kind: str
    api_version: str
    out: Callable[[Obj], Obj]
    into: Callable[[Obj], Obj]


_EVENTS_V1 = View(EVENTS, "Event", "events.k8s.io/v1", to_events_v1, from_events_v1)
#: events.k8s.io/v1 field labels and the core/v1 ones they are stored under
_V1_FIELDS = {"regarding.": "involvedObject.", "reportingController": "reportingComponent"}


def view_for(res: Resource) -> View | None:
    return _EVENTS_V1 if (res.group, res.plural) == ("events.k8s.io", "events") else None


def field_selector(request: Any) -> str | None:
    """The request's fieldSelector, with events.k8s.io/v1 names turned into the stored core/v1 ones."""
    selector = request.query.get("fieldSelector")
    if selector and "/apis/events.k8s.io/" in request.path:
        for new, old in _V1_FIELDS.items():
            selector = selector.replace(new, old)
    return selector
