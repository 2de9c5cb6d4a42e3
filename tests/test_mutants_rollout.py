"""The engine's canary step, promotion and abort as the cluster and the journal see them (issue 16).

Written against the survivors of `make mutate MUTATE_MODULES=core.rollout` in steps/canary.py and the
abort: the engine tests check outcomes; these pin the order of what reaches the cluster (each piece of
progress persisted before the action it announces, stable Ready before traffic returns to it), an
abort's traffic, the proceed waits, and resumes after a kill at each canary and promotion point. The
rollback procedure's tests are in test_mutants_rollout_rollback.py. All in memory, in virtual time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core.clock import VirtualClock
from core.domain import Outcome, Phase
from core.events import (
    Event,
    LogLine,
    PhaseChanged,
    TrafficChanged,
)
from core.policy import gates_for
from core.ports import PortError
from core.session import Session, open_session
from tests.engine_helpers import plan_with_one_migration, sim_session, until
from tests.resume_helpers import journal_records, open_driver, run_killed_at

IMAGE = "registry.example.com/shop/checkout:1.5.0"
OLD_IMAGE = "registry.example.com/shop/checkout:1.4.2"
BEFORE_CANARY = [
    "done=preflight (pre-deploy gates satisfied)",
    "done=staging.deploy (1.5.0 rolled out)",
    "done=staging.gates (staging gates satisfied)",
    "done=staging (staging deployed, gates green, soak passed)",
]
CANARY_START = [
    "pending=canary.deploy",
    f"deploy:canary:{IMAGE}",
    "pending=None",
    f"done=canary.deploy ({IMAGE})",
    "weight_target=5",
    "weight:5",
    "weight_target=None",
    "wait_ready:canary",  # the adapter's weight change waits for Ready pods; the engine for the rollout
    "done=canary.step.0 (5 % observed)",
    "weight_target=25",
    "weight:25",
    "weight_target=None",
]


def _journal(session: Session) -> list[str]:
    """The production cluster's calls, interleaved with the progress the engine persists to it
    (shown when the pending step, the last step done or the weight being set changes)."""
    inner: Any = session.rollout.world.production.inner  # type: ignore[attr-defined]
    write, last = inner.write_state, {}

    async def write_state(state: dict[str, Any]) -> None:
        done = (state.get("completed") or [None])[-1]
        seen = {"pending": state.get("pending"), "done": done, "weight_target": state.get("weight_target")}
        for key, value in seen.items():
            if last.get(key) != value:
                result = state.get("results", {}).get(value) if key == "done" else None
                inner.calls.append(f"{key}={value}" + (f" ({result})" if result else ""))
        last.update(seen)
        await write(state)

    inner.write_state = write_state
    return inner.calls  # type: ignore[no-any-return]


def _of(events: list[Event], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def _traffic(events: list[Event]) -> list[tuple[int, int, bool, str, str]]:
    return [(e.requested, e.effective, e.applied, e.detail, e.actor) for e in _of(events, TrafficChanged)]


async def test_a_healthy_canary_persists_each_step_before_it_and_promotes_after_stable_is_ready(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "healthy")
    journal = _journal(session)
    assert await session.rollout.run() == Outcome.COMPLETED
    assert journal == [
        *BEFORE_CANARY,
        *CANARY_START,
        "done=canary.step.1 (25 % observed)",
        "weight_target=50",
        "weight:50",
        "weight_target=None",
        "done=canary.step.2 (50 % observed)",
        "weight_target=100",
        "weight:100",
        "weight_target=None",
        "done=canary.step.3 (100 % observed)",
        "pending=canary.promote",
        f"deploy:stable:{IMAGE}",
        "wait_ready:stable",  # traffic returns to stable only once its new pods are Ready
        "weight_target=0",
        "weight:0",
        "weight_target=None",
        "pending=None",
        "done=canary.promote (1.5.0 is stable)",
        "done=verify (green)",
        "done=complete.notify",
        "done=complete.extras",
    ]
    events = session.rollout.events
    intents = [(w, w, False, "intent", "engine") for w in (5, 25, 50, 100, 0)]
    applied = [(5, 5, True, "", "engine"), (25, 25, True, "", "engine"), (50, 50, True, "", "engine")]
    applied += [
        (100, 100, True, "", "engine"),
        (0, 0, True, "promoted: stable runs the new version", "engine"),
    ]
    assert _traffic(events) == [x for pair in zip(intents, applied, strict=True) for x in pair]
    cluster = [e.message for e in _of(events, LogLine) if e.source == "cluster"]
    assert cluster[4:] == [
        *(f"canary rollout: canary: {p} % of pods ready" for p in (25, 50, 75, 100)),
        *(f"stable rollout: stable: {p} % of pods ready" for p in (25, 50, 75, 100)),
        f"stable rollout: 20 of 20 pods ready, running {IMAGE}",
    ]
    assert (session.rollout.step_index, session.rollout.weight) == (None, 0)
    phases = [(e.phase.value, e.reason) for e in _of(events, PhaseChanged)]
    assert phases[2:4] == [("canary", "starting the canary"), ("verify", "post-deploy verification")]
    # nobody proceeded: no step says a proceed came as its window ended
    assert not [e for e in _of(events, LogLine) if "proceed" in e.message]


async def test_an_abort_mid_canary_takes_the_canary_traffic_off_and_one_before_it_touches_nothing(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path / "canary", "healthy")
    rollout = session.rollout
    journal = _journal(session)

    def on_event(event: Event) -> None:
        if isinstance(event, TrafficChanged) and event.applied and event.effective == 25:
            asyncio.get_running_loop().create_task(rollout.abort("alice", "wrong build"))

    rollout.subscribe(on_event)
    assert await rollout.run() == Outcome.ABORTED
    assert [c for c in journal if ":" in c or c == "rollback"][-2:] == ["weight:25", "weight:0"]
    assert _traffic(rollout.events)[-1] == (0, 0, True, "abort: canary traffic off", "alice")
    assert rollout.weight == 0
    last = _of(rollout.events, PhaseChanged)[-1]
    assert (last.phase, last.reason) == (Phase.ABORTED, "wrong build")

    early = await sim_session(tmp_path / "preflight", "healthy", interactive=True)
    task = asyncio.create_task(early.rollout.run())
    await until(lambda: early.rollout.phase == Phase.PREFLIGHT and len(early.rollout.gates) >= 8)
    assert (await early.rollout.abort("alice", "not today")).ok
    assert await task == Outcome.ABORTED
    assert early.rollout.world.production.calls == []  # type: ignore[attr-defined]
    assert _of(early.rollout.events, TrafficChanged) == []


async def test_without_auto_promote_each_step_but_the_last_waits_for_a_proceed(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy", interactive=True)
    rollout = session.rollout
    canary = rollout.plan.canary.model_copy(update={"auto_promote": False})
    rollout.plan = rollout.plan.model_copy(update={"canary": canary})
    task = asyncio.create_task(rollout.run())
    await until(lambda: "rollback-plan" in rollout.gates)
    assert (await rollout.sign_off("rollback-plan", "alice", "RB-12")).ok
    assert (await rollout.sign_off("dashboards-reviewed", "bob", "")).ok
    await until(lambda: rollout.allowed("proceed").ok)
    assert (await rollout.proceed("alice")).ok  # past the pre-deploy gates
    for weight in (5, 25, 50):
        # the window ends by itself, then the step holds at its weight for a person
        await until(lambda w=weight: rollout.weight == w and rollout._awaiting_proceed, turns=1_000_000)
        assert rollout.weight == weight and rollout.window is None
        assert (await rollout.proceed("alice")).ok
    asked = [e.message for e in _of(rollout.events, LogLine) if e.message.endswith(": press p")]
    assert asked[-3:] == [f"step {w} % observed; proceed to the next step: press p" for w in (5, 25, 50)]
    # the 100 % step is the last: it promotes by itself (and a wait there would never end: fail, not hang)
    await until(task.done, turns=1_000_000)
    assert task.result() == Outcome.COMPLETED
    assert [w for w, *_ in _traffic(rollout.events)][1::2] == [5, 25, 50, 100, 0]


PROMOTE = [f"deploy:stable:{IMAGE}", "wait_ready:stable", "weight:0"]


@pytest.mark.parametrize(
    ("kill_before", "nth", "resumed_calls"),
    [
        # the canary image never reached the cluster: deploy it, then every step from the first
        (
            "cluster deploy",
            1,
            [f"deploy:canary:{IMAGE}", "weight:5", "wait_ready:canary", "weight:25", "weight:50"],
        ),
        # 25 % announced but not made: made once, no second deploy or Ready wait
        ("cluster set_canary_weight(25,)", 1, ["weight:25", "weight:50"]),
        # 25 % made and journaled: not made again; the rest of its window, then 50 %
        ("journal analysis step=1", 1, ["weight:50"]),
        # promotion announced (pending), stable not yet Ready: promotion redone from its start
        ("cluster wait_ready('stable',)", 1, []),
        ("cluster set_canary_weight(0,)", 1, []),
        # promoted, killed as verification started: nothing of the canary or promotion is redone
        ("journal window_started step=None", 2, None),
    ],
)
async def test_a_killed_canary_resumes_without_repeating_or_skipping_a_cluster_change(
    tmp_path: Path, kill_before: str, nth: int, resumed_calls: list[str] | None
) -> None:
    first = await open_driver(None, tmp_path)
    world = first.world
    outcome, switch = await run_killed_at(first, match=kill_before, nth=nth)
    assert outcome is None and switch.where.startswith(kill_before)
    inner: Any = world.production.inner  # type: ignore[attr-defined]
    before = len(inner.calls)
    second = await open_driver(world, tmp_path)
    assert await second.rollout.run() == Outcome.COMPLETED
    # across both drivers every weight is announced once and recorded applied once, in order
    traffic = [
        (r["requested"], r["applied"]) for r in journal_records(tmp_path) if r["type"] == "traffic_changed"
    ]
    assert traffic == [(w, applied) for w in (5, 25, 50, 100, 0) for applied in (False, True)]
    if resumed_calls is None:
        assert inner.calls[before:] == []
    else:
        tail = ["weight:100", *PROMOTE] if resumed_calls else PROMOTE
        assert inner.calls[before:] == resumed_calls + tail
    assert inner.weight == 0 and inner.stable_image == IMAGE


async def test_production_migrations_run_once_between_their_announcement_and_the_canary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_with_one_migration(
        tmp_path, monkeypatch, staging_command="migrate up", production_command="migrate prod", timeout=123
    )
    session = await open_session(
        plan,
        actor="tester",
        clock=VirtualClock(),
        interactive=False,
        approvals=[g.id for g in gates_for(plan) if not g.automated],
        journal_path=tmp_path / "j" / "d.jsonl",
    )
    journal = _journal(session)
    world: Any = session.world
    run = world.runner.run

    async def recording(command: str, **kwargs: Any) -> Any:
        journal.append(f"run:{command} ({kwargs['timeout_s']:.0f} s)")
        return await run(command, **kwargs)

    world.runner.run = recording
    assert await session.rollout.run() == Outcome.COMPLETED
    start = journal.index("pending=migrations.production")
    assert journal[start : start + 4] == [
        "pending=migrations.production",
        "run:migrate prod (123 s)",
        "pending=None",
        "done=migrations.production (ran on production)",
    ]
    assert journal[start + 4 : start + 6] == ["pending=canary.deploy", f"deploy:canary:{IMAGE}"]
    assert world.runner.commands.count("migrate prod") == 1
    output = [
        e.message for e in _of(session.rollout.events, LogLine) if e.source == "migrations (production)"
    ]
    assert output == ["$ migrate prod", "running 42 checks", "42 passed in 38.2s"]

    # a driver killed just before the canary deploy: the next one does not run the migration again
    approvals = [g.id for g in gates_for(plan) if not g.automated]
    again = await open_session(
        plan,
        actor="tester",
        clock=VirtualClock(),
        interactive=False,
        approvals=approvals,
        journal_path=tmp_path / "k" / "d.jsonl",
    )
    outcome, _ = await run_killed_at(again, match="cluster deploy")
    runner: Any = again.world.runner
    assert outcome is None and runner.commands.count("migrate prod") == 1
    resumed = await open_session(
        plan,
        actor="tester",
        clock=again.world.clock,
        interactive=False,
        approvals=approvals,
        journal_path=tmp_path / "k" / "d.jsonl",
        world=again.world,
    )
    assert await resumed.rollout.run() == Outcome.COMPLETED
    assert runner.commands.count("migrate prod") == 1


async def test_a_stable_that_cannot_be_read_back_after_promotion_is_said_so(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    inner: Any = session.rollout.world.production.inner  # type: ignore[attr-defined]
    describe = inner.describe

    async def unreadable() -> Any:
        if f"deploy:stable:{IMAGE}" in inner.calls:
            raise PortError("GET deployments/checkout: 500 (test)")
        return await describe()

    inner.describe = unreadable
    assert await session.rollout.run() == Outcome.COMPLETED
    said = [
        (e.message, e.source) for e in _of(session.rollout.events, LogLine) if "read it back" in e.message
    ]
    assert said == [
        ("stable rollout: cannot read it back now: GET deployments/checkout: 500 (test)", "cluster")
    ]


async def test_an_abort_takes_even_a_1_percent_canary_off_and_survives_a_refused_change(
    tmp_path: Path,
) -> None:
    one = await sim_session(tmp_path / "one", "healthy")
    plan = one.rollout.plan
    steps = [plan.canary.steps[0].model_copy(update={"weight": 1}), *plan.canary.steps[1:]]
    one.rollout.plan = plan.model_copy(update={"canary": plan.canary.model_copy(update={"steps": steps})})
    refused = await sim_session(tmp_path / "refused", "healthy")
    refused_inner: Any = refused.rollout.world.production.inner  # type: ignore[attr-defined]
    change = refused_inner.set_canary_weight

    async def refusing(percent: int) -> Any:
        if percent == 0:
            raise PortError("PATCH: 503 (test)")
        return await change(percent)

    refused_inner.set_canary_weight = refusing
    for session, at in ((one, 1), (refused, 5)):
        rollout = session.rollout

        def on_event(event: Event, rollout: Any = rollout, at: int = at) -> None:
            if isinstance(event, TrafficChanged) and event.applied and event.effective == at:
                asyncio.get_running_loop().create_task(rollout.abort("alice", "wrong build"))

        rollout.subscribe(on_event)
        assert await rollout.run() == Outcome.ABORTED
        assert _of(rollout.events, PhaseChanged)[-1].phase == Phase.ABORTED
    inner: Any = one.rollout.world.production.inner  # type: ignore[attr-defined]
    assert "weight:1" in inner.calls and inner.calls[-1] == "weight:0" and one.rollout.weight == 0
    # the cluster refused: the abort still ends the deploy (the weight stays, and nothing says it moved)
    assert refused_inner.weight == 5
    assert _traffic(refused.rollout.events)[-1][3] != "abort: canary traffic off"
