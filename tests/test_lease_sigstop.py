"""Fencing with real processes and real time (issue 11, item 3's tests).

Everything runs as it would for an operator: `deploydeck sim serve` is the world, and each
driver is a `deploydeck run DIR/sim-plan.yaml --headless --json` child process. The API
server's audit (every write request, its answer, the person whose token sent it, the wall
time) is the witness: a driver cannot talk its way out of what the server saw.

Time is scaled: the lease lives 4 s instead of 30 s ($DEPLOYDECK_LEASE_TTL), so the
issue's "stopped for 35 s" and "a 40 s API outage" become 1.2 and 1.33 lease durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve_helpers import Driver, epoch, sim_serve, traffic_at

TTL_S = 4.0
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/shop/leases/deploydeck-checkout"


def _writes(env: Any, user: str, since: float, *, accepted: bool | None = None) -> list[dict[str, Any]]:
    # by arrival: a request already being served when a fault or a SIGSTOP came is not "after"
    writes = [w for w in env.control("audit") if w["user"] == user and w["received"] >= since]
    if accepted is not None:
        writes = [w for w in writes if (w["status"] < 400) == accepted]
    return writes


def _as_bob(env: Any) -> Path:
    """The same plan, driven through bob's kube context (his token, his name in the audit)."""
    text = Path(env.printed("plan")).read_text().replace("context: alice", "context: bob")
    path = env.directory / "sim-plan-bob.yaml"
    path.write_text(text)
    return path


@pytest.mark.real
@pytest.mark.slow
def test_a_driver_stopped_past_its_lease_writes_nothing_after_it_wakes(tmp_path: Path) -> None:
    with sim_serve(tmp_path / "env") as env:
        alice = Driver(
            env.printed("plan"), "alice", tmp_path / "alice.jsonl", DEPLOYDECK_LEASE_TTL=str(TTL_S)
        )
        bob: Driver | None = None
        try:
            alice.wait_for(traffic_at(25), 120, "canary at 25 %")
            os.kill(alice.proc.pid, signal.SIGSTOP)
            stopped_at = time.time()
            # bob finds the lease held, watches it for a whole duration unrenewed, takes it over and
            # resumes alice's deploy where she left it (the resume machinery: same deploy, in its canary)
            bob = Driver(_as_bob(env), "bob", tmp_path / "bob.jsonl", DEPLOYDECK_LEASE_TTL=str(TTL_S))
            resumed = bob.wait_for(lambda e: e["type"] == "run_resumed", 60, "the resume")
            # (stopped as the 25 % step began: applied or only announced, the resume finishes it)
            assert resumed["from_phase"] == "canary" and resumed["previous_driver"] == "alice", resumed
            bob.wait_for(lambda e: e["type"] == "analysis", 60, "bob's first canary read")
            assert time.time() - stopped_at > TTL_S  # alice has been stopped past her lease
            assert _writes(env, "bob", stopped_at, accepted=True)  # bob holds the lease and writes
            os.kill(alice.proc.pid, signal.SIGCONT)
            woke_at = time.time()

            assert alice.finish(60) == 4  # blocked: the lease is gone
            lost = next(e for e in alice.events if e["type"] == "lease_lost")
            finished = alice.events[-1]
            assert finished["type"] == "finished" and finished["outcome"] == "blocked"
            assert "lease lost" in finished["reason"], finished
            assert epoch(lost["ts"]) >= woke_at - 1.0  # noticed on waking, not before
            # the rule: after waking, zero cluster writes from alice: none accepted, and none even sent
            # to anything but her lease (the fence refuses them in the process)
            assert _writes(env, "alice", woke_at, accepted=True) == []
            assert [w for w in _writes(env, "alice", woke_at) if w["path"] != LEASE_PATH] == []

            assert bob.finish(120) == 0, bob.stderr()
            assert bob.events[-1]["outcome"] == "completed"
            assert _writes(env, "alice", woke_at, accepted=True) == []
        finally:
            alice.kill()
            if bob is not None:
                bob.kill()


