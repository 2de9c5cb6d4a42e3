"""One run's events for any number of attached clients, as Server-Sent Events.

Each engine event gets a sequence number: its position in the rollout's event list, counted
from 1. A resumed rollout starts from its deploy's journal (``Rollout.events`` holds the earlier
driver's events too), so the numbers a client has seen stay valid when another replica takes the
run over, and ``Last-Event-ID`` resumes there too.

A frame is serialized once and written to every client: ``id``/``event: event``/``data`` with the
journal line's JSON (``event.model_dump(mode="json")``, parse with ``core.events.parse_event``),
then ``event: state`` with what the engine allows now (:func:`run_state`), so a client never
re-derives the engine's rules. A client attaching mid-way first gets the history (every event
after its ``Last-Event-ID``) and one current state, then the live frames: history and live are
taken in one step with no await between them, so nothing is missed or sent twice.

A client that cannot keep up (``max_backlog`` frames queued) is dropped rather than buffered
without bound; it reconnects with ``Last-Event-ID`` and catches up from the history.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.events import Event

if TYPE_CHECKING:
    from core.rollout import Rollout

log = logging.getLogger("deploydeck.agent.api")

#: the engine commands whose allowed/reason the state carries (core.rollout.commands names them)
COMMANDS = (
    "sign_off",
    "proceed",
    "promote_early",
    "pause",
    "resume",
    "rollback",
    "abort",
    "decide",
    "refresh",
)


def run_state(rollout: Rollout) -> dict[str, Any]:
    """What a client shows and offers now: phase, weight, and each command's allowed/reason."""
    pending = rollout._decision_pending
    return {
        "seq": len(rollout.events),
        "deploy_id": rollout.deploy_id,
        "phase": rollout.phase.value,
        "effective_phase": rollout.effective_phase.value,
        "weight": rollout.weight,
        "outcome": rollout.outcome.value if rollout.outcome is not None else None,
        "step_index": rollout.step_index,
        "allowed": {c: rollout.allowed(c).model_dump() for c in COMMANDS},
        "proceed_preview": rollout.proceed_preview(),
        "promote_early_preview": rollout.promote_early_preview(),
        "pending_reasons": rollout.pending_reasons(),
        "decision": (
            {"question": pending.question, "options": pending.options, "recommended": pending.recommended}
            if pending is not None
            else None
        ),
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def event_frame(seq: int, event: Event) -> bytes:
    return f"id: {seq}\nevent: event\ndata: {_dumps(event.model_dump(mode='json'))}\n\n".encode()


def state_frame(state: dict[str, Any]) -> bytes:
    return f"event: state\ndata: {_dumps(state)}\n\n".encode()


KEEPALIVE = b": keepalive\n\n"


@dataclass(eq=False)
class Subscriber:
    """One attached client. ``queue`` yields frames; None means the stream ends (dropped, or the run
    is no longer streamed from here: reconnect)."""

    username: str
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    dropped: bool = False


class RunStream:
    """The event hub of one rollout (one engine object: a new driver is a new stream)."""

    def __init__(
        self,
        rollout: Rollout,
        *,
        state: Callable[[Rollout], dict[str, Any]] = run_state,
        max_backlog: int = 10_000,
        on_frame: Callable[[Event, int], None] | None = None,
    ) -> None:
        self.rollout = rollout
        self._state = state
        self.max_backlog = max_backlog
        self.on_frame = on_frame  # (event, clients written to): for the agent's metrics
        self.frames: list[bytes] = [event_frame(i, e) for i, e in enumerate(rollout.events, start=1)]
        self.subscribers: set[Subscriber] = set()
        self.closed = False
        self._unsubscribe = rollout.subscribe(self._on_event)

    @property
    def seq(self) -> int:
        return len(self.frames)

    def _on_event(self, event: Event) -> None:
        # called by the engine's own publishing: whatever goes wrong here must not reach the
        # rollout (an API problem never stops a deploy); the clients reconnect to a new stream
        try:
            self._publish(event)
        except Exception:
            log.exception(
                "event stream of deploy %s failed; its clients are disconnected", self.rollout.deploy_id
            )
            self.close()

    def _publish(self, event: Event) -> None:
        # called synchronously right after the engine appended the event: the state computed
        # here is the state that event left, before any later one
        frame = event_frame(len(self.frames) + 1, event)
        self.frames.append(frame)
        if not self.subscribers:
            return
        both = frame + state_frame(self._state(self.rollout))
        for sub in list(self.subscribers):
            if sub.queue.qsize() >= self.max_backlog:
                self._drop(sub)
                continue
            sub.queue.put_nowait(both)
        if self.on_frame is not None:
            self.on_frame(event, len(self.subscribers))

    def attach(self, username: str, last_event_id: int = 0) -> tuple[bytes, Subscriber]:
        """The frames a new client gets first (history after ``last_event_id`` and the current
        state) and its subscription to everything after them."""
        start = max(0, min(last_event_id, len(self.frames)))
        history = b"".join(self.frames[start:]) + state_frame(self._state(self.rollout))
        sub = Subscriber(username)
        if self.closed:
            sub.queue.put_nowait(None)
        else:
            self.subscribers.add(sub)
        return history, sub

    def detach(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _drop(self, sub: Subscriber) -> None:
        sub.dropped = True
        self.subscribers.discard(sub)
        while not sub.queue.empty():  # free the backlog now; the client catches up from history
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    def close(self) -> None:
        """Stop following the rollout and end every client's stream (they reconnect)."""
        if self.closed:
            return
        self.closed = True
        self._unsubscribe()
        for sub in list(self.subscribers):
            sub.queue.put_nowait(None)
        self.subscribers.clear()

    def attached(self) -> set[str]:
        return {s.username for s in self.subscribers}


class StreamHub:
    """The streams of the runs this replica drives, one per rollout object."""

    def __init__(self, *, max_backlog: int = 10_000, on_frame: Callable[[Event, int], None] | None = None):
        self.max_backlog = max_backlog
        self.on_frame = on_frame
        self._streams: dict[tuple[str, str], RunStream] = {}

    def stream(self, key: tuple[str, str], rollout: Rollout) -> RunStream:
        """The stream of this run's current rollout; a new rollout object (the lease was lost and
        taken again) replaces the old stream, whose clients reconnect."""
        current = self._streams.get(key)
        if current is not None and current.rollout is rollout and not current.closed:
            return current
        if current is not None:
            current.close()
        current = RunStream(rollout, max_backlog=self.max_backlog, on_frame=self.on_frame)
        self._streams[key] = current
        return current

    def detach(self, key: tuple[str, str], stream: RunStream, sub: Subscriber) -> None:
        """A client left. The last one to leave ends the stream: nobody watching means no frames
        kept in memory (a run driven for days, 100 runs per agent); the next client to attach
        gets a new stream whose history is rebuilt from the engine's events, numbered the same."""
        stream.detach(sub)
        if not stream.subscribers and self._streams.get(key) is stream:
            self.forget(key)

    def forget(self, key: tuple[str, str]) -> None:
        stream = self._streams.pop(key, None)
        if stream is not None:
            stream.close()

    def get(self, key: tuple[str, str]) -> RunStream | None:
        return self._streams.get(key)

    def attached(self, key: tuple[str, str]) -> list[str]:
        stream = self._streams.get(key)
        return sorted(stream.attached()) if stream is not None else []

    def keys(self) -> list[tuple[str, str]]:
        return list(self._streams)

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
