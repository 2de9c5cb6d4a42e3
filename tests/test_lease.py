"""Fencing: the driver acts only while it holds the rollout's Lease (issue 11, item 3).

Expiry is judged as client-go judges it (from when THIS process saw the record
change); one renewal loop; a lost or unrenewable lease stops the engine at once,
before anyone else can take the lease, and no cluster write gets through after.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.adapters.kubernetes.lease import LeaseKeeper, LeaseLost, parse_time
from core.clock import VirtualClock
from core.domain import Outcome
from core.events import Event, TrafficChanged
from core.events import LeaseLost as LeaseLostEvent
from core.session import demo_plan, open_session
from core.sim.kube import SimKubeServer
from core.sim.kube.resources import BY_PATH
from tests.kube_helpers import NS, STABLE, Sim, sim  # noqa: F401

LEASES = BY_PATH[("coordination.k8s.io", "v1", "leases")]
APPROVALS = ["rollback-plan", "dashboards-reviewed"]


def _writes(server: SimKubeServer, since: int = 0) -> list[tuple[str, str]]:
    return [(m, p) for m, p in server.requests[since:] if m != "GET"]


async def test_expiry_is_judged_from_local_observation_not_from_the_holders_renew_time(
    sim: Sim,  # noqa: F811
) -> None:
    # alice's clock is an hour behind: her renewTime looks ancient to bob's clock
    alice_clock = VirtualClock(auto_advance=False)
    bob_clock = VirtualClock(start=alice_clock.now() + timedelta(hours=1), auto_advance=False)
    alice = await sim.cluster(clock=alice_clock)
    bob = await sim.cluster(clock=bob_clock)
    try:
        assert (await alice.acquire_lease("alice@host-a", ttl_s=15)).acquired
        first = await bob.acquire_lease("bob@host-b", ttl_s=15)
        assert not first.acquired and first.holder == "alice@host-a"
        # the lease runs, at the earliest, a whole duration from when BOB saw it
        assert first.expires_at == bob_clock.now() + timedelta(seconds=15)
        await bob_clock.advance(14)
        assert not (await bob.acquire_lease("bob@host-b", ttl_s=15)).acquired
        await bob_clock.advance(2)  # unchanged for 16 s of bob's own time: expired
        taken = await bob.acquire_lease("bob@host-b", ttl_s=15)
        assert taken.acquired and taken.holder == "bob@host-b"
    finally:
        await alice.close()
        await bob.close()


async def test_a_renewal_seen_while_watching_proves_the_holder_alive(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock()
    alice = LeaseKeeper((await sim.cluster(clock=clock)).api, clock, NS, f"deploydeck-{STABLE}")
    bob = LeaseKeeper((await sim.cluster(clock=clock)).api, clock, NS, f"deploydeck-{STABLE}")
    assert (await alice.acquire("alice@host-a", 30)).acquired
    acquire_time = _lease(sim)["spec"]["acquireTime"]
    started = clock.now()
    info = await bob.acquire("bob@host-b", 30, wait_s=60)
    waited = (clock.now() - started).total_seconds()
    assert not info.acquired and info.holder == "alice@host-a"
    assert waited <= 30 / 6 + 1  # answered at alice's first renewal, not after the whole wait
    spec = _lease(sim)["spec"]
    assert spec["acquireTime"] == acquire_time  # renewals write renewTime only
    assert parse_time(spec["renewTime"]) > parse_time(acquire_time)
    await alice.release()
    await bob.release()


async def test_a_write_after_the_renew_deadline_is_refused_without_reaching_the_server(
    sim: Sim,  # noqa: F811
) -> None:
    """A process stopped past its deadline (SIGSTOP, VM pause) wakes and must not write."""
    clock = VirtualClock(auto_advance=False)
    cluster = await sim.cluster(clock=clock)
    keeper = LeaseKeeper(cluster.api, clock, NS, f"deploydeck-{STABLE}")
    lost: list[str] = []
    try:
        assert (await keeper.acquire("alice@host-a", 30)).acquired
        keeper.fence(cluster.api)
        keeper.on_lost(lost.append)
        # within the lease: allowed (a write that does not wait for pods: this clock is stepped by hand)
        await cluster.write_state({"phase": "canary", "step": 0})
        before = len(sim.server.requests)
        # the whole process was frozen: time moved on, no renewal ran
        clock._now += timedelta(seconds=25)
        with pytest.raises(LeaseLost, match="not renewed in time"):
            await cluster.set_canary_weight(50)
        assert _writes(sim.server, before) == []
        assert lost and "not renewed in time" in lost[0]
        await keeper.release()  # lost: releasing writes nothing either
        assert _writes(sim.server, before) == []
    finally:
        await cluster.close()


def _lease(sim: Sim) -> dict[str, Any]:  # noqa: F811
    return sim.server.store.get(LEASES, NS, f"deploydeck-{STABLE}")


def _server(session: Any) -> SimKubeServer:
    return next(c for c in session.world.closers if isinstance(c, SimKubeServer))


async def test_the_session_runs_exactly_one_renewal_loop(tmp_path: Path) -> None:
    session = await open_session(
        demo_plan("healthy"),
        actor="alice",
        clock=VirtualClock(),
        journal_path=tmp_path / "j.jsonl",
        interactive=False,
        sim_backend="kube",
        kubeconfig_dir=tmp_path,
    )
    try:
        names = [t.get_name() for t in asyncio.all_tasks()]
        assert names.count("lease-renewal") == 1, names
    finally:
        await session.close()


async def test_a_40s_api_outage_stops_the_driver_before_its_lease_can_be_taken(tmp_path: Path) -> None:
    clock = VirtualClock()
    session = await open_session(
        demo_plan("healthy"),
        actor="alice",
        clock=clock,
        journal_path=tmp_path / "j.jsonl",
        interactive=False,
        approvals=APPROVALS,
        sim_backend="kube",
        kubeconfig_dir=tmp_path,
    )
    server = _server(session)
    ttl = session.lease.ttl_s if session.lease else 0.0
    outage: dict[str, Any] = {}

    async def end_outage() -> None:
        await clock.sleep(40)
        server.faults.error_rate_500 = 0.0
        outage["ended"] = clock.now()

    def on_event(event: Event) -> None:
        if (
            isinstance(event, TrafficChanged)
            and event.applied
            and event.effective > 0
            and "started" not in outage
        ):
            outage["started"] = clock.now()
            outage["requests"] = len(server.requests)
            server.faults.error_rate_500 = 1.0  # the API server answers nothing but 500 for 40 s
            outage["task"] = asyncio.ensure_future(end_outage())

    session.rollout.subscribe(on_event)
    try:
        outcome = await asyncio.wait_for(session.rollout.run(), 60)
        lost = [e for e in session.rollout.events if isinstance(e, LeaseLostEvent)]
        assert outcome == Outcome.BLOCKED and len(lost) == 1
        assert "not renewed in time" in lost[0].reason
        last_renewal = parse_time(_lease_of(server, session)["spec"]["renewTime"])
        assert last_renewal is not None and last_renewal <= outage["started"]
        # stopped before anyone watching the lease could consider it expired
        assert lost[0].ts < last_renewal + timedelta(seconds=ttl)
        assert lost[0].ts < outage["started"] + timedelta(seconds=40)
        finished = session.rollout.events[-1]
        assert finished.type == "finished" and "lease lost" in finished.reason
        await outage["task"]
        # nothing written by this driver since the outage began, even after the API came back
        assert _writes(server, outage["requests"]) == []
        assert session.rollout.weight > 0  # left where it was: no rollback by a driver without the lease
        # hands over cleanly: another driver takes the lease once it has watched it expire
        from core.adapters.kubernetes.lease import LeaseKeeper as Keeper

        bob = Keeper(session.world.production.api, clock, "shop", "deploydeck-checkout")
        taken = await bob.acquire("bob@host-b", ttl, wait_s=2 * ttl)
        assert taken.acquired
        await bob.release()
    finally:
        await session.close()


def _lease_of(server: SimKubeServer, session: Any) -> dict[str, Any]:
    target = session.plan.targets.production
    return server.store.get(LEASES, target.namespace, f"deploydeck-{target.deployment}")