@pytest.mark.real
@pytest.mark.slow
def test_a_40s_api_outage_stops_the_driver_before_its_lease_can_be_taken(tmp_path: Path) -> None:
    outage_s = 40.0 * TTL_S / 30.0  # the 40 s against a 30 s lease
    with sim_serve(tmp_path / "env") as env:
        control = env.state["control"]
        alice = Driver(
            env.printed("plan"), "alice", tmp_path / "alice.jsonl", DEPLOYDECK_LEASE_TTL=str(TTL_S)
        )
        bob: Driver | None = None
        try:
            alice.wait_for(traffic_at(25), 120, "canary at 25 %")
            httpx.post(
                f"{control}/control/faults", json={"error_rate_500": 1.0}, timeout=5
            ).raise_for_status()
            started = time.time()  # from here on the API server answers every request with 500
            lost = alice.wait_for(lambda e: e["type"] == "lease_lost", outage_s + 5, "lease_lost")
            time.sleep(max(0.0, started + outage_s - time.time()))
            httpx.post(
                f"{control}/control/faults", json={"error_rate_500": 0.0}, timeout=5
            ).raise_for_status()
            ended = time.time()
            assert alice.finish(60) == 4
            assert alice.events[-1]["outcome"] == "blocked"

            renewals = [w for w in _writes(env, "alice", 0, accepted=True) if w["path"] == LEASE_PATH]
            last_renewal = max(w["at"] for w in renewals if w["at"] <= started)
            # stopped acting before anyone could take the lease over: another driver needs at least
            # a whole lease duration after the last renewal it saw
            assert epoch(lost["ts"]) < last_renewal + TTL_S, (lost, last_renewal)
            assert epoch(lost["ts"]) < started + outage_s
            # and nothing from alice reached the cluster since, not even once the API came back
            late = _writes(env, "alice", started, accepted=True)
            assert late == [], (started, epoch(lost["ts"]), ended, late)
            assert "not renewed in time" in lost["reason"]

            # hands over cleanly: bob takes the lease after watching it expire and finishes the deploy
            bob = Driver(_as_bob(env), "bob", tmp_path / "bob.jsonl", DEPLOYDECK_LEASE_TTL=str(TTL_S))
            assert bob.finish(150) == 0, bob.stderr()
            assert bob.events[-1]["outcome"] == "completed"
            assert _writes(env, "alice", ended, accepted=True) == []
        finally:
            alice.kill()
            if bob is not None:
                bob.kill()


# --- what the SIGSTOP test caught: a lease loss cancelling the driver mid-cleanup was swallowed ---------
#
# On waking, the lease keeper cancels the driver while its overdue nap is cleaning up; the nap
# (and `within`) awaited their helper tasks under `suppress(CancelledError)`, which ate that
# cancellation too: the driver drove on, hit the fence, "rolled back" and retried the refused
# rollback forever instead of stopping. Each loop turn at which the cancel can land is tried.


class _InstantClock:
    async def sleep(self, seconds: float) -> None:
        return None


async def _cancel_after_turns(task: asyncio.Future[object], turns: int) -> bool | None:
    """Cancel `task` after `turns` loop turns; whether cancel() found it running (None: never tried)."""
    loop = asyncio.get_running_loop()
    hit: list[bool] = []

    def later(n: int) -> None:
        if n == 0:
            hit.append(task.cancel())
        else:
            loop.call_soon(later, n - 1)

    loop.call_soon(later, turns)
    await asyncio.wait({task})
    return hit[0] if hit else None


async def test_a_nap_cancelled_at_any_moment_stays_cancelled(tmp_path: Path) -> None:
    from tests.engine_helpers import sim_session

    session = await sim_session(tmp_path, "healthy")
    rollout = session.rollout
    rollout.clock = _InstantClock()  # type: ignore[assignment]
    try:
        for turns in range(8):
            nap = asyncio.ensure_future(rollout._nap(5.0))
            if await _cancel_after_turns(nap, turns):
                assert nap.cancelled(), f"a cancel after {turns} turns was swallowed"
    finally:
        await session.close()


async def test_within_never_swallows_its_callers_cancellation() -> None:
    from core.adapters.deadline import within

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # a call that takes a moment to stop
            await asyncio.sleep(0)
            raise

    async def caller() -> None:
        with contextlib.suppress(TimeoutError):
            await within(0.0, slow_to_stop())

    for turns in range(10):
        task = asyncio.ensure_future(caller())
        if await _cancel_after_turns(task, turns):
            assert task.cancelled(), f"a cancel after {turns} turns was swallowed"
