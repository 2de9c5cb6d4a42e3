"""The rollout Lease's keeper where `make mutate` found it unguarded (issue 16, second pass).

What is written to the Lease, when, and what is refused: a renewal or a release never overwrites a
Lease that changed under it, a conflicting attempt re-reads the record for the next one, a candidate
takes a silent lease at the instant it expires, and each deadline is on the Clock port. Another
instance acting between two of our requests, or a stalled API server, is played by `Scripted`,
which runs a hook before a chosen request of ours; everything else is the simulated API server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.adapters.kubernetes.lease import LeaseKeeper, LeaseLost, holder_is_dead, micro_time
from core.clock import ScaledClock, VirtualClock
from core.sim.kube.resources import BY_PATH
from tests.kube_helpers import NS, STABLE, Sim, eventually, sim  # noqa: F401
from tests.test_mutants_lease import HOST

pytestmark = pytest.mark.timeout(30)

LEASES = BY_PATH[("coordination.k8s.io", "v1", "leases")]
NAME = f"deploydeck-{STABLE}"
Hook = Callable[[], Awaitable[None]]


class Scripted:
    """Stands in for one KubeApi's `request`: records each call and runs `before[n]` ahead of the n-th."""

    def __init__(self, api: KubeApi) -> None:
        self._real = api.request
        self.calls: list[str] = []
        self.bodies: list[Any] = []
        self.before: dict[int, Hook] = {}
        self.finished: list[str] = []
        api.request = self  # type: ignore[method-assign]

    async def __call__(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        n = len(self.calls)
        self.calls.append(method)
        self.bodies.append(kwargs.get("body"))
        hook = self.before.get(n)
        if hook is not None:
            await hook()
        out = await self._real(method, path, **kwargs)
        self.finished.append(method)
        return out


def _lease(sim: Sim) -> dict[str, Any]:  # noqa: F811
    return sim.server.store.get(LEASES, NS, NAME)


def _rewrite(sim: Sim, **spec: Any) -> None:  # noqa: F811
    """Another instance writes the Lease (a new resourceVersion)."""
    lease = _lease(sim)
    lease["spec"].update(spec)
    lease["metadata"].setdefault("labels", {})["touched"] = str(time.monotonic())
    sim.server.store.update(LEASES, NS, NAME, lease)


def _seed(sim: Sim, spec: dict[str, Any]) -> None:  # noqa: F811
    sim.server.store.create(LEASES, NS, {"metadata": {"name": NAME}, "spec": spec})


async def _keeper(sim: Sim, clock: Any) -> LeaseKeeper:  # noqa: F811
    return LeaseKeeper((await sim.cluster(clock=clock)).api, clock, NS, NAME)


async def _stall() -> None:
    await asyncio.Event().wait()  # an API server that never answers


def _bob_takes_over(sim: Sim) -> Hook:  # noqa: F811
    async def hook() -> None:
        _rewrite(sim, holderIdentity="bob@host-b")

    return hook


# --- helpers -----------------------------------------------------------------------------------


def test_micro_time_is_utc_whatever_the_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert micro_time(datetime(2026, 11, 24, 10, 0, 5, 7, tzinfo=UTC)) == "2026-11-24T10:00:05.000007Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_probing_a_live_holder_sends_it_no_signal() -> None:
    # the child reports every SIGHUP it gets; SIGUSR1 (sent after the probe) makes it print and exit.
    # Signals pending together are handled lowest number first, so a HUP from the probe shows first.
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGHUP, lambda *_: print('hup', flush=True))\n"
        "signal.signal(signal.SIGUSR1, lambda *_: (print('usr1', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(0.01)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        assert not holder_is_dead(f"alice@{HOST}:{child.pid}")
        child.send_signal(signal.SIGUSR1)
        assert child.communicate(timeout=10)[0].split() == ["usr1"]
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to probe as an unprivileged user for a while")
def test_a_holder_process_we_may_not_signal_is_alive_not_dead() -> None:
    # probing another user's live process gets EPERM: it exists, so its holder is not dead
    child = subprocess.Popen(["sleep", "30"], user=65534, cwd="/")
    try:
        os.setresuid(65533, 65533, 0)  # no longer root nor the child's user; the saved uid takes root back
        try:
            verdict = holder_is_dead(f"alice@{HOST}:{child.pid}")
        finally:
            os.setresuid(0, 0, 0)
        assert verdict is False
    finally:
        child.kill()
        child.wait()


# --- acquiring ---------------------------------------------------------------------------------


