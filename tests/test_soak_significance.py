"""The staging soak judges its error rate with the canary rule's significance (issue 14).

At 10 req/s a 15-minute soak holds ~9,000 requests and a 5-minute read ~3,000: chance alone moves a
healthy staging's error rate by ±0.07 pp over the soak, so the plain "+0.1 pp blocks" rule blocked
healthy releases. The soak now blocks, and stops early, only on an excess the counts make certain;
a real regression still blocks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.analysis import soak_judge, soak_regression
from core.domain import Outcome, WorkloadSample
from core.events import AnalysisSample, Finished
from core.sim import scenarios
from core.sim.scenarios import Fault, Scenario
from tests.engine_helpers import sim_session

BASE = WorkloadSample(requests=36_000, error_rate=0.004)  # production's stable at 40 req/s for 15 min


def test_a_healthy_soak_within_chance_at_ten_requests_a_second_does_not_block() -> None:
    # 47 errors in 9,000 (0.52 %): +0.12 pp over 0.40 %, a 1.8-sigma wobble of a healthy release
    reading = soak_judge(WorkloadSample(requests=9_000, error_rate=47 / 9_000), BASE, 0.1, 50)
    assert reading.value is not None and reading.value >= 0.1
    assert not reading.fired
    assert "within chance" in reading.text and "9000 staging requests" in reading.text


def test_a_real_soak_regression_at_ten_requests_a_second_still_blocks() -> None:
    reading = soak_judge(WorkloadSample(requests=9_000, error_rate=0.012), BASE, 0.1, 50)
    assert reading.fired and reading.value == pytest.approx(0.8)
    assert "within chance" not in reading.text


def test_the_early_stop_waits_for_evidence_and_stops_on_a_clear_regression() -> None:
    # 5 minutes at 1 req/s: 3 errors in 300 (1 %, +0.6 pp) happen to a healthy 0.4 % one time in eight
    assert not soak_regression(WorkloadSample(requests=300, error_rate=3 / 300), BASE, 0.5)
    # 5 minutes at 10 req/s with 5 % errors is a regression whatever the luck
    assert soak_regression(WorkloadSample(requests=3_000, error_rate=0.05), BASE, 0.5)
    assert not soak_regression(WorkloadSample(requests=3_000, error_rate=0.004), BASE, 0.5)


def _low_traffic(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> str:
    # staging sees a quarter of the scenario's traffic: 40 req/s is a 10 req/s staging
    low = scenarios.SCENARIOS["healthy"].model_copy(
        update={"name": name, "requests_per_second": 40.0, **changes}
    )
    monkeypatch.setitem(scenarios.SCENARIOS, name, low)
    return name


async def _soak(tmp_path: Path, name: str, seed: int) -> tuple[Outcome, list[object]]:
    session = await sim_session(tmp_path / str(seed), name, seed=seed)
    try:
        outcome = await asyncio.wait_for(session.rollout.run(), timeout=30)
        return outcome, list(session.rollout.events)
    finally:
        await session.close()


@pytest.mark.timeout(120)
async def test_healthy_releases_at_low_traffic_pass_the_soak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _low_traffic(monkeypatch, "healthy-10rps")
    blocked = []
    for seed in range(12):
        outcome, events = await _soak(tmp_path, name, seed)
        soak = [
            e
            for e in events
            if isinstance(e, AnalysisSample) and e.weight == 0 and e.phase.value == "staging"
        ]
        assert soak, "the soak ran"
        if outcome == Outcome.BLOCKED:
            blocked.append((seed, next(e.reason for e in events if isinstance(e, Finished))))
    assert blocked == []


@pytest.mark.timeout(120)
async def test_a_staging_regression_at_low_traffic_still_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _low_traffic(monkeypatch, "regression-10rps", faults=(Fault(from_weight=0, error_rate=0.012),))
    assert isinstance(scenarios.SCENARIOS[name], Scenario)
    for seed in range(3):
        outcome, events = await _soak(tmp_path, name, seed)
        finished = next(e for e in events if isinstance(e, Finished))
        assert outcome == Outcome.BLOCKED
        assert "staging soak failed" in finished.reason and "staging 1." in finished.reason
