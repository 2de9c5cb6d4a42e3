"""Issue 12: `deploydeck agent` replicas drive DeployRuns on `sim serve` (real processes, real
PostgreSQL log): the one driving is killed -9 at 25 % and another resumes it; a DeployRun deleted at
50 % is rolled back before it goes.

Both share one environment (`world`: starting `sim serve` is ~4 s, most of it the metrics API's first
scrapes); before each test its Deployments are put back as seeded (1.4.2, canary at 0), so the tests
do not depend on each other's order, and each has a DeployRun of its own name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.adapters.journal_pg import PgJournal
from tests.agent_helpers import (
    AgentProc,
    create_run,
    kube,
    logs,
    run_cli,
    short_plan,
    sign_off,
    status,
    wait_run,
)
from tests.serve_helpers import Serve, sim_serve

TTL_S = 4.0  # the lease a killed replica leaves; short, so the test stays quick
pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]
Seeded = dict[tuple[str, str], tuple[int, str]]  # (namespace, name) -> (replicas, image)
#: the Deployments a run touches (staging and production, stable and canary tracks)
DEPLOYMENTS = [(ns, name) for ns in ("shop-staging", "shop") for name in ("checkout", "checkout-canary")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, Seeded]]:
    """One `sim serve` for the module, and its Deployments as seeded (filled at first use); the
    simulated metrics API instead of a real Prometheus: seconds less to start, same adapters."""
    with sim_serve(tmp_path_factory.mktemp("agent-drive") / "env", real_servers=False) as env:
        yield env, {}


def _deployment(ns: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"


async def _as_seeded(api: Any, seeded: Seeded) -> None:
    """Every Deployment of DEPLOYMENTS back to its seeded replicas and image (a PUT of the object,
    as `kubectl edit` would), then rolled out: what an earlier test moved is undone."""
    for (ns, name), (replicas, image) in seeded.items():
        obj = await api.request("GET", _deployment(ns, name))
        container = obj["spec"]["template"]["spec"]["containers"][0]
        if obj["spec"]["replicas"] != replicas or container["image"] != image:
            obj["spec"]["replicas"], container["image"] = replicas, image
            await api.request("PUT", _deployment(ns, name), body=obj)
    deadline = time.monotonic() + 30
    for ns, name in seeded:
        while True:
            obj = await api.request("GET", _deployment(ns, name))
            spec, st = obj["spec"], obj.get("status") or {}
            done = st.get("observedGeneration", 0) >= obj["metadata"].get("generation", 1) and all(
                st.get(key, 0) == spec["replicas"] for key in ("updatedReplicas", "readyReplicas", "replicas")
            )
            if done:
                break
            assert time.monotonic() < deadline, f"{ns}/{name} not rolled out back: {st}"
            await asyncio.sleep(0.05)


@pytest.fixture
async def env(world: tuple[Serve, Seeded]) -> AsyncIterator[Serve]:
    """The module's environment with its Deployments as seeded (the first use records them)."""
    serve, seeded = world
    api = await kube(serve)
    try:
        if not seeded:
            for ns, name in DEPLOYMENTS:
                obj = await api.request("GET", _deployment(ns, name))
                image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
                seeded[(ns, name)] = (obj["spec"]["replicas"], image)
        await _as_seeded(api, seeded)
    finally:
        await api.close()
    yield serve


async def test_kill_9_the_driving_agent_at_25_percent_and_the_standby_resumes_it(
    tmp_path: Path, postgres_dsn: str, env: Serve
) -> None:
    api = await kube(env)
    agents = [
        AgentProc(env, name, tmp_path, database=postgres_dsn, ttl_s=TTL_S) for name in ("agent-a", "agent-b")
    ]
    try:
        # 25 % first, then all: the kill lands mid-canary, the resume has a step left to take
        await create_run(api, short_plan(env, steps=(25, 100)))
        await sign_off(env, api)
        at_25 = await wait_run(
            api,
            lambda o: status(o).get("weight") == 25 and bool(status(o).get("agent")),
            "the canary at 25 %",
        )
        holder = status(at_25)["agent"]["holder"]
        driving = next(a for a in agents if holder.startswith(f"{a.name}@") and holder.endswith(f":{a.pid}"))
        standby = next(a for a in agents if a is not driving)
        assert at_25["metadata"]["finalizers"] == ["deploydeck.dev/rollback-first"]
        driving.kill9()  # no cleanup: its lease stays held, its status says it drives
        done = await wait_run(
            api,
            lambda o: status(o).get("outcome") is not None and not status(o).get("agent"),
            "the outcome, and nobody driving",
            120,
        )
        assert status(done)["outcome"] == "completed", status(done)
        seen = await asyncio.to_thread(standby.metrics)
        assert seen['deploydeck_lease_transitions_total{transition="acquired"}'] == 1.0
        assert seen['deploydeck_lease_transitions_total{transition="released"}'] == 1.0
        assert seen["deploydeck_analysis_read_seconds_count"] > 0  # its canary reads, timed
    except AssertionError as exc:
        raise AssertionError(f"{exc}{logs(agents)}") from None
    finally:
        for agent in agents:
            agent.stop()
        await api.close()
    async with PgJournal(postgres_dsn) as journal:
        events = (await journal.read()).events
    assert {e.deploy_id for e in events} == {status(at_25)["deployId"]}  # one deploy, continued
    resumed = [e for e in events if e.type == "run_resumed"]
    assert len(resumed) == 1, standby.text()
    assert resumed[0].previous_driver == driving.name and resumed[0].actor == standby.name  # type: ignore[union-attr]
    assert resumed[0].weight == 25 and resumed[0].from_phase == "canary"  # type: ignore[union-attr]
    # within the lease: the standby took the run over before the lease would have expired
    # twice (a dead holder on this host is seen at once; a Pod elsewhere waits out one TTL)
    assert resumed[0].unwatched_s < 2 * TTL_S + 5, resumed[0]  # type: ignore[union-attr]
    moves = [e.effective for e in events if e.type == "traffic_changed" and e.applied]  # type: ignore[union-attr]
    assert moves == [25, 100, 0], moves  # nothing repeated or skipped across the takeover
    assert events[-1].type == "finished" and events[-1].outcome == "completed"  # type: ignore[union-attr]
    check = await asyncio.to_thread(run_cli, "log", "verify", "--database", postgres_dsn)
    assert check.returncode == 0, check.stdout + check.stderr


