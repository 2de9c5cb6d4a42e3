"""Issue 14, item 7: statistics fit for small canaries (the bench runs 100 seeds of each).

At 10 requests/s a 5 % step's 5-minute window holds ~150 requests: fixed thresholds fire by
chance there. Seeded healthy runs must never roll back; seeded bad-canary runs must all be
caught by the error-rate rule at 25 %, the step where the scenario fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.events import RollbackTriggered
from core.sim.scenarios import SCENARIOS, verdict_problems
from tests.engine_helpers import sim_session

SEEDS = range(12)


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    for base in ("healthy", "bad-canary"):
        small = SCENARIOS[base].model_copy(update={"name": f"{base}-small", "requests_per_second": 10.0})
        monkeypatch.setitem(SCENARIOS, small.name, small)


async def _run(tmp_path: Path, name: str, seed: int) -> list[object]:
    from core.session import demo_plan

    plan = demo_plan(name)
    # the canary's rules are measured; the staging soak's own 0.1 pp rule is not part of this
    staging = plan.staging.model_copy(update={"soak": plan.staging.soak.model_copy(update={"duration": 0})})
    session = await sim_session(tmp_path / f"{name}-{seed}", name, seed=seed, staging=staging)
    try:
        await session.rollout.run()
        return list(session.rollout.events)
    finally:
        await session.close()


async def test_healthy_small_canaries_never_roll_back(tmp_path: Path, small: None) -> None:
    false = []
    for seed in SEEDS:
        events = await _run(tmp_path, "healthy-small", seed)
        false += [f"seed {seed}: {e.reason}" for e in events if isinstance(e, RollbackTriggered)]
    assert false == []


async def test_bad_small_canaries_are_all_caught_at_25(tmp_path: Path, small: None) -> None:
    missed = []
    for seed in SEEDS:
        events = await _run(tmp_path, "bad-canary-small", seed)
        if problems := verdict_problems(SCENARIOS["bad-canary-small"], events):
            missed.append(f"seed {seed}: {problems}")
    assert missed == []
