"""The simulated Kubernetes backend reaches the same verdicts as the in-memory world (issue 10, 14).

On the kube backend the canary's share of traffic is pod-count based (ready canary pods over ready
pods), so it only follows a weight once pods start and stop; and the simulated API server's pods must
start on the world's clock, so a realistic start delay costs no wall time under a VirtualClock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from core.clock import VirtualClock
from core.events import RollbackTriggered
from core.session import demo_plan, open_session
from core.sim.kube import SimKubeServer
from core.sim.scenarios import SCENARIOS, verdict_problems
from core.sim.world import WorkloadModel


class _LaggingSplit:
    """A pod-count share: while the stable's pods drop out of the endpoints it reads in between."""

    def __init__(self) -> None:
        self.share = 5

    def new_version_share(self) -> int:
        return self.share


def test_a_share_that_settles_after_the_ask_is_counted_from_the_ask() -> None:
    clock = VirtualClock(auto_advance=False)
    split = _LaggingSplit()
    model = WorkloadModel(SCENARIOS["bad-canary"], split, clock)
    model.observe()
    clock._now += timedelta(seconds=300)
    # the engine set 25 % (5 of 20 pods); the stable's 5 extra pods are still in the endpoints: 5/25
    split.share = 20
    model.traffic_requested(25)
    clock._now += timedelta(seconds=30)
    split.share = 25  # the stable's pods are gone by the next read
    share, at_share, _ = model.observe()
    assert (share, at_share) == (25, 30.0)
    clock._now += timedelta(seconds=30)
    behaviour, share = model.behaviour("canary")
    # 60 s at 25 % since the step began: the scenario's fault is on, as on the in-memory world
    assert share == 25 and behaviour.error_rate == pytest.approx(0.032)


def test_a_later_unasked_change_is_counted_from_when_it_is_seen() -> None:
    clock = VirtualClock(auto_advance=False)
    split = _LaggingSplit()
    model = WorkloadModel(SCENARIOS["bad-canary"], split, clock)
    split.share = 25
    model.traffic_requested(25)
    clock._now += timedelta(seconds=120)
    split.share = 21  # a canary pod restarted: 4 of 19 ready
    assert model.observe()[:2] == (21, 0.0)


async def _run(tmp_path: Path, backend: str, **kwargs: object) -> tuple[list[object], object]:
    plan = demo_plan("bad-canary")
    session = await open_session(
        plan,
        actor="tester",
        clock=VirtualClock(),
        interactive=False,
        approvals=[m.id for m in plan.gates.manual],
        journal_path=tmp_path / backend / "deployments.jsonl",
        sim_backend=backend,  # type: ignore[arg-type]
        kubeconfig_dir=tmp_path / backend / "kube",
        **kwargs,  # type: ignore[arg-type]
    )
    try:
        await asyncio.wait_for(session.rollout.run(), timeout=60)
        return list(session.rollout.events), session
    finally:
        await session.close()


@pytest.mark.timeout(120)
async def test_bad_canary_on_the_kube_backend_fires_error_rate_at_25_like_the_memory_world(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    # a realistic pod start (3 s of simulated time), which the wall-clock server turned into a
    # staging rollout that "never" became ready within the virtual 600 s timeout
    kube_events, session = await _run(tmp_path, "kube", pod_start_delay_s=3.0)
    wall = time.monotonic() - started
    server = next(c for c in session.world.closers if isinstance(c, SimKubeServer))  # type: ignore[attr-defined]
    assert server.clock is session.clock and server.controller.pod_ready_delay_s == 3.0  # type: ignore[attr-defined]
    memory_events, _ = await _run(tmp_path, "memory")
    assert verdict_problems(SCENARIOS["bad-canary"], kube_events) == []
    kube = next(e for e in kube_events if isinstance(e, RollbackTriggered))
    memory = next(e for e in memory_events if isinstance(e, RollbackTriggered))
    assert (kube.rule, kube.weight_at_trigger, kube.phase.value) == ("error_rate", 25, "canary")
    assert (kube.rule, kube.weight_at_trigger) == (memory.rule, memory.weight_at_trigger)
    reading = next(r for r in kube.readings if r.rule == "error_rate")
    assert reading.fired and reading.value > 0.5  # pp above the baseline
    # dozens of 3 s pod starts and terminations cost no wall time on the virtual clock
    assert wall < 30, f"{wall:.1f}s of wall time"


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_reaches_its_verdict_on_the_kube_backend(tmp_path: Path, name: str) -> None:
    """The scenario table (core/sim/scenarios.py) on the pod-count backend with 3 s pod starts."""
    from tests.engine_helpers import sim_session

    session = await sim_session(tmp_path, name, backend="kube")
    try:
        await asyncio.wait_for(session.rollout.run(), timeout=60)
        assert verdict_problems(SCENARIOS[name], list(session.rollout.events)) == []
    finally:
        await session.close()