DELETED = "checkout-deleted-at-50"  # its own name: the kill test's completed run may still be there


async def test_a_deployrun_deleted_at_50_percent_is_rolled_back_before_it_goes(
    tmp_path: Path, postgres_dsn: str, env: Serve
) -> None:
    api = await kube(env)
    agent = AgentProc(env, "agent-a", tmp_path, database=postgres_dsn, ttl_s=TTL_S)
    run = f"/apis/deploydeck.dev/v1alpha1/namespaces/shop/deployruns/{DELETED}"
    seen: list = []
    audit: list = []
    try:
        # straight to 50 %, a step long enough that the deletion lands while the canary holds it
        plan = short_plan(env, steps=(50, 100))
        plan["canary"]["steps"][0]["observe"] = "8s"
        await create_run(api, plan, name=DELETED)
        await sign_off(env, api, name=DELETED)
        at_50 = await wait_run(
            api, lambda o: status(o).get("weight") == 50, "the canary at 50 %", name=DELETED
        )
        assert at_50 is not None and status(at_50).get("outcome") is None  # still at 50 %, not past it
        await api.request("DELETE", run)
        await wait_run(api, lambda o: o is None, "the DeployRun to go", 90, name=DELETED, seen=seen)
        audit = env.control("audit")
        counted = await asyncio.to_thread(agent.metrics)
        assert counted['deploydeck_rollbacks_total{rule="manual"}'] == 1.0
    except AssertionError as exc:
        raise AssertionError(f"{exc}{logs([agent])}") from None
    finally:
        agent.stop()
        await api.close()
    # the API server's own record of the writes after the deletion: the rollback's writes to
    # the Deployments and the rolled-back status all come before the finalizer goes
    writes: list = audit
    deletes = [i for i, w in enumerate(writes) if w["method"] == "DELETE" and w["path"] == run]
    assert len(deletes) == 1, [(w["method"], w["path"], w["user"]) for w in writes[-30:]]
    deleted_at = deletes[0]
    after = writes[deleted_at + 1 :]
    agent_user = "system:serviceaccount:deploydeck:deploydeck-agent"
    released = max(i for i, w in enumerate(after) if w["path"] == run and w["method"] == "PATCH")
    assert after[released]["user"] == agent_user and after[released]["status"] == 200
    assert not [w for w in after[released + 1 :] if w["path"].startswith(run)]  # nothing after it
    rollback = [w for w in after[:released] if "/namespaces/shop/deployments/" in w["path"]]
    assert rollback and all(w["user"] == agent_user and w["status"] < 300 for w in rollback), after
    assert any(w["path"] == f"{run}/status" and w["status"] == 200 for w in after[:released])
    assert seen[-1] is None  # and then it went
    final = [o for o in seen if o is not None][-1]
    assert final["metadata"].get("deletionTimestamp"), final  # it waited for the rollback, deleted
    async with PgJournal(postgres_dsn) as journal:
        events = (await journal.read()).events
    trigger = next(e for e in events if e.type == "rollback_triggered")
    assert trigger.actor == "agent-a" and trigger.rule == "manual" and not trigger.automatic  # type: ignore[union-attr]
    assert "deleted" in trigger.reason and trigger.weight_at_trigger == 50  # type: ignore[union-attr]
    assert events[-1].type == "finished" and events[-1].outcome == "rolled_back"  # type: ignore[union-attr]
