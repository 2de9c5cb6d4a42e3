"""Tests that kill the realistic bugs planted in the safety-critical code (issue 16).

Each test names the bug it catches. They go through public behaviour (the Rollout's run and
events, the ports, the adapters), so they survive the engine's split into modules.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.adapters.command import SubprocessRunner
from core.adapters.kubernetes.cluster import rollout_status
from core.analysis import TriggerState, judge
from core.clock import VirtualClock
from core.domain import CanaryMetrics, GateGroup, Outcome, Phase, WorkloadSample
from core.events import Event, Paused, RollbackTriggered
from core.plan import AnalysisSpec
from core.policy import GateDef
from core.ports import ClusterError
from core.signoff import SignOffLedger
from core.sim.kube.resources import BY_PATH
from tests.engine_helpers import sim_session
from tests.kube_helpers import CANARY, NS, STABLE, Sim
from tests.kube_helpers import sim as sim

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _metrics(
    canary_err: float, base_err: float, canary_p99: float = 0.2, base_p99: float = 0.2
) -> CanaryMetrics:
    return CanaryMetrics(
        # counts so large that the error-rate rule's significance guard (issue 14) is the plain rule
        canary=WorkloadSample(requests=10**10, error_rate=canary_err, p99=canary_p99),
        baseline=WorkloadSample(requests=10**10, error_rate=base_err, p99=base_p99),
        at=T0,
    )


# --- triggers: boundaries on values exact in floating point ----------------------------------


def test_error_rate_exactly_on_the_limit_stays_and_just_above_rolls_back() -> None:
    # 1.0 % vs 0.5 %: the delta is exactly 0.5 pp in binary floating point (0.01*100 - 0.005*100 == 0.5)
    assert 0.01 * 100 - 0.005 * 100 == 0.5
    on_limit = judge(_metrics(0.01, 0.005), None, AnalysisSpec(), TriggerState())
    reading = next(r for r in on_limit.readings if r.rule == "error_rate")
    assert reading.value == 0.5 and not reading.fired and on_limit.verdict == "healthy"
    above = judge(_metrics(0.0101, 0.005), None, AnalysisSpec(), TriggerState())
    assert [r.rule for r in above.fired] == ["error_rate"] and above.verdict == "fired"


def test_p99_ratio_exactly_on_the_limit_stays_and_just_above_rolls_back() -> None:
    assert 0.75 / 0.5 == 1.5
    on_limit = judge(_metrics(0.005, 0.005, 0.75, 0.5), None, AnalysisSpec(), TriggerState())
    reading = next(r for r in on_limit.readings if r.rule == "p99_latency")
    assert reading.value == 1.5 and not reading.fired and on_limit.verdict == "healthy"
    above = judge(_metrics(0.005, 0.005, 0.76, 0.5), None, AnalysisSpec(), TriggerState())
    assert [r.rule for r in above.fired] == ["p99_latency"]


# --- the Kubernetes adapter ------------------------------------------------------------------


def test_rollout_is_not_complete_until_updated_replicas_are_available() -> None:
    deployment = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2},
    }
    done, message = rollout_status(deployment)
    assert not done and message == "2 of 3 updated replicas are available"
    deployment["status"]["availableReplicas"] = 3
    assert rollout_status(deployment) == (True, "rolled out (3 of 3 available)")


# --- sign-off and override people rules ------------------------------------------------------


def _gate(*, automated: bool, author_may_sign: bool = False) -> GateDef:
    return GateDef(
        id="own-review",
        title="review",
        policy="POL-004",
        group=GateGroup.PRE_DEPLOY,
        automated=automated,
        overridable=True,
        author_may_sign=author_may_sign,
    )


def test_the_change_author_cannot_override_a_gate() -> None:
    # even on a gate the author may sign: an override always needs a second person
    gate = _gate(automated=True, author_may_sign=True)
    ledger = SignOffLedger(author="dave", deployer="alice")
    ok, why = ledger.override(gate, "Dave ", "looks fine to me", T0)
    assert not ok and "dave" in why.lower() and "change author" in why
    assert not ledger.overridden("own-review")
    ok, _ = ledger.override(gate, "bob", "CI flake, rerun green", T0)
    assert ok and ledger.overridden("own-review")


def test_the_change_author_cannot_sign_a_gate_marked_author_may_not_sign() -> None:
    ledger = SignOffLedger(author="dave", deployer="alice")
    ok, why, complete = ledger.sign(_gate(automated=False), "dave", "", T0)
    assert not ok and not complete and "change author" in why
    assert not ledger.signed("own-review")
    ok, _, complete = ledger.sign(_gate(automated=False), "bob", "", T0)
    assert ok and complete


# --- the command runner ----------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_a_command_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child-was-alive"
    # the shell's child writes the marker 1.5 s in; killing only the shell would leave it running
    command = f"(sleep 1.5; touch {marker}) & wait"
    outcome = await SubprocessRunner(kill_grace_s=0.2).run(command, timeout_s=0.3)
    assert outcome.exit_code is None and "process group killed" in outcome.detail
    await asyncio.sleep(2.5)  # well past the moment the child would have written
    assert not marker.exists()


# --- the engine ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_blind_rollback_fires_at_its_timeout_not_later(world) -> None:
    session = await world("metrics-outage")
    # bounded: a blind rollback that never fires must fail here, not hang the suite
    outcome = await asyncio.wait_for(session.rollout.run(), timeout=30)
    assert outcome == Outcome.ROLLED_BACK
    events = session.rollout.events
    pause = next(e for e in events if isinstance(e, Paused) and e.actor == "engine")
    trigger = next(e for e in events if isinstance(e, RollbackTriggered))
    spec = session.plan.analysis
    waited = (trigger.ts - pause.ts).total_seconds()
    assert trigger.rule == "no_data"
    assert spec.blind_pause_timeout <= waited <= spec.blind_pause_timeout + 2 * spec.interval


@pytest.mark.timeout(60)
async def test_a_port_error_mid_canary_rolls_back_and_takes_traffic_off(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy")
    cluster = session.rollout.world.production.inner  # type: ignore[attr-defined]
    original = cluster.set_canary_weight

    async def failing(percent: int):  # type: ignore[no-untyped-def]
        if percent == 25:
            raise ClusterError("PATCH deployments/checkout-canary: 500 Internal Server Error")
        return await original(percent)

    cluster.set_canary_weight = failing
    outcome = await asyncio.wait_for(session.rollout.run(), timeout=30)
    assert outcome == Outcome.ROLLED_BACK
    trigger = next(e for e in session.rollout.events if isinstance(e, RollbackTriggered))
    assert trigger.rule == "error" and "500 Internal Server Error" in trigger.reason
    assert cluster.weight == 0 and "rollback" in cluster.calls


@pytest.mark.timeout(60)
async def test_query_string_tokens_of_health_urls_never_reach_the_journal(world) -> None:
    session = await world("flaky-health")
    analysis = session.plan.analysis.model_copy(
        update={"health_urls": [f"{u}?token=hunter2secret" for u in session.plan.analysis.health_urls]}
    )
    session.rollout.plan = session.plan.model_copy(update={"analysis": analysis})
    await asyncio.wait_for(session.rollout.run(), timeout=30)
    checked = [e for e in session.rollout.events if e.type == "health_checked"]
    assert checked, "the flaky-health scenario fails some checks, which are journaled"
    journal = session.journal_path.read_text()
    assert "hunter2secret" not in journal
    assert all("?" not in e.url for e in checked)


@pytest.mark.timeout(60)
async def test_canary_ready_before_traffic_grows_and_stable_ready_before_weight_returns_to_0(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "healthy")
    assert await asyncio.wait_for(session.rollout.run(), timeout=30) == Outcome.COMPLETED
    calls = session.rollout.world.production.inner.calls  # type: ignore[attr-defined]
    # the recorded sequence of cluster writes, not a snapshot
    first_step = calls.index("weight:5")
    canary_ready = calls.index("wait_ready:canary")
    assert first_step < canary_ready < calls.index("weight:25")
    promote = calls.index(f"deploy:stable:{session.plan.version.image}")
    stable_ready = calls.index("wait_ready:stable", promote)
    assert promote < stable_ready < calls.index("weight:0", promote)
    # and no analysis judged the first step before its pods were ready: the window starts after
    first_sample = next(e for e in session.rollout.events if e.type == "analysis" and e.step == 0)
    window = next(e for e in session.rollout.events if e.type == "window_started" and e.step == 0)
    assert first_sample.ts > window.ts


# --- on the simulated Kubernetes API server through the real adapter ------------------------


def _lease(sim: Sim) -> dict:
    return sim.server.store.get(BY_PATH[("coordination.k8s.io", "v1", "leases")], NS, f"deploydeck-{STABLE}")


@pytest.mark.timeout(60)
async def test_lease_renewal_moves_renew_time_and_keeps_acquire_time(sim: Sim) -> None:
    clock = VirtualClock(auto_advance=False)
    cluster = await sim.cluster(clock=clock)
    try:
        assert (await cluster.acquire_lease("alice@host-a", ttl_s=15)).acquired
        acquired = dict(_lease(sim)["spec"])
        await clock.advance(7)
        await cluster.renew_lease()
        renewed = _lease(sim)["spec"]
        assert renewed["acquireTime"] == acquired["acquireTime"]
        assert renewed["renewTime"] != acquired["renewTime"]
        assert renewed["renewTime"].startswith((clock.now()).strftime("%Y-%m-%dT%H:%M:%S"))
        # another driver reading it 10 s later still sees a live lease (renewed 10 s ago, not 17 s)
        other = await sim.cluster(clock=VirtualClock(start=clock.now() + timedelta(seconds=10)))
        try:
            seen = await other.acquire_lease("bob@host-b", ttl_s=15)
            assert not seen.acquired and seen.holder == "alice@host-a"
        finally:
            await other.close()
    finally:
        await cluster.close()


@pytest.mark.timeout(60)
async def test_replicas_strategy_scales_the_canary_up_before_the_stable_down(sim: Sim) -> None:
    cluster = await sim.cluster("replicas")
    try:
        sim.server.requests.clear()
        for percent in (20, 50):
            await cluster.set_canary_weight(percent)
        writes = [path.rsplit("/", 1)[-1] for method, path in sim.server.requests if method == "PATCH"]
        # each step: the canary grows first, then the stable shrinks, so ready capacity never dips
        assert writes == [CANARY, STABLE, CANARY, STABLE]
        back = len(sim.server.requests)
        await cluster.set_canary_weight(0)
        writes = [p.rsplit("/", 1)[-1] for m, p in sim.server.requests[back:] if m == "PATCH"]
        assert writes == [STABLE, CANARY]  # going down: the stable grows back first
    finally:
        await cluster.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("scenario", "verdict"), [("metrics-outage", "no_data"), ("bad-canary", "fired")])
async def test_proceed_is_refused_while_the_last_sample_is_not_healthy(
    world, scenario: str, verdict: str
) -> None:
    session = await world(scenario)
    rollout = session.rollout
    answers: list[tuple[str, bool, str]] = []

    def on_event(event: Event) -> None:
        # asked at every event while a canary window is open, whatever the last sample said
        last = rollout.last_analysis
        if last is not None and rollout.phase == Phase.CANARY and rollout.window is not None:
            check = rollout.allowed("proceed")
            answers.append((last.verdict, check.ok, check.reason))

    rollout.subscribe(on_event)
    await asyncio.wait_for(rollout.run(), timeout=30)
    healthy = [ok for v, ok, _ in answers if v == "healthy"]
    bad = [(ok, reason) for v, ok, reason in answers if v == verdict]
    assert healthy and all(healthy), "a healthy sample lets a person promote early"
    assert bad and not any(ok for ok, _ in bad)
    if verdict == "no_data":
        assert all("no data" in reason for _, reason in bad)


@pytest.mark.timeout(60)
async def test_a_rollback_is_not_called_restored_while_the_error_rate_has_no_data(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "bad-canary")
    rollout = session.rollout
    metrics = rollout.world.metrics
    assert metrics is not None
    read = metrics.canary_metrics
    blind = False

    async def blind_after_trigger(window_s: float) -> CanaryMetrics:
        if blind:
            none = WorkloadSample(reason="unreachable")
            return CanaryMetrics(canary=none, baseline=none, at=rollout.clock.now(), reason="unreachable")
        return await read(window_s)

    def on_event(event: Event) -> None:
        nonlocal blind
        blind = blind or isinstance(event, RollbackTriggered)

    metrics.canary_metrics = blind_after_trigger  # type: ignore[method-assign]
    rollout.subscribe(on_event)
    assert await asyncio.wait_for(rollout.run(), timeout=30) == Outcome.ROLLED_BACK
    verify = next(e for e in rollout.events if e.type == "rollback_step" and e.action == "verify")
    assert not verify.ok and "error rate no data" in verify.detail


@pytest.mark.timeout(60)
async def test_a_marginal_statistical_verdict_is_not_a_pass(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "subtle-latency")
    plan = session.rollout.plan
    # p99 fails and the error rate passes: 50/100, which this spec calls marginal (50 ≤ score < 95)
    judge_spec = plan.analysis.judge.model_copy(update={"enabled": True, "marginal_score": 50.0})
    analysis = plan.analysis.model_copy(update={"judge": judge_spec})
    session.rollout.plan = plan.model_copy(update={"analysis": analysis})
    assert await asyncio.wait_for(session.rollout.run(), timeout=30) == Outcome.ROLLED_BACK
    trigger = next(e for e in session.rollout.events if isinstance(e, RollbackTriggered))
    assert trigger.rule == "judge" and "score 50/100: marginal" in trigger.reason
    assert "nobody to decide" in trigger.reason  # headless: rollback if unsure (POL-010)
