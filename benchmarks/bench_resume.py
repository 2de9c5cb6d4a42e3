"""Resume benchmark (issue 11): kill the driver at 50 seeded points, resume each, count the runs
that end exactly like an uninterrupted one, and time restart → `run_resumed`.

Run: python benchmarks/bench_resume.py  (or `make bench`). Prints the count (goal 50/50) and the
p50/max wall time from opening the new driver to its run_resumed event; for the Kubernetes
adapter also the simulated time spent waiting for the dead driver's lease to expire.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.adapters.journal import verify_journal
from core.events import Event, RunResumed
from core.rollout.progress import RolloutStatus
from core.session import open_session
from tests.engine_helpers import sim_session
from tests.resume_helpers import journal_records, open_driver, run_killed_at
from tests.test_kill_resume import POINTS, check_against, cluster_weights, kill_points, uninterrupted


async def timed_resume(directory: Path, at: int, base: dict[str, Any]) -> tuple[list[str], float | None]:
    """Kill before effect ``at`` on the in-memory world, resume; (problems, restart→run_resumed s)."""
    first = await open_driver(None, directory)
    world = first.world
    killed, switch = await run_killed_at(first, at)
    assert killed is None
    left = RolloutStatus.from_state(await world.production.read_state())
    resumed_at: list[float] = []
    started = time.perf_counter()
    second = await open_driver(world, directory, actor="second")

    def watch(event: Event) -> None:
        if isinstance(event, RunResumed) and not resumed_at:
            resumed_at.append(time.perf_counter())

    second.rollout.subscribe(watch)
    outcome = await second.rollout.run()
    records = journal_records(directory)
    got = {
        "where": switch.where,
        "left": left,
        "outcome": outcome,
        "records": records,
        "image": world.production.inner.stable_image,
        "weight": world.production.inner.weight,
        "cluster_weights": cluster_weights(world.production.inner),
        "resumed_id": second.rollout.deploy_id,
        "killed_id": first.rollout.deploy_id,
    }
    problems = list(check_against(base, got))
    if not verify_journal(directory / "deployments.jsonl").ok:
        problems.append(f"{switch.where}: journal does not verify")
    return problems, (resumed_at[0] - started) if resumed_at else None


async def kube_resume(directory: Path) -> tuple[float, float]:
    """Kill mid-canary on the simulated API server through the real adapter; (wall s, simulated s)."""
    first = await sim_session(directory, backend="kube")
    world = first.world
    killed, _ = await run_killed_at(first, match="journal analysis step=1", nth=2)
    assert killed is None and first.lease is not None and first.lease._task is not None
    first.lease._task.cancel()  # died: no release
    started, sim_started = time.perf_counter(), world.clock.now()
    plan = first.plan
    second = await open_session(
        plan,
        actor="second",
        interactive=False,
        approvals=[m.id for m in plan.gates.manual],
        journal_path=directory / "deployments.jsonl",
        world=world,
    )
    marks: list[tuple[float, float]] = []

    def watch(event: Event) -> None:
        if isinstance(event, RunResumed) and not marks:
            marks.append((time.perf_counter(), (world.clock.now() - sim_started).total_seconds()))

    second.rollout.subscribe(watch)
    await second.rollout.run()
    await second.close()
    return marks[0][0] - started, marks[0][1]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "base").mkdir()
        base = await uninterrupted(root / "base")
        points = kill_points(base["effects"], POINTS)
        passed, times, failures = 0, [], []
        for at in points:
            directory = root / f"kill-{at}"
            directory.mkdir()
            problems, took = await timed_resume(directory, at, base)
            passed += not problems
            failures.extend(problems)
            if took is not None:
                times.append(took)
        print(f"kill test (in-memory world, {base['effects']} effects in a full healthy rollout):")
        print(f"  {passed}/{len(points)} killed-and-resumed runs match the uninterrupted run (goal 50/50)")
        for line in failures[:5]:
            print(f"    {line}")
        if times:
            print(
                f"  restart → run_resumed: p50 {statistics.median(times) * 1000:.1f} ms, "
                f"max {max(times) * 1000:.1f} ms over {len(times)} resumes "
                f"({len(points) - len(times)} kills came before anything was persisted: a fresh start)"
            )
        kube = []
        for i in range(3):
            directory = root / f"kube-{i}"
            directory.mkdir()
            kube.append(await kube_resume(directory))
        walls = [w for w, _ in kube]
        print(
            "  through the Kubernetes adapter (simulated API server): restart → run_resumed "
            f"p50 {statistics.median(walls) * 1000:.0f} ms wall, max {max(walls) * 1000:.0f} ms; "
            f"{statistics.median(s for _, s in kube):.0f} s simulated (waiting out the dead driver's lease)"
        )


if __name__ == "__main__":
    asyncio.run(main())
