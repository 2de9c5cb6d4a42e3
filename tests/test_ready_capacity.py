"""Ready capacity through every step, promotion and rollback (issue 10 items 2 and 7; issue 16).

The real adapter drives the simulated API server in the engine's order (canary image, each weight,
promotion, or a rollback from any point) with pods that take 3 s of simulated time to become Ready.
A watcher on the server's store checks the floor at every change the cluster goes through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.adapters.kubernetes import KubeCluster
from core.clock import VirtualClock
from tests.kube_helpers import CANARY, NS, STABLE, Sim, start_sim
from tests.ready_capacity import ReadyCapacity

STEPS = [5, 25, 50, 100]
STRATEGIES = ["replicas", "nginx", "gateway"]
POD_START_S = 3.0
TOTAL = 10


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[tuple[Sim, VirtualClock]]:
    clock = VirtualClock()
    s = await start_sim(tmp_path, pod_ready_delay_s=POD_START_S, clock=clock)
    try:
        yield s, clock
    finally:
        await s.server.stop()


async def drive(cluster: KubeCluster, rollback_at: int | str | None = None, image: str = "shop:2.0") -> Any:
    """The engine's calls (core/rollout/steps/canary.py), with a rollback at step index or stage."""
    await cluster.deploy(image, "canary")
    for index, weight in enumerate(STEPS):
        await cluster.set_canary_weight(weight)
        if index == 0:
            await cluster.wait_ready("canary", 600)
        if rollback_at == index:
            return await cluster.rollback()
    await cluster.deploy(image, "stable")
    if rollback_at == "promotion":  # stable is rolling out the new version when the rollback comes
        return await cluster.rollback()
    await cluster.wait_ready("stable", 600)
    await cluster.set_canary_weight(0)
    if rollback_at == "verify":
        return await cluster.rollback()
    return None


async def settled(cluster: KubeCluster) -> None:
    await cluster.wait_ready("stable", 600)
    await cluster.wait_ready("canary", 600)


@pytest.mark.parametrize("rollback_at", [None, 0, 1, 2, 3, "promotion", "verify"])
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_ready_capacity_never_below_the_floor(
    slow: tuple[Sim, VirtualClock], strategy: str, rollback_at: int | str | None
) -> None:
    sim, clock = slow
    cluster = await sim.cluster(strategy, clock=clock)
    try:
        with ReadyCapacity(sim, strategy, TOTAL) as watch:
            report = await drive(cluster, rollback_at)
            await settled(cluster)
        watch.assert_held()
        assert watch.floor == 8  # 10 pods, maxUnavailable 25 % rounded down
        assert watch.lowest >= (8 if strategy == "replicas" else 10)
        final = "shop:2.0" if rollback_at is None else "shop:1.0"
        assert sim.server.deployment_image(NS, STABLE) == final
        assert (await cluster.describe()).weight == 0
        assert watch.ready("stable") == TOTAL
        if report is not None:
            assert report.weight_reset
            assert report.stable_restored == (rollback_at in {"promotion", "verify"})
    finally:
        await cluster.close()


def _scale_downs(watch: ReadyCapacity, name: str) -> list[int]:
    out, last = [], None
    for e in watch.events("scale", name):
        if last is not None and e.value < last:
            out.append(e.seq)
        last = e.value
    return out


def _value_before(watch: ReadyCapacity, kind: str, name: str, seq: int) -> Any:
    prior = [e.value for e in watch.timeline if e.kind == kind and e.name == name and e.seq < seq]
    return prior[-1] if prior else None


async def test_replicas_order_canary_up_and_ready_before_stable_down(slow: tuple[Sim, VirtualClock]) -> None:
    """Each stable scale-down comes after the canary reached its new size in Ready pods; the canary's
    scale-down at promotion comes after stable is Ready at full size."""
    sim, clock = slow
    cluster = await sim.cluster("replicas", clock=clock)
    try:
        with ReadyCapacity(sim, "replicas", TOTAL) as watch:
            await drive(cluster)
            await settled(cluster)
        watch.assert_held()
        stable_downs = _scale_downs(watch, STABLE)
        assert len(stable_downs) == 4  # 10 → 9 → 7 → 5 → 0
        for seq in stable_downs:
            wanted = _value_before(watch, "scale", CANARY, seq)
            assert _value_before(watch, "ready", CANARY, seq) == wanted, watch.timeline
        (canary_down,) = _scale_downs(watch, CANARY)  # 10 → 0 at promotion, once
        assert _value_before(watch, "ready", STABLE, canary_down) == TOTAL
        assert _value_before(watch, "image", STABLE, canary_down) == "shop:2.0"
    finally:
        await cluster.close()


@pytest.mark.parametrize("strategy", ["nginx", "gateway"])
async def test_traffic_waits_for_ready_canary_and_ready_stable(
    slow: tuple[Sim, VirtualClock], strategy: str
) -> None:
    """Item 7: the first weight is written only after every canary pod is Ready on the new image, and
    the weight returns to 0 only after stable is Ready."""
    sim, clock = slow
    cluster = await sim.cluster(strategy, clock=clock)
    try:
        with ReadyCapacity(sim, strategy, TOTAL) as watch:
            await drive(cluster)
            await settled(cluster)
        watch.assert_held()
        first = watch.first("weight", "traffic", lambda w: w > 0)
        assert first is not None
        assert _value_before(watch, "ready", CANARY, first) == TOTAL  # the canary mirrors stable's size
        back = watch.first("weight", "traffic", lambda w: w == 0, after=first)
        assert back is not None
        assert _value_before(watch, "image", STABLE, back) == "shop:2.0"
        assert _value_before(watch, "ready", STABLE, back) == TOTAL
    finally:
        await cluster.close()


async def test_rollback_from_100_percent_never_reaches_zero_ready(slow: tuple[Sim, VirtualClock]) -> None:
    """Item 2: replicas at 100 % (stable at 0 pods) rolls back: stable comes up and is Ready first."""
    sim, clock = slow
    cluster = await sim.cluster("replicas", clock=clock)
    try:
        with ReadyCapacity(sim, "replicas", TOTAL) as watch:
            report = await drive(cluster, rollback_at=3)
        watch.assert_held()
        assert report.weight_reset and watch.lowest >= 8
        assert sim.deployment(CANARY)["spec"]["replicas"] == 0
        assert watch.ready("stable") == TOTAL
    finally:
        await cluster.close()
