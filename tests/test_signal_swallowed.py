"""A signal whose cancellation a library swallows still stops the rollout where it stands.

Python 3.11's ``asyncio.wait_for`` returns the inner result, dropping the cancellation, when the
answer and the cancel land in the same turn of the loop (fixed in 3.12). The kube adapter awaited
every API call that way, so a SIGTERM that arrived as an answer came in was lost: the CLI printed
"stopping where the rollout stands", then drove the canary on to 100 % and journaled `finished`
(1 in 30 signals in a loop under load). The engine must not rely on one cancellation arriving.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from core.domain import Outcome
from core.events import Event, LogLine, TrafficChanged
from core.rollout.progress import RolloutStatus
from tests.engine_helpers import sim_session


class _SwallowOnce:
    """A probe that, once armed, is stopped mid-call (a signal, or the lease lost) and swallows
    the cancellation as 3.11's wait_for does; then, like a client that retries, it waits 10 more
    minutes of clock before it answers, and it is silent meanwhile."""

    def __init__(self, probe: Any, rollout: Any, stop: str = "signal") -> None:
        self.probe, self.rollout, self.stop = probe, rollout, stop
        self.armed = False
        self.swallowed = 0
        self.at: datetime | None = None

    async def check(self, *args: Any, **kwargs: Any) -> Any:
        answer = await self.probe.check(*args, **kwargs)
        if not self.armed:
            return answer
        self.armed = False
        self.at = self.rollout.clock.now()
        if self.stop == "signal":
            assert self.rollout.interrupt("SIGTERM", 143)
        else:
            self.rollout.lease_lost("renewal refused: another holder")
        try:
            await asyncio.sleep(0)  # the cancellation is delivered here...
        except asyncio.CancelledError:
            self.swallowed += 1  # ...and dropped
        await self.rollout.clock.sleep(600)
        return answer


async def _run_swallowing_at_25(
    tmp_path: Path, stop: str
) -> tuple[Any, _SwallowOnce, Outcome, list[dict[str, Any]]]:
    """A healthy run whose probe, once the canary is at 25 %, is stopped mid-call and swallows it."""
    session = await sim_session(tmp_path)
    rollout = session.rollout
    probe = _SwallowOnce(session.world.probe, rollout, stop=stop)
    session.world.probe = probe

    def arm_at_25(event: Event) -> None:
        if isinstance(event, TrafficChanged) and event.applied and event.effective == 25:
            probe.armed = True

    rollout.subscribe(arm_at_25)
    async with asyncio.timeout(60):
        outcome = await rollout.run()
    return session, probe, outcome, _records(session)


def _records(session: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in session.journal_path.read_text().splitlines()]


async def test_a_swallowed_cancellation_does_not_let_the_rollout_go_on(tmp_path: Path) -> None:
    session, probe, outcome, records = await _run_swallowing_at_25(tmp_path, "signal")
    rollout = session.rollout
    types = [r["type"] for r in records]
    assert probe.swallowed == 1  # the test did what it says: the cancellation was lost once
    assert outcome == Outcome.BLOCKED and rollout.interrupted == ("SIGTERM", 143)
    assert "finished" not in types and "rollback_triggered" not in types, types[-5:]
    interrupted = [r for r in records if r["type"] == "run_interrupted"]
    assert len(interrupted) == 1 and interrupted[0]["weight"] == 25
    # stopped at once, not at the body's next line: its next interval is 30 s of clock away
    assert datetime.fromisoformat(interrupted[0]["ts"].replace("Z", "+00:00")) == probe.at
    after = types[types.index("run_interrupted") :]
    assert after == ["run_interrupted"]
    assert max(r["effective"] for r in records if r["type"] == "traffic_changed") == 25
    state = RolloutStatus.from_state(await session.world.production.read_state())
    assert state is not None and not state.finished and state.weight == 25
    await session.close()


class _SwallowingCluster:
    """The production cluster, whose traffic change at ``at`` % takes the signal as its answer
    comes back and swallows the cancellation."""

    def __init__(self, cluster: Any, rollout: Any, at: int) -> None:
        self.cluster, self.rollout, self.at = cluster, rollout, at
        self.swallowed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cluster, name)

    async def set_canary_weight(self, percent: int) -> Any:
        change = await self.cluster.set_canary_weight(percent)
        if percent == self.at and not self.swallowed:
            assert self.rollout.interrupt("SIGHUP", 129)
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                self.swallowed += 1
        return change


async def test_after_a_swallowed_signal_the_body_neither_journals_nor_writes(tmp_path: Path) -> None:
    """The body goes on from the swallowed cancellation without waiting on anything (the memory
    cluster answers at once): it must still not record, persist or start the next window."""
    session = await sim_session(tmp_path)
    rollout = session.rollout
    cluster = _SwallowingCluster(session.world.production, rollout, at=50)
    session.world.production = cluster
    writes: list[dict[str, Any]] = []
    write_state = cluster.cluster.write_state

    async def recorded(state: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        writes.append(state)
        return await write_state(state, *args, **kwargs)

    cluster.cluster.write_state = recorded
    async with asyncio.timeout(60):
        outcome = await rollout.run()
    assert cluster.swallowed == 1 and outcome == Outcome.BLOCKED
    records = _records(session)
    types = [r["type"] for r in records]
    # the intent of 50 % was journaled before the signal; nothing after it but the stop
    last_intent = max(i for i, r in enumerate(records) if r["type"] == "traffic_changed")
    assert records[last_intent]["requested"] == 50 and records[last_intent]["applied"] is False
    assert types[last_intent + 1 :] == ["run_interrupted"], types[last_intent:]
    stop = records[-1]
    assert stop["signal"] == "SIGHUP" and stop["weight"] == 50  # what the cluster took
    # one write after the signal, the stop's own: the weight in force (the intent is kept for a resume)
    intent = max(i for i, w in enumerate(writes) if w["weight"] == 25 and w["weight_target"] == 50)
    assert [(w["weight"], w["weight_target"]) for w in writes[intent + 1 :]] == [(50, 50)]
    state = RolloutStatus.from_state(await session.world.production.read_state())
    assert state is not None and not state.finished and state.weight == 50
    await session.close()


async def test_once_signalled_the_engine_journals_writes_and_finishes_nothing_but_the_stop(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path)
    rollout = session.rollout
    assert rollout.interrupt("SIGTERM", 143)
    for action in (rollout._persist(), rollout._emit(LogLine, message="after the signal")):
        with pytest.raises(asyncio.CancelledError):
            await action
    with pytest.raises(asyncio.CancelledError):
        await rollout._finish(Outcome.COMPLETED, "a body that went on")
    assert rollout.outcome is None
    refused = rollout.allowed("rollback")
    assert not refused.ok and "SIGTERM" in refused.reason and "resume" in refused.reason
    assert await rollout.run() == Outcome.BLOCKED
    records = _records(session)
    assert [r["type"] for r in records] == ["run_interrupted"]
    await session.close()


async def test_a_lost_lease_whose_cancellation_is_swallowed_stops_the_body_at_once(tmp_path: Path) -> None:
    session, probe, outcome, records = await _run_swallowing_at_25(tmp_path, "lease")
    assert probe.swallowed == 1 and outcome == Outcome.BLOCKED
    lost = next(r for r in records if r["type"] == "lease_lost")
    assert lost["weight"] == 25
    assert datetime.fromisoformat(lost["ts"].replace("Z", "+00:00")) == probe.at  # not 10 minutes on
    assert max(r["effective"] for r in records if r["type"] == "traffic_changed") == 25
    await session.close()


class _Recording:
    """A journal that keeps what it is given, as given."""

    def __init__(self) -> None:
        self.appended: list[tuple[dict[str, Any], bool]] = []

    async def append(self, record: dict[str, Any], *, durable: bool = True) -> None:
        self.appended.append((record, durable))


async def test_state_changes_wait_for_the_disk_and_observations_do_not(tmp_path: Path) -> None:
    """Every state change is journaled durably (fsync before the action it announces); samples,
    log lines and health checks, hundreds a deploy, are not, and the next durable line covers
    them (health checks too, where the plan has URLs). Each record is plain JSON as given: the journal writes what it was handed."""
    session = await sim_session(tmp_path)
    journal = _Recording()
    session.rollout.journal = journal
    async with asyncio.timeout(60):
        assert await session.rollout.run() == Outcome.COMPLETED
    durable = {r["type"]: d for r, d in journal.appended}
    assert not durable["analysis"] and not durable["log"]
    assert all(durable[t] for t in ("traffic_changed", "phase_changed", "gate_evaluated", "finished"))
    assert all(d is True or d is False for _, d in journal.appended)
    for record, _ in journal.appended:
        assert json.loads(json.dumps(record)) == record  # dumped for JSON: no datetime, no enum objects
        assert record["ts"].endswith("Z") and "T" in record["ts"]
    await session.close()
