"""Issue 12: `deploydeck agent` replicas drive DeployRuns on `sim serve` (real processes, real
PostgreSQL log): the one driving is killed -9 at 25 % and another resumes it; a DeployRun deleted at
50 % is rolled back before it goes."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
from tests.serve_helpers import sim_serve

TTL_S = 4.0  # the lease a killed replica leaves; short, so the test stays quick
pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]


async def test_kill_9_the_driving_agent_at_25_percent_and_the_standby_resumes_it(
    tmp_path: Path, postgres_dsn: str
) -> None:
    # the simulated metrics API instead of a real Prometheus: seconds less to start, same adapters
    with sim_serve(tmp_path / "env", real_servers=False) as env:
        api = await kube(env)
        agents = [
            AgentProc(env, name, tmp_path, database=postgres_dsn, ttl_s=TTL_S)
            for name in ("agent-a", "agent-b")
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
            driving = next(
                a for a in agents if holder.startswith(f"{a.name}@") and holder.endswith(f":{a.pid}")
            )
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


@pytest.mark.slow  # ~23 s: a whole environment and half a rollout; the kill test above stays in make test
async def test_a_deployrun_deleted_at_50_percent_is_rolled_back_before_it_goes(
    tmp_path: Path, postgres_dsn: str
) -> None:
    with sim_serve(tmp_path / "env") as env:
        api = await kube(env)
        agent = AgentProc(env, "agent-a", tmp_path, database=postgres_dsn, ttl_s=TTL_S)
        seen: list = []
        audit: list = []
        try:
            # a long 50 % step (the short ones before it keep the test quick): the deletion lands
            # while the canary holds 50 %
            plan = short_plan(env, observe="3s")
            plan["canary"]["steps"][2]["observe"] = "8s"
            await create_run(api, plan)
            await sign_off(env, api)
            await wait_run(api, lambda o: status(o).get("weight") == 50, "the canary at 50 %")
            await api.request(
                "DELETE", "/apis/deploydeck.dev/v1alpha1/namespaces/shop/deployruns/checkout-1-5-0"
            )
            await wait_run(api, lambda o: o is None, "the DeployRun to go", 90, seen=seen)
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
        run = "/apis/deploydeck.dev/v1alpha1/namespaces/shop/deployruns/checkout-1-5-0"
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
