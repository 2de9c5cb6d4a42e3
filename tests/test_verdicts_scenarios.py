"""Issue 14, item 2: one scenario, one verdict, whatever the metrics backend.

Every scenario runs on the in-memory world and through a real Prometheus scraping the simulated
workload, and must reach the verdict written next to it in core/sim/scenarios.py: same outcome,
same rule, same step. The Prometheus runs take 10-35 s each (the demo plan at the fastest speed a
250 ms scrape can follow), so all but bad-canary are marked slow (make bench runs them all;
healthy through a real Prometheus also runs in test_metrics_end_to_end).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.clock import ScaledClock
from core.events import Event
from core.session import demo_plan, open_session
from core.sim.prometheus_demo import prometheus_max_speed
from core.sim.scenarios import SCENARIOS, verdict_problems
from tests.engine_helpers import sim_session

#: the test's Prometheus scrapes every 250 ms, so the demo plan runs at 120x (30 s = 1 scrape)
TEST_SCRAPE_S = 0.25
# healthy through a real Prometheus also runs in test_metrics_end_to_end; all of them in make bench
FAST_ON_PROMETHEUS = {"bad-canary"}


async def run_on(backend: str, name: str, tmp_path: Path) -> list[Event]:
    if backend == "memory":
        session = await sim_session(tmp_path, name)
    else:
        from tests.real_servers import PROMETHEUS_BIN, require_binary

        require_binary(PROMETHEUS_BIN)
        plan = demo_plan(name)
        session = await open_session(
            plan,
            actor="tester",
            clock=ScaledClock(prometheus_max_speed(plan, TEST_SCRAPE_S)),
            interactive=False,
            approvals=[m.id for m in plan.gates.manual],
            journal_path=tmp_path / "deployments.jsonl",
            use_prometheus=True,
            prometheus_scrape_s=TEST_SCRAPE_S,
        )
        assert any("real Prometheus" in n for n in session.notes), session.notes
    try:
        await session.rollout.run()
        return list(session.rollout.events)
    finally:
        await session.close()


def _cases() -> list[object]:
    cases: list[object] = []
    for name in sorted(SCENARIOS):
        cases.append(pytest.param("memory", name, id=f"memory-{name}"))
        marks = [pytest.mark.real] + ([] if name in FAST_ON_PROMETHEUS else [pytest.mark.slow])
        cases.append(pytest.param("prometheus", name, id=f"prometheus-{name}", marks=marks))
    return cases


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("backend", "name"), _cases())
async def test_every_scenario_reaches_its_verdict_on_every_backend(
    backend: str, name: str, tmp_path: Path
) -> None:
    events = await run_on(backend, name, tmp_path)
    scenario = SCENARIOS[name]
    assert verdict_problems(scenario, events) == [], scenario.verdict.describe()