async def test_a_keeper_that_never_held_the_lease_refuses_to_renew_and_has_no_deadline(sim: Sim) -> None:  # noqa: F811
    keeper = await _keeper(sim, VirtualClock(auto_advance=False))
    assert keeper.valid_until is None
    with pytest.raises(LeaseLost, match=f"^lease {NS}/{NAME} is not held$"):
        await keeper.renew()


async def test_a_lease_created_by_another_instance_first_is_watched_not_an_error(sim: Sim) -> None:  # noqa: F811
    keeper = await _keeper(sim, VirtualClock(auto_advance=False))
    script = Scripted(keeper.api)

    async def bob_creates_it() -> None:  # between our GET (404) and our POST
        _seed(sim, {"holderIdentity": "bob@host-b", "leaseDurationSeconds": 15})

    script.before[1] = bob_creates_it
    info = await keeper.acquire("alice@host-a", 15)
    assert (info.acquired, info.holder) == (False, "bob@host-b")
    assert script.calls == ["GET", "POST", "GET"]  # the POST's 409 sends it back to read bob's lease
    assert _lease(sim)["spec"]["holderIdentity"] == "bob@host-b"


async def test_the_lease_is_created_as_a_coordination_v1_lease(sim: Sim) -> None:  # noqa: F811
    # the simulator fills in apiVersion and kind; a real API server rejects a body whose
    # apiVersion or kind differ from the URL's, so the body itself is checked
    keeper = await _keeper(sim, VirtualClock(auto_advance=False))
    script = Scripted(keeper.api)
    await keeper.acquire("alice@host-a", 15)
    assert script.calls == ["GET", "POST"]
    created = script.bodies[1]
    assert (created["apiVersion"], created["kind"]) == ("coordination.k8s.io/v1", "Lease")
    assert created["metadata"]["name"] == NAME
    await keeper.release()


async def test_taking_over_counts_on_from_the_records_transitions(sim: Sim) -> None:  # noqa: F811
    _seed(
        sim, {"holderIdentity": f"carol@{HOST}:999999999", "leaseDurationSeconds": 15, "leaseTransitions": 4}
    )
    keeper = await _keeper(sim, VirtualClock(auto_advance=False))
    assert (await keeper.acquire("alice@host-a", 15)).acquired  # carol's process is gone (no such pid)
    assert _lease(sim)["spec"]["leaseTransitions"] == 5
    await keeper.release()


async def test_a_held_record_without_duration_or_transitions_is_expired_and_counts_one(sim: Sim) -> None:  # noqa: F811
    # a Lease another tool wrote with neither field: no duration means no time to wait (as client-go)
    _seed(sim, {"holderIdentity": "carol@host-c"})
    keeper = await _keeper(sim, VirtualClock(auto_advance=False))
    assert (await keeper.acquire("alice@host-a", 15)).acquired
    spec = _lease(sim)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("alice@host-a", 1)
    await keeper.release()


async def test_a_waiting_candidate_takes_a_silent_lease_at_the_instant_it_expires(sim: Sim) -> None:  # noqa: F811
    # carol's lease (15 s) is never renewed; bob polls every 14/6 s and must not overshoot its end
    _seed(sim, {"holderIdentity": "carol@host-c", "leaseDurationSeconds": 15})
    clock = VirtualClock()
    start = clock.now()
    bob = await _keeper(sim, clock)
    info = await bob.acquire("bob@host-b", 14, wait_s=60)
    assert info.acquired
    taken_at = abs((clock.now() - start).total_seconds() - 15)
    assert taken_at < 0.001
    assert _lease(sim)["spec"]["renewTime"] == micro_time(clock.now())
    await bob.release()


async def test_a_lease_duration_below_a_second_is_written_as_one_second(sim: Sim) -> None:  # noqa: F811
    keeper = await _keeper(sim, VirtualClock(auto_advance=False))
    await keeper.acquire("alice@host-a", 0.4)
    assert _lease(sim)["spec"]["leaseDurationSeconds"] == 1
    await keeper.release()


async def test_creating_and_taking_the_lease_are_counted_as_create_and_update(sim: Sim) -> None:  # noqa: F811
    # the adapter's API-call counters (and its error messages) name the RBAC verb a role must grant
    clock = VirtualClock(auto_advance=False)
    alice = await _keeper(sim, clock)
    await alice.acquire("alice@host-a", 15)
    assert alice.api.api_calls == {"get": 1, "create": 1}
    await alice.release()
    bob = await _keeper(sim, clock)
    await bob.acquire("bob@host-b", 15)
    assert bob.api.api_calls == {"get": 1, "update": 1}
    await bob.release()


# --- the renewal loop --------------------------------------------------------------------------


