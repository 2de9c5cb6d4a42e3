"""Resume (issue 11, items 1 and 2): progress persisted before acting; a new driver continues it.

Each test kills a driver at a chosen point (tests/resume_helpers.py: no cleanup runs, as under
kill -9), then opens a new session on the same simulated cluster and journal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.adapters.journal import verify_journal
from core.domain import Outcome
from core.events import AnalysisSample, TrafficChanged, WindowStarted
from core.rollout.progress import RolloutStatus
from core.session import ResumeRefused, demo_plan, open_session
from tests.resume_helpers import applied_weights, journal_records, open_driver, run_killed_at

ROOT = str(Path(__file__).resolve().parent.parent)


async def _status(world: Any) -> RolloutStatus:
    status = RolloutStatus.from_state(await world.production.read_state())
    assert status is not None
    return status


async def test_the_intent_is_persisted_in_the_cluster_before_traffic_moves(tmp_path: Path) -> None:
    session = await open_driver(None, tmp_path)
    sim = session.world.production.inner  # the SimCluster behind the observer
    real_set = sim.set_canary_weight
    at_call: list[tuple[int, Any, Any]] = []

    async def recording(percent: int) -> Any:
        state = RolloutStatus.from_state(sim.state)
        assert state is not None
        at_call.append((percent, state.weight_target, state.step_index))
        return await real_set(percent)

    sim.set_canary_weight = recording
    assert await session.rollout.run() == Outcome.COMPLETED
    # every change was announced in the cluster (target and step) before it was made
    assert at_call == [(5, 5, 0), (25, 25, 1), (50, 50, 2), (100, 100, 3), (0, 0, 3)]
    final = await _status(session.world)
    assert final.outcome == "completed" and final.finished
    assert final.completed[:3] == ["preflight", "staging.deploy", "staging.gates"]
    assert {"canary.step.0", "canary.step.3", "canary.promote", "verify"} <= set(final.completed)
    # the sign-offs given with --approve are part of the persisted progress
    assert {r["gate_id"] for r in final.sign_offs} == {m.id for m in demo_plan().gates.manual}


async def test_a_killed_deploy_resumes_with_its_id_step_and_window_start(tmp_path: Path) -> None:
    first = await open_driver(None, tmp_path)
    world = first.world
    outcome, switch = await run_killed_at(first, match="journal analysis step=1", nth=4)
    assert outcome is None, switch.log[-3:]
    deploy_id = first.rollout.deploy_id
    window = [e for e in first.rollout.events if isinstance(e, WindowStarted)][-1]
    left = await _status(world)
    # what the dead driver left: persisted start (not a remaining time) and the samples counted
    assert (left.phase, left.step_index, left.weight) == ("canary", 1, 25)
    assert left.window is not None and left.window.name == "canary 25 %"
    assert left.window.started_at == window.ts
    assert left.window.samples == 3 and left.window.observed_s == 3 * demo_plan().analysis.interval

    second = await open_driver(world, tmp_path, actor="bob")
    persisted: list[dict[str, Any]] = []
    write_state = world.production.write_state

    async def recorded(state: dict[str, Any]) -> None:
        persisted.append(state)
        await write_state(state)

    world.production.write_state = recorded
    assert await second.rollout.run() == Outcome.COMPLETED
    assert second.rollout.deploy_id == deploy_id
    # the continued window is persisted from its first start, with the samples already counted
    at_25 = [s["window"] for s in persisted if s.get("window") and s["window"]["name"] == "canary 25 %"]
    assert at_25 and {w["started_at"] for w in at_25} == {left.window.model_dump(mode="json")["started_at"]}
    assert at_25[0]["samples"] == 3
    # and counted on from there to the window's end: 3 before the kill, one per sample after it
    records = journal_records(tmp_path)
    resumed_at = next(i for i, r in enumerate(records) if r["type"] == "run_resumed")
    read_after = [r for r in records[resumed_at:] if r["type"] == "analysis" and r["step"] == 1]
    assert at_25[-1]["observed_s"] == at_25[-1]["duration_s"]
    assert at_25[-1]["samples"] == 3 + len(read_after)
    records = journal_records(tmp_path)
    assert {r["deploy_id"] for r in records} == {deploy_id}
    assert [r["type"] for r in records].count("deploy_started") == 1
    (resumed,) = [r for r in records if r["type"] == "run_resumed"]
    assert (resumed["from_phase"], resumed["from_step"], resumed["weight"]) == ("canary", 1, 25)
    assert (resumed["previous_driver"], resumed["actor"]) == ("tester", "bob")
    assert resumed["window"] == "canary 25 %"
    # the window continued from its persisted start: same end as before the kill
    events = second.rollout.events
    since = events[next(i for i, e in enumerate(events) if e.type == "run_resumed") :]
    after = [e for e in since if isinstance(e, WindowStarted)]
    assert after[0].name == "canary 25 %" and after[0].ends_at == window.ends_at
    # traffic: each change once, none lowered, none skipped
    assert applied_weights(records) == [5, 25, 50, 100, 0]
    assert verify_journal(tmp_path / "deployments.jsonl").ok
    assert world.production.inner.stable_image == demo_plan().version.image


async def test_a_window_that_ended_unwatched_is_observed_again_before_promotion(tmp_path: Path) -> None:
    first = await open_driver(None, tmp_path)
    world = first.world
    outcome, _ = await run_killed_at(first, match="journal analysis step=1", nth=2)
    assert outcome is None
    await world.clock.advance(3600)  # nobody watched for an hour: the 5-minute window ended meanwhile
    second = await open_driver(world, tmp_path)
    assert await second.rollout.run() == Outcome.COMPLETED
    events = second.rollout.events
    resumed = next(e for e in events if e.type == "run_resumed")
    assert resumed.unwatched_s >= 3600  # type: ignore[union-attr]
    after = events[events.index(resumed) :]
    fresh = next(i for i, e in enumerate(after) if isinstance(e, AnalysisSample))
    moved = next(i for i, e in enumerate(after) if isinstance(e, TrafficChanged))
    assert fresh < moved, "promoted to 50 % without a fresh sample at 25 %"
    assert after[fresh].weight == 25  # type: ignore[union-attr]
    assert applied_weights(journal_records(tmp_path)) == [5, 25, 50, 100, 0]


@pytest.mark.parametrize(
    ("tamper", "difference"),
    [
        (lambda sim: setattr(sim, "weight", 50), "canary weight is 50 %, this deploy left 25 %"),
        (
            lambda sim: setattr(sim, "canary_image", "registry.example.com/shop/checkout:9.9.9"),
            "canary image is registry.example.com/shop/checkout:9.9.9",
        ),
        (
            lambda sim: setattr(sim, "stable_image", "registry.example.com/shop/checkout:0.0.1"),
            "stable image is registry.example.com/shop/checkout:0.0.1",
        ),
    ],
    ids=["weight", "canary-image", "stable-image"],
)
async def test_a_cluster_changed_by_hand_is_not_resumed(tmp_path: Path, tamper: Any, difference: str) -> None:
    first = await open_driver(None, tmp_path)
    world = first.world
    outcome, _ = await run_killed_at(first, match="journal analysis step=1", nth=2)
    assert outcome is None
    tamper(world.production.inner)
    with pytest.raises(ResumeRefused, match="roll it back") as refused:
        await open_driver(world, tmp_path)
    assert any(difference in d for d in refused.value.differences), refused.value.differences
    assert world.production.inner.weight in {25, 50}  # nothing was touched by the refused run


async def test_a_rollback_cut_short_is_finished_never_reversed(tmp_path: Path) -> None:
    first = await open_driver(None, tmp_path, scenario="bad-canary")
    world = first.world
    outcome, _ = await run_killed_at(first, match="cluster rollback")
    assert outcome is None
    left = await _status(world)
    assert left.stop is not None and left.stop.kind == "rollback"
    second = await open_driver(world, tmp_path, scenario="bad-canary")
    assert await second.rollout.run() == Outcome.ROLLED_BACK
    records = journal_records(tmp_path)
    assert [r["type"] for r in records].count("rollback_triggered") == 1
    weights = applied_weights(records)
    assert weights[-1] == 0 and max(weights) == weights[-2]  # no step forward after the trigger
    assert world.production.inner.weight == 0
    assert world.production.inner.calls.count("rollback") == 1
    assert verify_journal(tmp_path / "deployments.jsonl").ok


async def test_a_rollback_applied_before_the_kill_is_not_applied_twice(tmp_path: Path) -> None:
    first = await open_driver(None, tmp_path, scenario="bad-canary")
    world = first.world
    outcome, _ = await run_killed_at(first, match="journal rollback_step")
    assert outcome is None
    assert world.production.inner.calls.count("rollback") == 1
    second = await open_driver(world, tmp_path, scenario="bad-canary")
    assert await second.rollout.run() == Outcome.ROLLED_BACK
    assert world.production.inner.calls.count("rollback") == 1
    records = journal_records(tmp_path)
    zeros = [r for r in records if r["type"] == "traffic_changed" and r.get("detail") == "rollback"]
    assert len(zeros) == 1


async def test_an_unfinished_deploy_of_another_version_blocks_a_new_one(tmp_path: Path) -> None:
    first = await open_driver(None, tmp_path)
    world = first.world
    outcome, _ = await run_killed_at(first, match="journal analysis step=0", nth=2)
    assert outcome is None
    plan = demo_plan()
    other = plan.model_copy(
        update={
            "version": plan.version.model_copy(
                update={"to": "1.6.0", "image": "registry.example.com/shop/checkout:1.6.0"}
            )
        }
    )
    with pytest.raises(ResumeRefused, match=r"unfinished deploy .* of 1\.5\.0"):
        await open_session(other, actor="x", journal_path=tmp_path / "deployments.jsonl", world=world)


async def test_a_finished_deploy_is_not_resumed(tmp_path: Path) -> None:
    first = await open_driver(None, tmp_path)
    assert await first.rollout.run() == Outcome.COMPLETED
    second = await open_driver(first.world, tmp_path)
    assert second.rollout.deploy_id != first.rollout.deploy_id
    assert second.rollout._resume is None


async def test_resume_through_the_kubernetes_adapter_once_the_dead_drivers_lease_expired(
    tmp_path: Path,
) -> None:
    from core.session import lease_ttl_s
    from tests.engine_helpers import sim_session

    first = await sim_session(tmp_path, backend="kube")
    world = first.world
    outcome, _ = await run_killed_at(first, match="journal analysis step=1", nth=2)
    assert outcome is None and first.lease is not None and first.lease._task is not None
    first.lease._task.cancel()  # the process died: no more renewals, and no release
    died_at = world.clock.now()
    plan = first.plan
    second = await open_session(
        plan,
        actor="bob",
        interactive=False,
        approvals=[m.id for m in plan.gates.manual],
        journal_path=tmp_path / "deployments.jsonl",
        world=world,
    )
    try:
        # taken only after a whole lease duration without a renewal, judged by our own clock
        assert (world.clock.now() - died_at).total_seconds() >= lease_ttl_s()
        assert second.rollout.deploy_id == first.rollout.deploy_id
        assert await second.rollout.run() == Outcome.COMPLETED
        records = journal_records(tmp_path)
        (resumed,) = [r for r in records if r["type"] == "run_resumed"]
        assert (resumed["from_step"], resumed["weight"], resumed["actor"]) == (1, 25, "bob")
        assert applied_weights(records) == [5, 25, 50, 100, 0]
        live = await world.production.describe()
        assert live.stable_image == plan.version.image and live.weight == 0
        assert verify_journal(tmp_path / "deployments.jsonl").ok
    finally:
        await second.close()


async def test_status_shows_the_holder_then_a_zombie_once_its_lease_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import json
    import os
    import sys

    from core.clock import SystemClock
    from core.plan import parse_plan
    from core.rollout.inspect import cluster_report
    from tests.kube_helpers import start_sim
    from tests.test_session import kube_plan

    monkeypatch.setenv("DEPLOYDECK_LEASE_TTL", "1")
    sim = await start_sim(tmp_path)
    text = kube_plan(sim.kubeconfig)
    (tmp_path / "plan.yaml").write_text(text)
    plan = parse_plan(text, "plan.yaml", env={})

    async def status_cli() -> tuple[int, list[dict[str, Any]]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tui.cli",
            "status",
            str(tmp_path / "plan.yaml"),
            "--json",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, [json.loads(line) for line in out.decode().splitlines()]

    try:
        assert await cluster_report(plan, SystemClock()) is None  # nothing persisted yet
        session = await open_session(
            plan, actor="alice", clock=SystemClock(), journal_path=tmp_path / "j.jsonl"
        )
        await session.rollout._set_weight(5)  # persists the progress, as a running deploy does
        code, (live,) = await status_cli()
        assert code == 4
        assert live["deploy_id"] == session.rollout.deploy_id and live["weight"] == 10  # 1 of 10 pods
        assert live["lease"] == "live" and live["holder"].startswith("alice@") and not live["zombie"]
        assert session.lease is not None and session.lease._task is not None
        session.lease._task.cancel()  # the driver stops renewing (stopped, hung, or on a dead host)
        await asyncio.sleep(1.3)
        report = await cluster_report(plan, SystemClock())
        assert report is not None and report.lease == "expired" and report.zombie
        code, (zombie,) = await status_cli()
        assert code == 4 and zombie["zombie"] and zombie["phase"] == "pending"
        await session.world.close()
    finally:
        await sim.server.stop()


async def test_status_without_a_plan_lists_the_journals_unfinished_deploys(tmp_path: Path) -> None:
    from tui.cli import main

    first = await open_driver(None, tmp_path)
    outcome, _ = await run_killed_at(first, match="journal analysis step=1", nth=2)
    assert outcome is None
    done = await open_driver(None, tmp_path)  # a second world, same journal: this one completes
    assert await done.rollout.run() == Outcome.COMPLETED
    journal = str(tmp_path / "deployments.jsonl")
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["status", "--journal", journal])
    assert code == 4
    text = out.getvalue()
    assert first.rollout.deploy_id in text and "canary step 1 at 25 %" in text
    assert done.rollout.deploy_id not in text


async def test_a_deploy_stopped_by_a_lost_lease_is_resumed_not_restarted(tmp_path: Path) -> None:
    """lease_lost journals a finished line (blocked), but nothing was finished: the next run resumes."""
    first = await open_driver(None, tmp_path)
    world = first.world

    def lose_at_25(event: Any) -> None:
        if isinstance(event, TrafficChanged) and event.applied and event.effective == 25:
            first.rollout.lease_lost("taken over by another driver")

    first.rollout.subscribe(lose_at_25)
    assert await first.rollout.run() == Outcome.BLOCKED
    second = await open_driver(world, tmp_path)
    assert second.rollout.deploy_id == first.rollout.deploy_id
    assert await second.rollout.run() == Outcome.COMPLETED
    assert applied_weights(journal_records(tmp_path)) == [5, 25, 50, 100, 0]


async def _base_run(tmp_path: Path, scenario: str) -> list[dict[str, Any]]:
    base = await open_driver(None, tmp_path / "base", scenario)
    await base.rollout.run()
    return journal_records(tmp_path / "base")


async def test_a_window_pushed_out_by_blind_intervals_keeps_its_end_across_a_resume(tmp_path: Path) -> None:
    base = await _base_run(tmp_path, "metrics-outage")
    extended = [r for r in base if r["type"] == "window_started" and r["step"] == 1][1]
    samples = [r for r in base if r["type"] == "analysis" and r["step"] == 1]
    first_blind = next(i for i, r in enumerate(samples) if r["verdict"] == "no_data")
    first = await open_driver(None, tmp_path, "metrics-outage")
    # killed just after the first blind interval pushed the window's end out
    outcome, _ = await run_killed_at(first, match="journal analysis step=1", nth=first_blind + 2)
    assert outcome is None
    left = await _status(first.world)
    assert left.window is not None and left.window.blind_s == 30.0  # persisted with the extension
    second = await open_driver(first.world, tmp_path, "metrics-outage")
    assert await second.rollout.run() == Outcome.ROLLED_BACK
    records = journal_records(tmp_path)
    since = records[next(i for i, r in enumerate(records) if r["type"] == "run_resumed") :]
    window = next(r for r in since if r["type"] == "window_started")
    assert window["ends_at"] == extended["ends_at"]


async def test_the_no_data_deadline_runs_from_the_pause_before_the_kill(tmp_path: Path) -> None:
    base = await _base_run(tmp_path, "metrics-outage")
    base_trigger = next(r for r in base if r["type"] == "rollback_triggered")
    first = await open_driver(None, tmp_path, "metrics-outage")
    outcome, _ = await run_killed_at(first, match="journal analysis step=1", nth=8)
    assert outcome is None
    left = await _status(first.world)
    assert left.paused and left.engine_paused_at is not None
    second = await open_driver(first.world, tmp_path, "metrics-outage")
    paused_at: list[object] = []
    write_state = first.world.production.write_state

    async def recorded(state: dict[str, Any]) -> None:
        if state.get("paused"):
            paused_at.append(state["engine_paused_at"])
        await write_state(state)

    first.world.production.write_state = recorded
    assert await second.rollout.run() == Outcome.ROLLED_BACK
    # a second restart would still count from the first pause: the resumed pause keeps its start,
    # from its first write on (was: the first write said the restart's time, corrected one write later)
    assert paused_at and set(paused_at) == {left.model_dump(mode="json")["engine_paused_at"]}
    records = journal_records(tmp_path)
    since = records[next(i for i, r in enumerate(records) if r["type"] == "run_resumed") :]
    paused = next(r for r in since if r["type"] == "paused")
    assert (paused["actor"], paused["reason"]) == (
        "engine",
        "resumed while paused for lack of data; never promoting blind",
    )
    trigger = next(r for r in records if r["type"] == "rollback_triggered")
    # the same moment as without the kill: the restart did not buy the blind canary more time
    assert trigger["ts"] == base_trigger["ts"] and trigger["rule"] == base_trigger["rule"] == "no_data"


async def test_a_persons_pause_survives_a_restart(tmp_path: Path) -> None:
    import asyncio

    from core.domain import Phase
    from tests.engine_helpers import until

    first = await open_driver(None, tmp_path)
    world = first.world
    pauses: list[Any] = []

    def pause_at_25(event: Any) -> None:
        if isinstance(event, TrafficChanged) and event.applied and event.effective == 25 and not pauses:
            pauses.append(asyncio.ensure_future(first.rollout.pause("alice", "checking a graph")))

    first.rollout.subscribe(pause_at_25)
    outcome, _ = await run_killed_at(first, match="journal analysis step=1", nth=4)
    assert outcome is None
    left = await _status(world)
    assert left.paused and left.paused_by == "alice" and left.engine_paused_at is None
    # headless: a new driver does not overrule her pause
    with pytest.raises(ResumeRefused, match="paused by alice"):
        await open_driver(world, tmp_path)
    plan = demo_plan()
    second = await open_session(
        plan, actor="alice", interactive=True, journal_path=tmp_path / "deployments.jsonl", world=world
    )
    run = asyncio.ensure_future(second.rollout.run())
    await until(lambda: second.rollout.phase == Phase.PAUSED)
    paused = [e for e in second.rollout.events if e.type == "paused"][-1]
    assert (paused.actor, paused.reason) == ("alice", "paused before the restart; resume to go on")
    assert second.rollout.weight == 25 and world.production.inner.weight == 25
    assert (await second.rollout.resume("alice")).ok
    assert await asyncio.wait_for(run, 60) == Outcome.COMPLETED
    assert applied_weights(journal_records(tmp_path)) == [5, 25, 50, 100, 0]


async def test_a_write_refused_by_the_fence_stops_as_lease_lost_and_stays_resumable(tmp_path: Path) -> None:
    """The fence refuses a write (LeaseLost, a PortError) and tells the engine: that is no error
    outcome that ends the deploy, it is a lost lease, and the next run resumes the deploy."""
    from core.adapters.kubernetes.lease import LeaseLost

    first = await open_driver(None, tmp_path)
    world = first.world
    sim = world.production.inner
    real_write = sim.write_state

    async def fenced(state: dict[str, object]) -> None:
        if state.get("completed") == ["preflight"]:  # the first write after the lease expired
            first.rollout.lease_lost("lease not renewed in time")
            raise LeaseLost("refused PATCH deployments/checkout: lease not renewed in time")
        await real_write(state)

    sim.write_state = fenced
    assert await first.rollout.run() == Outcome.BLOCKED
    types = [r["type"] for r in journal_records(tmp_path)]
    assert "lease_lost" in types and types[-1] == "finished"
    sim.write_state = real_write
    second = await open_driver(world, tmp_path)
    assert second.rollout.deploy_id == first.rollout.deploy_id
    assert await second.rollout.run() == Outcome.COMPLETED


@pytest.mark.parametrize("command", ["migrate up", "migrate prod"])
async def test_a_migration_that_ran_is_not_run_again_by_a_resume(
    tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    async def inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    # the lint gate reads files in a thread, during which the virtual clock runs past the gate's
    # deadline (an error); reading inline keeps virtual time still
    monkeypatch.setattr(asyncio, "to_thread", inline)
    from core.clock import VirtualClock
    from core.plan import MigrationsSpec
    from core.policy import gates_for
    from tests.resume_helpers import Killed

    migration = tmp_path / "001_add_column.sql"
    migration.write_text("ALTER TABLE orders ADD COLUMN note text;\n")
    plan = demo_plan().model_copy(
        update={
            "migrations": MigrationsSpec(
                allow_outside_plan_dir=True,
                files=[str(migration)],
                staging_command="migrate up",
                production_command="migrate prod",
            )
        }
    )
    approvals = [g.id for g in gates_for(plan) if not g.automated]

    async def driver(world: Any) -> Any:
        return await open_session(
            plan,
            actor="tester",
            clock=VirtualClock(),
            interactive=False,
            approvals=approvals,
            journal_path=tmp_path / "j" / "d.jsonl",
            world=world,
        )

    first = await driver(None)
    world = first.world
    runner = world.runner
    real_run, journal = runner.run, first.rollout.journal
    assert journal is not None
    real_append = journal.append
    done: list[str] = []

    async def run(cmd: str, **kwargs: Any) -> Any:
        result = await real_run(cmd, **kwargs)
        done.append(cmd)
        return result

    async def append(record: dict[str, object], **kwargs: Any) -> None:
        if command in done:
            raise Killed(f"the first journal line after {command} finished")
        await real_append(record, **kwargs)

    runner.run = run
    journal.append = append  # type: ignore[method-assign]
    with pytest.raises(Killed):
        await first.rollout.run()
    runner.run = real_run
    assert runner.commands.count(command) == 1
    second = await driver(world)
    assert await second.rollout.run() == Outcome.COMPLETED
    assert runner.commands.count("migrate up") == 1 and runner.commands.count("migrate prod") == 1


async def test_the_resume_is_shown_headless_and_in_the_dashboard_model(tmp_path: Path) -> None:
    import io

    from tui.headless import ProgressPrinter
    from tui.widgets.model import DeckModel

    first = await open_driver(None, tmp_path)
    outcome, _ = await run_killed_at(first, match="journal analysis step=1", nth=2)
    assert outcome is None
    second = await open_driver(first.world, tmp_path, actor="bob")
    out = io.StringIO()
    printer, model = ProgressPrinter(out), DeckModel()
    second.rollout.subscribe(printer)
    second.rollout.subscribe(model.apply)
    await second.rollout.run()
    assert f"RESUMED deploy {first.rollout.deploy_id} from canary step 1 at 25 %" in out.getvalue()
    assert any("RESUMED by bob from canary step 1 at 25 %" in entry.text for entry in model.log)


async def test_a_refused_resume_offers_a_rollback_and_run_rollback_unfinished_does_it(tmp_path: Path) -> None:
    first = await open_driver(None, tmp_path)
    world = first.world
    outcome, _ = await run_killed_at(first, match="journal analysis step=1", nth=2)
    assert outcome is None
    world.production.inner.weight = 50  # someone moved traffic by hand
    with pytest.raises(ResumeRefused, match="--rollback-unfinished"):
        await open_driver(world, tmp_path)
    plan = demo_plan()
    session = await open_session(
        plan,
        actor="carol",
        interactive=False,
        journal_path=tmp_path / "deployments.jsonl",
        world=world,
        rollback_unfinished=True,
    )
    assert session.rollout.deploy_id == first.rollout.deploy_id
    assert await session.rollout.run() == Outcome.ROLLED_BACK
    records = journal_records(tmp_path)
    (trigger,) = [r for r in records if r["type"] == "rollback_triggered"]
    assert trigger["actor"] == "carol" and not trigger["automatic"]
    sim = world.production.inner
    assert sim.weight == 0 and sim.stable_image == sim.stable_history[0]
    assert "weight:50" not in sim.calls and applied_weights(records)[-1] == 0
    # nothing unfinished any more: asking again is refused, never a new deploy
    with pytest.raises(ResumeRefused, match="no unfinished deploy"):
        await open_session(
            plan,
            actor="carol",
            journal_path=tmp_path / "deployments.jsonl",
            world=world,
            rollback_unfinished=True,
        )


async def test_a_deployrun_continues_its_own_unfinished_deploy_and_never_another_runs(tmp_path: Path) -> None:
    """A DeployRun's session (plan path ``deployrun:<ns>/<name>``) resumes only the deploy it started:
    another run's sign-offs, progress and outcome are not its to report, and its deletion has
    nothing of its own to roll back."""
    from core.resume import ANOTHER_RUNS_DEPLOY

    async def driver(world: Any, run: str, actor: str, **kw: Any) -> Any:
        return await open_driver(world, tmp_path, actor=actor, plan_path=f"deployrun:shop/{run}", **kw)

    first = await driver(None, "checkout-a", "agent-a")
    world = first.world
    outcome, switch = await run_killed_at(first, match="journal analysis step=1", nth=4)
    assert outcome is None, switch.log[-3:]
    for kw in ({}, {"rollback_unfinished": True}):
        with pytest.raises(ResumeRefused) as refused:
            await driver(world, "checkout-b", "agent-b", **kw)
        assert refused.value.differences == [ANOTHER_RUNS_DEPLOY]
        assert "started by DeployRun shop/checkout-a" in str(refused.value)
        assert "canary at 25 %" in str(refused.value)
    left = await _status(world)
    assert (left.phase, left.weight, left.outcome) == ("canary", 25, None)  # untouched by either
    # its own DeployRun continues it, on another replica
    second = await driver(world, "checkout-a", "agent-b")
    assert second.rollout.deploy_id == first.rollout.deploy_id
    assert await second.rollout.run() == Outcome.COMPLETED
