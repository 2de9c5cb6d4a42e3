"""The rollout Lease's helpers and keeper, pinned where `make mutate` found them unguarded (issue 16).

Who counts as a dead holder decides whether a lease may be taken before its duration has run out,
so each of its refusals is tested; the keeper tests run on the simulated API server (tests.kube_helpers).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from core.adapters.kubernetes.lease import (
    LeaseKeeper,
    LeaseLost,
    holder_identity,
    holder_is_dead,
    micro_time,
    parse_time,
)
from core.clock import VirtualClock
from core.ports import ClusterError
from core.sim.kube.resources import BY_PATH
from tests.kube_helpers import NS, STABLE, Sim, sim  # noqa: F401

HOST = socket.gethostname()


def test_micro_time_is_utc_with_microseconds_and_parse_time_reads_both_kubernetes_forms() -> None:
    at = datetime(2026, 11, 24, 11, 0, 5, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert micro_time(at) == "2026-11-24T10:00:05.123456Z"
    assert parse_time("2026-11-24T10:00:05.123456Z") == datetime(2026, 11, 24, 10, 0, 5, 123456, tzinfo=UTC)
    assert parse_time("2026-11-24T10:00:05Z") == datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)
    assert parse_time(None) is None and parse_time("") is None
    assert parse_time("yesterday") is None


def test_holder_identity_names_the_person_the_host_and_the_process() -> None:
    assert holder_identity("alice") == f"alice@{HOST}:{os.getpid()}"


def test_a_holder_whose_process_on_this_host_has_exited_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert holder_is_dead(f"alice@{HOST}:{child.pid}")


def test_a_live_process_another_host_or_an_unreadable_holder_is_never_called_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not holder_is_dead(f"alice@{HOST}:{child.pid}")  # alive
    finally:
        child.kill()
        child.wait()
    gone = child.pid
    assert holder_is_dead(f"alice@{HOST}:{gone}")  # the same holder, once it has exited
    assert not holder_is_dead(f"alice@other-{HOST}:{gone}")  # another host: we cannot know
    assert not holder_is_dead(f"alice@{HOST}:{os.getpid()}")  # ourselves
    assert not holder_is_dead(f"alice@{HOST}:")
    assert not holder_is_dead(f"alice@{HOST}:12a")
    assert not holder_is_dead("alice")  # not of the form actor@host:pid
    assert not holder_is_dead(f"alice@{HOST}:1")  # init: exists, and is never a deploydeck holder


# --- the keeper, on the simulated API server --------------------------------------------------------

LEASES = BY_PATH[("coordination.k8s.io", "v1", "leases")]
NAME = f"deploydeck-{STABLE}"


def _spec(sim: Sim) -> dict[str, Any]:  # noqa: F811
    return sim.server.store.get(LEASES, NS, NAME)["spec"]


async def _keeper(sim: Sim, clock: VirtualClock) -> LeaseKeeper:  # noqa: F811
    return LeaseKeeper((await sim.cluster(clock=clock)).api, clock, NS, NAME)


@pytest.mark.timeout(30)
async def test_a_created_lease_records_holder_duration_and_times(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    with pytest.raises(LeaseLost, match=f"^refused write: lease {NS}/{NAME} is not held$"):
        keeper.check()
    info = await keeper.acquire("alice@host-a", 15.5)
    assert (info.acquired, info.holder, info.expires_at) == (
        True,
        "alice@host-a",
        clock.now() + timedelta(seconds=15.5),
    )
    spec = _spec(sim)
    assert spec == {
        "holderIdentity": "alice@host-a",
        "leaseDurationSeconds": 16,  # whole seconds, rounded up: never shorter than asked
        "renewTime": micro_time(clock.now()),
        "acquireTime": micro_time(clock.now()),
        "leaseTransitions": 0,
    }
    lease = sim.server.store.get(LEASES, NS, NAME)
    assert lease["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "deploydeck"}
    await keeper.release()


@pytest.mark.timeout(30)
async def test_the_holder_may_write_until_two_thirds_of_the_duration_and_not_at_that_instant(
    sim: Sim,  # noqa: F811
) -> None:
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    lost: list[str] = []
    keeper.on_lost(lost.append)
    start = clock.now()
    await keeper.acquire("alice@host-a", 15)
    assert keeper.renew_deadline_s == 10.0
    assert keeper.valid_until == start + timedelta(seconds=10)
    clock._now = start + timedelta(seconds=9.999)  # frozen: no renewal ran meanwhile
    keeper.check()
    clock._now = start + timedelta(seconds=10)
    with pytest.raises(LeaseLost, match=r"not renewed in time \(renew deadline passed 0\.0s ago"):
        keeper.check("PATCH x")
    assert lost == [
        f"lease {NS}/{NAME} not renewed in time (renew deadline passed 0.0s ago by this process's clock)"
    ]
    with pytest.raises(LeaseLost, match=r"^refused again: lease .* not renewed in time"):
        keeper.check("again")
    late: list[str] = []
    keeper.on_lost(late.append)  # registered after the loss: told at once
    assert late == lost and len(lost) == 1  # and the first callback only once
    assert keeper.holder is None and keeper.valid_until is None
    await keeper.release()


@pytest.mark.timeout(30)
async def test_the_fence_lets_only_our_own_lease_requests_through_after_the_deadline(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    api = keeper.api
    keeper.fence(api)
    clock._now += timedelta(seconds=11)
    own = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{NAME}"
    api.fence("PATCH", own + "?fieldManager=deploydeck")  # type: ignore[misc]  # not refused
    with pytest.raises(LeaseLost, match=r"^refused PATCH /apis/apps/v1/x: "):
        api.fence("PATCH", "/apis/apps/v1/x")  # type: ignore[misc]
    await keeper.release()


@pytest.mark.timeout(30)
async def test_a_renewal_moves_the_deadline_from_when_it_was_sent(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    clock._now += timedelta(seconds=4)
    sent = clock.now()
    await keeper.renew()
    assert keeper.valid_until == sent + timedelta(seconds=10)
    assert keeper.renewals == 1 and _spec(sim)["renewTime"] == micro_time(sent)
    await keeper.release()


@pytest.mark.timeout(30)
async def test_retaking_our_own_lease_keeps_its_acquire_time_and_a_takeover_counts_a_transition(
    sim: Sim,  # noqa: F811
) -> None:
    clock = VirtualClock(auto_advance=False)
    alice = await _keeper(sim, clock)
    await alice.acquire("alice@host-a", 15)
    first = dict(_spec(sim))
    clock._now += timedelta(seconds=3)
    await alice.acquire("alice@host-a", 15)  # a restarted driver of the same holder
    again = _spec(sim)
    assert (again["acquireTime"], again["leaseTransitions"]) == (first["acquireTime"], 0)
    assert again["renewTime"] == micro_time(clock.now())
    bob = await _keeper(sim, clock)
    assert not (await bob.acquire("bob@host-b", 15)).acquired
    clock._now += timedelta(seconds=15)  # unchanged for a whole duration of bob's watching
    assert (await bob.acquire("bob@host-b", 15)).acquired
    taken = _spec(sim)
    assert (taken["holderIdentity"], taken["leaseTransitions"]) == ("bob@host-b", 1)
    assert taken["acquireTime"] == micro_time(clock.now())
    await bob.release()
    await alice.release()


@pytest.mark.timeout(30)
async def test_a_renewal_that_finds_another_holder_or_no_lease_loses_it_and_says_to_whom(
    sim: Sim,  # noqa: F811
) -> None:
    clock = VirtualClock(auto_advance=False)
    alice = await _keeper(sim, clock)
    await alice.acquire("alice@host-a", 15)
    lease = sim.server.store.get(LEASES, NS, NAME)
    lease["spec"]["holderIdentity"] = "bob@host-b"  # written by another instance meanwhile
    sim.server.store.update(LEASES, NS, NAME, lease)
    with pytest.raises(LeaseLost, match=f"^lease {NS}/{NAME} was taken over by bob@host-b$"):
        await alice.renew()
    assert alice.holder is None and alice.lost == f"lease {NS}/{NAME} was taken over by bob@host-b"
    await alice.release()
    carol = await _keeper(sim, clock)
    sim.server.store.delete(LEASES, NS, NAME)
    await carol.acquire("carol@host-c", 15)
    sim.server.store.delete(LEASES, NS, NAME)
    with pytest.raises(LeaseLost, match=f"^lease {NS}/{NAME} was taken over by nobody$"):
        await carol.renew()
    await carol.release()


@pytest.mark.timeout(30)
async def test_release_hands_the_lease_back_at_once_but_never_after_the_deadline(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    alice = await _keeper(sim, clock)
    await alice.acquire("alice@host-a", 15)
    await alice.release()
    spec = _spec(sim)
    assert spec.get("holderIdentity") is None and spec["leaseDurationSeconds"] == 1
    assert alice.holder is None
    bob = await _keeper(sim, clock)
    assert (await bob.acquire("bob@host-b", 15)).acquired  # free: no need to wait it out
    clock._now += timedelta(seconds=10)  # bob's deadline has passed: releasing may not write
    before = len(sim.server.requests)
    await bob.release()
    assert [m for m, _ in sim.server.requests[before:] if m != "GET"] == []
    assert _spec(sim)["holderIdentity"] == "bob@host-b"


@pytest.mark.timeout(30)
async def test_acquiring_retries_a_conflict_five_times_then_gives_up_saying_why(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    sim.server.faults.force_conflicts = 5  # another instance wins the race five times in a row
    assert (await keeper.acquire("alice@host-a", 15)).acquired
    sim.server.faults.force_conflicts = 6
    with pytest.raises(ClusterError, match=f"^lease {NS}/{NAME}: kept conflicting with another instance$"):
        await keeper.acquire("alice@host-a", 15)
    sim.server.faults.force_conflicts = 0
    await keeper.release()


@pytest.mark.timeout(30)
async def test_a_renewal_that_meets_our_own_newer_version_renews_on_it(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    lease = sim.server.store.get(LEASES, NS, NAME)
    lease["metadata"]["labels"]["touched"] = "yes"  # still ours, but a newer resourceVersion
    sim.server.store.update(LEASES, NS, NAME, lease)
    clock._now += timedelta(seconds=3)
    await keeper.renew()
    assert keeper.holder == "alice@host-a" and keeper.renewals == 1
    assert _spec(sim)["renewTime"] == micro_time(clock.now())
    assert keeper.valid_until == clock.now() + timedelta(seconds=10)
    clock._now += timedelta(seconds=3)
    await keeper.renew()  # and the version it got back is the one it renews on next
    assert keeper.renewals == 2 and _spec(sim)["renewTime"] == micro_time(clock.now())
    await keeper.release()


@pytest.mark.timeout(30)
async def test_a_failed_renewal_attempt_is_counted_and_the_next_one_still_runs(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    sim.server.faults.error_rate_500 = 1.0
    assert await keeper._renew_once() is True  # one attempt failed; the lease is still ours for now
    assert (keeper.failed_renewals, keeper.renewals, keeper.lost) == (1, 0, None)
    sim.server.faults.error_rate_500 = 0.0
    clock._now += timedelta(seconds=2)
    assert await keeper._renew_once() is True
    assert (keeper.failed_renewals, keeper.renewals) == (1, 1)
    assert keeper.valid_until == clock.now() + timedelta(seconds=10)
    await keeper.release()


@pytest.mark.timeout(30)
async def test_a_renewal_attempt_past_the_deadline_loses_the_lease_without_a_request(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    clock._now += timedelta(seconds=10)
    before = len(sim.server.requests)
    assert await keeper._renew_once() is False
    assert keeper.lost is not None and "not renewed in time" in keeper.lost
    assert sim.server.requests[before:] == []
    with pytest.raises(LeaseLost, match="not renewed in time"):
        await keeper.renew()
    await keeper.release()


@pytest.mark.timeout(30)
async def test_after_a_release_past_the_deadline_the_lease_is_simply_not_held(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    clock._now += timedelta(seconds=11)
    await keeper.release()
    with pytest.raises(LeaseLost, match=f"^refused write: lease {NS}/{NAME} is not held$"):
        keeper.check()


def test_an_actor_with_an_at_sign_still_names_a_dead_process_and_probing_a_live_one_does_not_hurt_it() -> (
    None
):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not holder_is_dead(f"alice@example.com@{HOST}:{child.pid}")
        assert child.poll() is None  # the probe is signal 0: it must not stop the process
    finally:
        child.kill()
        child.wait()
    assert holder_is_dead(f"alice@example.com@{HOST}:{child.pid}")