def _loops() -> int:
    return [t.get_name() for t in asyncio.all_tasks()].count("lease-renewal")


async def test_one_renewal_loop_per_keeper_ended_by_release_and_started_again_by_acquire(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    await keeper.acquire("alice@host-a", 15)  # retaken: still the one loop
    assert _loops() == 1
    await keeper.release()
    assert _loops() == 0 and keeper.valid_until is None
    await keeper.acquire("alice@host-a", 15)
    assert _loops() == 1 and keeper.holder == "alice@host-a"
    await keeper.release()


async def test_the_loop_renews_every_sixth_of_the_duration_on_a_clock_without_hold(sim: Sim) -> None:  # noqa: F811
    clock = ScaledClock(speed=50)  # a renewal period of 2.5 s is 50 ms of wall time
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    await eventually(lambda: keeper.renewals >= 3, 10, "three renewals")
    assert keeper.failed_renewals == 0 and keeper.lost is None
    await keeper.release()


# --- renewing ----------------------------------------------------------------------------------


async def test_a_renewal_past_the_deadline_is_refused_as_such(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    clock._now += timedelta(seconds=10)
    with pytest.raises(LeaseLost, match=f"^refused lease renewal: lease {NS}/{NAME} not renewed in time"):
        await keeper.renew()
    await keeper.release()


async def test_each_renewal_is_conditional_on_the_version_the_last_one_got_back(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    clock._now += timedelta(seconds=2)
    await keeper.renew()
    _rewrite(sim, holderIdentity="bob@host-b")  # bob takes it after our renewal
    clock._now += timedelta(seconds=2)
    with pytest.raises(LeaseLost, match=f"^lease {NS}/{NAME} was taken over by bob@host-b$"):
        await keeper.renew()
    assert _lease(sim)["spec"]["holderIdentity"] == "bob@host-b"
    await keeper.release()


async def test_a_renewal_never_overwrites_a_lease_taken_between_its_reread_and_its_retry(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    _rewrite(sim)  # still ours, a newer version: the first PATCH conflicts, the re-read says ours
    script = Scripted(keeper._renew_api)
    script.before[2] = _bob_takes_over(sim)  # after the re-read (GET), before the retried PATCH
    clock._now += timedelta(seconds=3)
    with pytest.raises(KubeApiError) as err:
        await keeper.renew()
    assert err.value.status == 409 and script.calls == ["PATCH", "GET", "PATCH"]
    bobs = _lease(sim)["spec"]
    assert bobs["holderIdentity"] == "bob@host-b" and bobs["renewTime"] != micro_time(clock.now())
    await keeper.release()


async def _conflicting_attempt(sim: Sim, clock: VirtualClock) -> tuple[LeaseKeeper, Scripted]:  # noqa: F811
    """An attempt whose PATCH and retried PATCH both conflict (the record moved twice): it fails,
    and re-reads the record for the next attempt."""
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    _rewrite(sim)
    script = Scripted(keeper._renew_api)

    async def touch() -> None:
        _rewrite(sim)

    script.before[2] = touch
    clock._now += timedelta(seconds=2)
    assert await keeper._renew_once() is True
    assert script.calls == ["PATCH", "GET", "PATCH", "GET"]
    assert (keeper.failed_renewals, keeper.renewals, keeper.lost) == (1, 0, None)
    return keeper, script


async def test_after_a_conflicting_attempt_the_next_renewal_is_one_request(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper, script = await _conflicting_attempt(sim, clock)
    clock._now += timedelta(seconds=2)
    assert await keeper._renew_once() is True
    assert script.calls[4:] == ["PATCH"] and keeper.renewals == 1
    assert _lease(sim)["spec"]["renewTime"] == micro_time(clock.now())
    await keeper.release()


async def test_after_a_conflicting_attempt_a_takeover_is_still_seen(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper, _ = await _conflicting_attempt(sim, clock)
    _rewrite(sim, holderIdentity="bob@host-b")
    assert await keeper._renew_once() is False
    assert keeper.lost == f"lease {NS}/{NAME} was taken over by bob@host-b"
    assert _lease(sim)["spec"]["holderIdentity"] == "bob@host-b"
    await keeper.release()


async def test_a_failing_reread_after_a_conflict_is_one_more_failed_attempt(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    _rewrite(sim)
    script = Scripted(keeper._renew_api)

    async def touch_then_fail() -> None:
        _rewrite(sim)

    async def fail() -> None:
        sim.server.faults.error_rate_500 = 1.0

    script.before[2] = touch_then_fail
    script.before[3] = fail  # the re-read answers 500
    assert await keeper._renew_once() is True
    assert script.calls == ["PATCH", "GET", "PATCH", "GET"] and script.finished == ["GET"]
    assert (keeper.failed_renewals, keeper.lost) == (1, None)
    sim.server.faults.error_rate_500 = 0.0
    await keeper.release()


async def test_a_reread_that_outlasts_the_renew_deadline_is_abandoned(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    clock._now += timedelta(seconds=9)  # one second of the renew deadline left
    _rewrite(sim)
    script = Scripted(keeper._renew_api)

    async def touch() -> None:
        _rewrite(sim)

    async def slow() -> None:
        await asyncio.sleep(1.05)  # a server answering just after our deadline

    script.before[2] = touch
    script.before[3] = slow
    assert await keeper._renew_once() is True
    assert script.calls == ["PATCH", "GET", "PATCH", "GET"] and script.finished == ["GET"]  # not the last
    assert keeper.failed_renewals == 1
    await keeper.release()


async def test_a_failed_attempt_sends_one_request_and_each_failure_is_counted(sim: Sim) -> None:  # noqa: F811
    # the loop is the retry: an attempt never backs off and retries inside (that would sleep on the
    # clock, which this auto-advancing VirtualClock would let happen at once)
    clock = VirtualClock()
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    script = Scripted(keeper._renew_api)
    sim.server.faults.error_rate_500 = 1.0
    assert await keeper._renew_once() is True
    assert await keeper._renew_once() is True
    assert script.calls == ["PATCH", "PATCH"] and keeper.failed_renewals == 2 and keeper.renewals == 0
    assert keeper.api.api_calls["patch"] == 2  # what reached the wire: no retry inside an attempt
    sim.server.faults.error_rate_500 = 0.0
    await keeper.release()


async def test_attempts_that_time_out_are_each_counted(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    clock._now += timedelta(seconds=9.9)  # 0.1 s left: each attempt is cut off there
    script = Scripted(keeper._renew_api)
    script.before[0] = _stall
    script.before[1] = _stall
    assert await keeper._renew_once() is True
    assert await keeper._renew_once() is True
    assert keeper.failed_renewals == 2 and keeper.renewals == 0 and keeper.lost is None
    await keeper.release()


# --- releasing ---------------------------------------------------------------------------------


async def test_release_writes_when_it_handed_the_lease_back(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    clock._now += timedelta(seconds=3)
    await keeper.release()
    spec = _lease(sim)["spec"]
    assert (spec.get("holderIdentity"), spec["renewTime"]) == (None, micro_time(clock.now()))
    assert keeper.valid_until is None


async def test_release_never_clears_a_lease_another_instance_took_meanwhile(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock(auto_advance=False)
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    _rewrite(sim, holderIdentity="bob@host-b")  # within our deadline, but the record is bob's now
    await keeper.release()
    assert _lease(sim)["spec"]["holderIdentity"] == "bob@host-b"


async def test_release_gives_up_after_five_seconds_on_the_clock_when_the_api_stalls(sim: Sim) -> None:  # noqa: F811
    clock = VirtualClock()
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    script = Scripted(keeper._renew_api)
    script.before[0] = _stall
    start = clock.now()
    await keeper.release()
    assert script.calls == ["PATCH"] and clock.now() - start == timedelta(seconds=5)
    assert keeper.holder is None


async def test_release_hands_back_a_lease_whose_last_renewal_landed_unseen(sim: Sim) -> None:  # noqa: F811
    """The release cancels the renewal loop; a renewal the server had applied but whose answer never
    reached us leaves our resourceVersion stale. The release must still hand the lease back (it is
    ours, the record says so), or every next driver waits a whole lease duration: 35 s at the
    default 30 s TTL, seen in the suite as a 40 s refusal test."""
    clock = ScaledClock(speed=50)  # a renewal period of 2.5 s is 50 ms of wall time
    keeper = await _keeper(sim, clock)
    await keeper.acquire("alice@host-a", 15)
    applied = asyncio.Event()
    real = keeper._renew_api.request
    calls: list[str] = []

    async def answer_lost(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        calls.append(method)
        out = await real(method, path, **kwargs)
        if len(calls) == 1:  # the first renewal: applied by the server, its answer never comes
            applied.set()
            await asyncio.Event().wait()
        return out

    keeper._renew_api.request = answer_lost  # type: ignore[method-assign]
    await asyncio.wait_for(applied.wait(), 10)
    await keeper.release()
    spec = _lease(sim)["spec"]
    assert spec.get("holderIdentity") is None, spec
    # the renewal, the release refused on the stale version, the re-read, the release again
    assert calls == ["PATCH", "PATCH", "GET", "PATCH"]
