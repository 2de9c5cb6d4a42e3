"""Through the agent itself: `run_agent` (core.agent.runner) watching DeployRuns on the simulated API
server, driving one, and serving the API; people act on it with their own tokens.

The DeployRun's plan is the demo (``cluster.kind: sim``: the in-memory world) with dave as the
author and a rollback-plan sign-off that needs two people other than him; the identities and their
permissions are tests/agent_api_helpers.py's (TokenReview and SubjectAccessReview are the simulated
API server's answers, the agent asks with its own ServiceAccount token).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from core.agent.crd import crd, deployrun
from core.agent.runner import Agent, run_agent
from core.events import parse_event
from tests.agent_api_helpers import NS, agent_kube_api, auth, sse, start_cluster

ROOT = Path(__file__).resolve().parent.parent
NAME = "checkout-e2e"
pytestmark = pytest.mark.timeout(90)


def spec() -> dict[str, Any]:
    plan = yaml.safe_load((ROOT / "core" / "sim" / "demo.yaml").read_text(encoding="utf-8"))
    plan["change"]["author"] = "dave"
    for gate in plan["gates"]["manual"]:
        if gate["id"] == "rollback-plan":
            gate.update(signers=2, author_may_sign=False)
    return plan


async def eventually(check: Any, what: str, timeout_s: float = 20.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_people_act_on_a_run_the_agent_drives_with_their_own_identities(tmp_path: Path) -> None:
    kube = await start_cluster()
    admin = agent_kube_api(kube.url)  # the agent's ServiceAccount may create the CRD here
    await admin.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd())
    await admin.request(
        "POST",
        f"/apis/deploydeck.dev/v1alpha1/namespaces/{NS}/deployruns",
        body=deployrun(spec(), name=NAME, namespace=NS),
    )
    ready: asyncio.Future[Agent] = asyncio.get_running_loop().create_future()
    journal = tmp_path / "deployments.jsonl"
    task = asyncio.create_task(
        run_agent(
            agent_kube_api(kube.url),
            [NS],
            "127.0.0.1",
            0,
            drive={"identity": "deploydeck-agent/a", "journal_path": journal},
            api_port=0,
            ready=ready,
        )
    )
    try:
        agent = await asyncio.wait_for(ready, 20)
        url = agent.api_url
        assert url and url.startswith("http://127.0.0.1:")
        run = await eventually(lambda: agent.registry.get(NS, NAME), "the run to be watched")
        await eventually(
            lambda: (
                run.rollout is not None
                and run.rollout.allowed("sign_off").ok
                and "rollback-plan" in run.rollout.gates
            ),
            "the rollout to wait at its sign-offs",
        )
        base = f"{url}/api/v1/namespaces/{NS}/runs/{NAME}"
        async with aiohttp.ClientSession() as http:

            async def post(user: str, verb: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
                async with http.post(f"{base}/commands/{verb}", headers=auth(user), json=body or {}) as r:
                    return r.status, await r.json()

            async with http.get(f"{url}/api/v1/runs", headers=auth("carol")) as r:
                rows = (await r.json())["runs"]
            assert [(row["name"], row["service"], row["phase"]) for row in rows] == [
                (NAME, "checkout", "preflight")
            ]

            watcher_frames: list[tuple[str, Any]] = []

            async def watch() -> None:
                async for kind, _, data in sse(http, url, "carol", path=base + "/events"):
                    watcher_frames.append((kind, data))
                    if kind == "event" and data["type"] == "finished":
                        return

            watcher = asyncio.create_task(watch())
            status, body = await post("carol", "rollback", {"reason": "I only watch"})
            assert status == 403 and "carol may not create deployruns/rollback" in body["error"]
            status, body = await post("dave", "signoff", {"gate": "rollback-plan"})
            assert status == 409 and "dave is the change author" in body["reason"]
            assert (await post("alice", "signoff", {"gate": "rollback-plan", "note": "read it"}))[0] == 200
            status, body = await post("alice\u200b", "signoff", {"gate": "rollback-plan"})
            assert status == 409 and "already signed rollback-plan" in body["reason"]
            assert (await post("bob", "signoff", {"gate": "rollback-plan"}))[0] == 200

            # the DeployRun's status says who signed, as the cluster knows them
            def signed() -> Any:
                return _status(admin, NAME)

            async def two_signers() -> Any:
                status = await signed()
                offs = status.get("signOffs") or []
                return offs if len(offs) == 2 else None

            offs = await eventually(two_signers, "the sign-offs in the DeployRun status")
            assert [(o["user"], o["groups"], o.get("selfDeclared", False)) for o in offs] == [
                ("alice", ["deploydeck:release-managers", "system:authenticated"], False),
                ("bob", ["deploydeck:release-managers", "system:authenticated"], False),
            ]
            # alice rolls it back (the `r` key of an attached dashboard)
            assert await post("alice", "rollback", {"reason": "changed my mind"}) == (
                200,
                {"ok": True, "reason": ""},
            )
            await asyncio.wait_for(watcher, 30)
            finished = [d for k, d in watcher_frames if k == "event" and d["type"] == "finished"]
            assert finished and finished[0]["outcome"] != "completed"
            # once nobody drives it, the run still reads: its row, and the plan as the DeployRun holds it
            await eventually(lambda: run.rollout is None, "the driver to let the finished run go")
            async with http.get(base, headers=auth("carol")) as r:
                detail = await r.json()
            assert detail["state"] is None and detail["plan"]["change"]["author"] == "dave"
            assert detail["you"]["may"]["rollback"] is False
            # the API's series are on the agent's /metrics
            async with http.get(f"{agent.http_url}/metrics") as r:
                exposition = await r.text()
            for line in (
                'deploydeck_api_commands_total{result="forbidden",verb="rollback"} 1.0',
                'deploydeck_api_commands_total{result="refused",verb="signoff"} 2.0',
                'deploydeck_api_commands_total{result="ok",verb="signoff"} 2.0',
                'deploydeck_api_commands_total{result="ok",verb="rollback"} 1.0',
            ):
                assert line in exposition, line
            assert 'deploydeck_api_review_seconds_count{kind="token"}' in exposition

        lines = [parse_event(json.loads(line)) for line in journal.read_text(encoding="utf-8").splitlines()]
        refused = [(e.command, e.actor, e.identity) for e in lines if e.type == "command_refused"]
        assert refused == [
            ("rollback", "carol", "authenticated"),
            ("sign_off", "dave", "authenticated"),
            ("sign_off", "alice\u200b", "authenticated"),
        ]
        # what carol's stream carried is the journal, in the same order
        streamed = [parse_event(d) for k, d in watcher_frames if k == "event"]
        assert streamed == lines[-len(streamed) :]
    finally:
        task.cancel()
        await asyncio.wait({task})
        await admin.close()
        await kube.stop()


async def _status(api: Any, name: str) -> dict[str, Any]:
    obj = await api.request("GET", f"/apis/deploydeck.dev/v1alpha1/namespaces/{NS}/deployruns/{name}")
    return obj.get("status") or {}
