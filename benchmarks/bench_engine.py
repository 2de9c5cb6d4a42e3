"""Engine benchmarks: wall time of a full virtual-time rollout, and detection latency in simulated time.

Run: python benchmarks/bench_engine.py  (or `make bench`). Prints a table; asserts nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.clock import VirtualClock
from core.events import RollbackTriggered, TrafficChanged
from core.session import demo_plan, open_session
from core.sim.scenarios import SCENARIOS


async def one_run(scenario: str, interval: float | None = None, seed: int = 7) -> tuple[float, object]:
    plan = demo_plan(scenario)
    plan = plan.model_copy(update={"seed": seed})
    if interval is not None:
        plan = plan.model_copy(update={"analysis": plan.analysis.model_copy(update={"interval": interval})})
    with tempfile.TemporaryDirectory() as tmp:
        session = await open_session(
            plan,
            actor="bench",
            clock=VirtualClock(),
            interactive=False,
            approvals=[m.id for m in plan.gates.manual],
            journal_path=Path(tmp) / "j.jsonl",
            sim_backend="memory",
        )
        started = time.perf_counter()
        await session.rollout.run()
        wall = time.perf_counter() - started
        return wall, session.rollout


def detection_seconds(rollout: object, weight: int, fault_after: float) -> float | None:
    events = rollout.events  # type: ignore[attr-defined]
    at = next(
        (e.ts for e in events if isinstance(e, TrafficChanged) and e.applied and e.effective == weight), None
    )
    fired = next((e.ts for e in events if isinstance(e, RollbackTriggered)), None)
    if at is None or fired is None:
        return None
    return (fired - at).total_seconds() - fault_after


async def main() -> None:
    rows: list[tuple[str, str, str]] = []
    walls = []
    simulated = 0.0
    for _ in range(5):
        wall, rollout = await one_run("healthy")
        walls.append(wall)
        simulated = rollout.events[-1].duration_s  # type: ignore[attr-defined]
    rows.append(
        (
            "healthy rollout, virtual time (5 runs)",
            f"p50 {statistics.median(walls):.3f} s wall, max {max(walls):.3f} s",
            f"{simulated / 60:.0f} min simulated; target < 0.5 s",
        )
    )
    fault = SCENARIOS["bad-canary"].faults[0]
    for label, interval in (
        ("deploydeck default (30 s interval)", 30.0),
        ("Flagger-style (60 s interval)", 60.0),
    ):
        latencies = []
        for seed in range(1, 11):
            _, rollout = await one_run("bad-canary", interval=interval, seed=seed)
            d = detection_seconds(rollout, fault.from_weight, fault.after_s)
            if d is not None:
                latencies.append(d)
        rows.append(
            (
                f"bad-canary detection, {label}",
                f"p50 {statistics.median(latencies):.0f} s, max {max(latencies):.0f} s simulated",
                f"{len(latencies)}/10 detected; from fault start to rollback event",
            )
        )
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    header = ("benchmark", "result", "note")
    print("  ".join(h.ljust(w) for h, w in zip(header, width, strict=True)))
    print("  ".join("-" * w for w in width))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)))


if __name__ == "__main__":
    asyncio.run(main())
