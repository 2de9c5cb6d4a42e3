"""The kill test (issue 11): kill the driver at seeded random points across a full rollout, resume
each with a new session on the same cluster and journal, and compare with an uninterrupted run.

A point is "just before the driver's k-th effect" (a journal line or a cluster call), so the
points cover every gap between two things the driver does to the outside world. The 50-point
run is marked slow; a seeded 8-point subset runs by default.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest

from core.adapters.journal import verify_journal
from core.domain import Outcome
from core.rollout.progress import RolloutStatus
from core.session import demo_plan, open_session
from tests.engine_helpers import sim_session
from tests.resume_helpers import applied_weights, journal_records, open_driver, run_killed_at

SEED = 20261202
POINTS = 50
SUBSET = 8


async def uninterrupted(tmp_path: Path, scenario: str = "healthy") -> dict[str, Any]:
    session = await open_driver(None, tmp_path, scenario)
    outcome, switch = await run_killed_at(session, None)
    records = journal_records(tmp_path)
    return {
        "outcome": outcome,
        "effects": switch.count,
        "weights": applied_weights(records),
        "intents": intents_of(records),
        "cluster_weights": cluster_weights(session.world.production.inner),
        "image": session.world.production.inner.stable_image,
    }


def intents_of(records: list[dict[str, Any]]) -> list[int]:
    return [r["requested"] for r in records if r["type"] == "traffic_changed" and not r.get("applied", True)]


def cluster_weights(sim: Any) -> list[int]:
    """What the cluster was told (a rollback counts as 0), idempotent re-applications folded."""
    told = [
        0 if call == "rollback" else int(call.split(":")[1])
        for call in sim.calls
        if call.startswith("weight:") or call == "rollback"
    ]
    return [w for w, _ in groupby(told)]


def kill_points(effects: int, count: int, seed: int = SEED) -> list[int]:
    """``count`` distinct seeded points in 1..effects (the first is before the first effect)."""
    return sorted(random.Random(seed).sample(range(1, effects + 1), min(count, effects)))


async def kill_and_resume(tmp_path: Path, at: int, scenario: str = "healthy") -> dict[str, Any]:
    """Kill before effect ``at``, resume with a new driver; what a comparison needs."""
    first = await open_driver(None, tmp_path, scenario)
    world = first.world
    killed, switch = await run_killed_at(first, at)
    assert killed is None, f"the run ended before point {at}"
    left = RolloutStatus.from_state(await world.production.read_state())
    before = journal_records(tmp_path)
    if any(r["type"] == "finished" for r in before):
        # killed after the outcome was journaled: the deploy is over; a new run would be a new deploy
        outcome, second = Outcome(next(r for r in before if r["type"] == "finished")["outcome"]), first
        repaired = await open_driver(world, tmp_path, scenario, actor="second")
        assert repaired.rollout._resume is None
        left = None
    else:
        second = await open_driver(world, tmp_path, scenario, actor="second")
        outcome = await second.rollout.run()
    records = journal_records(tmp_path)
    sim = world.production.inner
    return {
        "where": switch.where,
        "left": left,
        "outcome": outcome,
        "records": records,
        "image": sim.stable_image,
        "weight": sim.weight,
        # what the cluster was told, with idempotent re-applications of the same weight folded
        "cluster_weights": cluster_weights(sim),
        "resumed_id": second.rollout.deploy_id,
        "killed_id": first.rollout.deploy_id,
    }


def check_against(base: dict[str, Any], got: dict[str, Any]) -> Iterator[str]:
    """Every way the killed-and-resumed run differs from the uninterrupted one."""
    where = got["where"]
    records = got["records"]
    if got["outcome"] != base["outcome"]:
        yield f"{where}: outcome {got['outcome']} != {base['outcome']}"
    if got["image"] != base["image"]:
        yield f"{where}: stable image {got['image']} != {base['image']}"
    weights = applied_weights(records)
    if weights != base["weights"]:
        yield f"{where}: journaled traffic {weights} != {base['weights']} (repeated, skipped or lowered)"
    intents = intents_of(records)
    if intents != base["intents"]:
        yield f"{where}: announced traffic {intents} != {base['intents']}"
    if got["cluster_weights"] != base["cluster_weights"]:
        yield f"{where}: cluster traffic {got['cluster_weights']} != {base['cluster_weights']}"
    ids = {r["deploy_id"] for r in records}
    if len(ids) != 1:
        yield f"{where}: {len(ids)} deploy ids in the journal"
    types = [r["type"] for r in records]
    if types.count("deploy_started") != 1 or types.count("finished") != 1:
        yield f"{where}: {types.count('deploy_started')} deploy_started, {types.count('finished')} finished"
    left = got["left"]
    if left is not None and not left.finished:
        if got["resumed_id"] != got["killed_id"] or types.count("run_resumed") != 1:
            yield f"{where}: an unfinished deploy was not resumed under its id"
    if got["weight"] != 0:
        yield f"{where}: canary weight {got['weight']} % after the run"


async def run_points(
    tmp_path: Path, points: list[int], base: dict[str, Any], scenario: str = "healthy"
) -> list[str]:
    problems: list[str] = []
    for at in points:
        directory = tmp_path / f"kill-{at}"
        directory.mkdir()
        got = await kill_and_resume(directory, at, scenario)
        problems.extend(check_against(base, got))
        check = verify_journal(directory / "deployments.jsonl")
        if not check.ok:
            problems.append(f"{got['where']}: journal does not verify: {check.message()}")
    return problems


async def test_kill_at_8_seeded_points_resumes_like_an_uninterrupted_run(tmp_path: Path) -> None:
    base = await uninterrupted(tmp_path / "base")
    assert base["outcome"] == Outcome.COMPLETED and base["weights"] == [5, 25, 50, 100, 0]
    assert base["image"] == demo_plan().version.image
    points = kill_points(base["effects"], POINTS)
    subset = sorted(random.Random(SEED + 1).sample(points, SUBSET))
    assert await run_points(tmp_path, subset, base) == []


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["healthy", "bad-canary", "metrics-outage"])
async def test_kill_at_50_seeded_points_resumes_like_an_uninterrupted_run(
    tmp_path: Path, scenario: str
) -> None:
    base = await uninterrupted(tmp_path / "base", scenario)
    points = kill_points(base["effects"], POINTS)
    assert len(points) == POINTS
    problems = await run_points(tmp_path, points, base, scenario)
    assert problems == [], f"{POINTS - len({p.split(':')[0] for p in problems})}/{POINTS} passed"


async def test_kill_points_during_a_rollback_finish_the_rollback(tmp_path: Path) -> None:
    base = await uninterrupted(tmp_path / "base", "bad-canary")
    assert base["outcome"] == Outcome.ROLLED_BACK
    # the effects from the rollback decision on: every gap in the rollback procedure
    records = journal_records(tmp_path / "base")
    trigger = next(i for i, r in enumerate(records) if r["type"] == "rollback_triggered")
    start = base["effects"] - (len(records) - trigger) - 4  # a few cluster writes interleave
    for at in range(max(1, start), base["effects"] + 1, 3):
        directory = tmp_path / f"kill-{at}"
        directory.mkdir()
        got = await kill_and_resume(directory, at, "bad-canary")
        assert got["outcome"] == Outcome.ROLLED_BACK, got["where"]
        assert got["weight"] == 0 and got["image"] == base["image"], got["where"]
        assert [r["type"] for r in got["records"]].count("rollback_triggered") == 1, got["where"]
        assert verify_journal(directory / "deployments.jsonl").ok, got["where"]


# --- through the Kubernetes adapter: progress in the Deployment's annotation, the lease waited out ---


def _told(log: list[str]) -> list[int]:
    """Traffic the driver asked the cluster for, from a KillSwitch log (a rollback counts as 0)."""
    told = []
    for what in log:
        if what.startswith("cluster set_canary_weight("):
            told.append(int(what.split("(")[1].split(",")[0]))
        elif what.startswith("cluster rollback"):
            told.append(0)
    return [w for w, _ in groupby(told)]


async def _kube_driver(directory: Path, world: Any = None) -> Any:
    if world is None:
        return await sim_session(directory, backend="kube")
    plan = demo_plan()
    return await open_session(
        plan,
        actor="second",
        interactive=False,
        approvals=[m.id for m in plan.gates.manual],
        journal_path=directory / "deployments.jsonl",
        world=world,
    )


async def kube_kill_and_resume(directory: Path, at: int | None) -> dict[str, Any]:
    first = await _kube_driver(directory)
    world = first.world
    outcome, switch = await run_killed_at(first, at)
    told = _told(switch.log[:-1] if outcome is None else switch.log)
    left = None
    second = first
    if outcome is None:
        first.lease._task.cancel()  # the process died: no renewal, no release
        left = RolloutStatus.from_state(await world.production.read_state())
        second = await _kube_driver(directory, world)
        outcome, switch2 = await run_killed_at(second, None)
        told = [w for w, _ in groupby(told + _told(switch2.log))]
    live = await world.production.describe()
    await second.close()
    return {
        "where": switch.where,
        "left": left,
        "outcome": outcome,
        "records": journal_records(directory),
        "image": live.stable_image,
        "weight": live.weight,
        "cluster_weights": told,
        "resumed_id": second.rollout.deploy_id,
        "killed_id": first.rollout.deploy_id,
        "effects": switch.count,
    }


@pytest.mark.parametrize(
    "count", [pytest.param(2, id="2-points"), pytest.param(12, id="12-points", marks=pytest.mark.slow)]
)
async def test_kill_points_through_the_kubernetes_adapter(tmp_path: Path, count: int) -> None:
    (tmp_path / "base").mkdir()
    base = await kube_kill_and_resume(tmp_path / "base", None)
    base["weights"], base["intents"] = applied_weights(base["records"]), intents_of(base["records"])
    assert base["outcome"] == Outcome.COMPLETED and base["weights"] == [5, 25, 50, 100, 0]
    problems: list[str] = []
    for at in kill_points(base["effects"], count, seed=SEED + 2):
        directory = tmp_path / f"kill-{at}"
        directory.mkdir()
        got = await kube_kill_and_resume(directory, at)
        problems.extend(check_against(base, got))
        if not verify_journal(directory / "deployments.jsonl").ok:
            problems.append(f"{got['where']}: journal does not verify")
    assert problems == []
