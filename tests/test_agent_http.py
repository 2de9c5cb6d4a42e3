"""The agent today: /healthz, /readyz, /metrics, and a list+watch of DeployRuns through KubeApi.

The simulated API server does not serve custom resources yet, so these tests stand up a small
loopback server that speaks the list and watch protocol for deployruns (resourceVersion,
ERROR 410 when the version is gone, Authorization checked) and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from core.agent.crd import deployrun
from core.agent.http import AgentMetrics, Health, make_app, serve
from core.agent.runner import Agent

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/apis/deploydeck.dev/v1alpha1"
TOKEN = "agent-sa-token-1234"
pytestmark = pytest.mark.timeout(60)


def plan_run(
    name: str, status: dict[str, Any] | None = None, example: str = "minimal.yaml"
) -> dict[str, Any]:
    run = deployrun(yaml.safe_load((ROOT / "examples" / example).read_text(encoding="utf-8")), name=name)
    run["metadata"]["generation"] = 1
    if status is not None:
        run["status"] = status
    return run


class FakeDeployRunApi:
    def __init__(self, runs: list[dict[str, Any]], *, forbid: bool = False) -> None:
        self.rv = 10
        self.runs = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in runs}
        for run in self.runs.values():
            run["metadata"]["resourceVersion"] = str(self.rv)
        self.history: list[tuple[int, dict[str, Any]]] = []
        self.changed = asyncio.Condition()
        self.forbid = forbid
        self.oldest = 0  # a watch from before this version gets ERROR 410
        self.lists = 0
        self.watches = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"{PREFIX}/deployruns", self.handle)
        app.router.add_get(f"{PREFIX}/namespaces/{{namespace}}/deployruns", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"kind": "Status", "code": 401, "message": "Unauthorized"}, status=401)
        if self.forbid:
            return web.json_response(
                {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "deployruns is forbidden"},
                status=403,
            )
        if request.query.get("watch") in {"1", "true"}:
            return await self.watch(request)
        self.lists += 1
        namespace = request.match_info.get("namespace")
        items = [r for (ns, _), r in self.runs.items() if namespace in {None, ns}]
        return web.json_response(
            {"kind": "DeployRunList", "metadata": {"resourceVersion": str(self.rv)}, "items": items}
        )

    async def watch(self, request: web.Request) -> web.StreamResponse:
        self.watches += 1
        since = int(request.query.get("resourceVersion") or 0)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if since < self.oldest:
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
            await response.write(json.dumps(gone).encode() + b"\n")
            await response.write_eof()
            return response
        deadline = asyncio.get_running_loop().time() + float(request.query.get("timeoutSeconds", "5"))
        namespace = request.match_info.get("namespace")
        while True:
            for rv, event in self.history:
                if rv > since and namespace in {None, event["object"]["metadata"]["namespace"]}:
                    await response.write(json.dumps(event).encode() + b"\n")
                    since = rv
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            async with self.changed:
                try:
                    await asyncio.wait_for(self.changed.wait(), left)
                except TimeoutError:
                    break
        await response.write_eof()
        return response

    async def put(self, kind: str, run: dict[str, Any]) -> None:
        self.rv += 1
        run["metadata"]["resourceVersion"] = str(self.rv)
        key = (run["metadata"]["namespace"], run["metadata"]["name"])
        if kind == "DELETED":
            self.runs.pop(key, None)
        else:
            self.runs[key] = run
        self.history.append((self.rv, {"type": kind, "object": json.loads(json.dumps(run))}))
        async with self.changed:
            self.changed.notify_all()

    async def compact(self) -> None:
        """Forget history: the next watch from an old version gets 410 and must relist."""
        self.oldest = self.rv + 1
        self.history.clear()
        async with self.changed:
            self.changed.notify_all()


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner, port = await serve(app, "127.0.0.1", 0, shutdown_timeout=0.5)
    return runner, f"http://127.0.0.1:{port}"


async def kube_api(url: str) -> Any:
    from kubernetes.aio import client

    from core.adapters.kubernetes.api import KubeApi
    from core.clock import SystemClock

    cfg = client.Configuration(host=url)
    cfg.api_key = {"BearerToken": TOKEN}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    return KubeApi(client.ApiClient(configuration=cfg), SystemClock(), deadline_s=2.0)


@pytest.fixture
async def world() -> AsyncIterator[Any]:
    opened: list[Any] = []

    async def open_world(
        runs: list[dict[str, Any]], namespaces: list[str] | None = None, **kwargs: Any
    ) -> tuple[FakeDeployRunApi, Agent, str]:
        fake = FakeDeployRunApi(runs, **kwargs)
        api_runner, api_url = await start(fake.app())
        api = await kube_api(api_url)
        agent = Agent(api, namespaces)
        for watcher in agent.watchers:
            watcher.watch_timeout_s = 2
            watcher.retry_s = 0.1
        http_runner, agent_url = await start(make_app(agent.health, agent.metrics))
        opened.append((agent, api, http_runner, api_runner))
        return fake, agent, agent_url

    yield open_world
    for agent, api, http_runner, api_runner in opened:
        await agent.stop()
        await api.close()
        await http_runner.cleanup()
        await api_runner.cleanup()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def series(metrics_text: str, name: str) -> dict[str, float]:
    out = {}
    for line in metrics_text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            out[labels[len(name) :]] = float(value)
    return out


async def eventually(check: Any, what: str, within: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def in_flight(url: str) -> dict[str, float]:
    _, text = await get(f"{url}/metrics")
    return {k: v for k, v in series(text, "deploydeck_runs_in_flight").items() if v}


# --- the endpoints on their own -----------------------------------------------------------------


async def test_endpoints_answer_from_health_and_metrics() -> None:
    problems = {"live": "", "ready": "not listed yet"}
    metrics = AgentMetrics()
    health = Health(live=lambda: problems["live"], ready=lambda: problems["ready"])
    runner, url = await start(make_app(health, metrics))
    try:
        assert await get(f"{url}/healthz") == (200, "ok\n")
        assert await get(f"{url}/readyz") == (503, "not listed yet\n")
        problems["ready"] = ""
        assert await get(f"{url}/readyz") == (200, "ready\n")
        problems["live"] = "watch loop ended: boom"
        assert (await get(f"{url}/healthz"))[0] == 503
        metrics.rollbacks.labels(rule="error_rate").inc()
        metrics.lease_transitions.labels(transition="acquired").inc(2)
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            text = await response.text()
        assert series(text, "deploydeck_rollbacks_total") == {'{rule="error_rate"}': 1.0}
        assert series(text, "deploydeck_lease_transitions_total") == {'{transition="acquired"}': 2.0}
        assert series(text, "deploydeck_runs_in_flight")['{phase="canary"}'] == 0.0  # present before any run
        assert "deploydeck_analysis_read_seconds_bucket" in text
    finally:
        await runner.cleanup()


# --- the agent: list, watch, relist, metrics, what it would drive -------------------------------------


async def test_agent_lists_watches_and_counts_runs_by_phase(
    world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="deploydeck.agent")
    canary = plan_run("checkout-canary", {"phase": "canary", "step": 1, "weight": 25})
    fresh = plan_run("checkout-new")
    done = plan_run("checkout-old", {"phase": "complete", "outcome": "completed", "weight": 100})
    bad = plan_run("checkout-bad", example="bad-weights.yaml")
    fake, agent, url = await world([canary, fresh, done, bad])

    assert (await get(f"{url}/readyz"))[0] == 503  # not listed yet
    agent.start()
    await eventually(lambda: _ready(url), "ready")
    assert await in_flight(url) == {'{phase="canary"}': 1.0, '{phase="pending"}': 2.0}

    moved = json.loads(json.dumps(canary))
    moved["status"] = {"phase": "verify", "weight": 100}
    await fake.put("MODIFIED", moved)
    await eventually(
        lambda: _is(in_flight(url), {'{phase="verify"}': 1.0, '{phase="pending"}': 2.0}), "verify counted"
    )
    await fake.put("DELETED", fresh)
    await eventually(
        lambda: _is(in_flight(url), {'{phase="verify"}': 1.0, '{phase="pending"}': 1.0}), "deleted"
    )

    logged = [r.getMessage() for r in caplog.records if r.name == "deploydeck.agent"]
    assert any("deployrun shop/checkout-canary: checkout 1.4.2 → 1.5.0, phase canary" in m for m in logged)
    assert any("deployrun shop/checkout-old: finished: completed" in m for m in logged)
    assert any(
        "deployrun shop/checkout-bad: not a valid plan" in m and "weights must increase" in m for m in logged
    )
    assert any("deployrun shop/checkout-new: deleted" in m for m in logged)
    _, text = await get(f"{url}/metrics")
    events = series(text, "deploydeck_deployrun_watch_events_total")
    assert events['{type="MODIFIED"}'] >= 1 and events['{type="DELETED"}'] == 1


async def test_a_compacted_watch_relists_and_catches_up(world: Any) -> None:
    fake, agent, url = await world([plan_run("a", {"phase": "canary"})])
    agent.start()
    await eventually(lambda: _ready(url), "ready")
    await fake.compact()
    extra = plan_run("b", {"phase": "staging"})
    fake.runs[("shop", "b")] = extra  # appears while the history is gone: only a relist finds it
    extra["metadata"]["resourceVersion"] = str(fake.rv)
    await eventually(
        lambda: _is(in_flight(url), {'{phase="canary"}': 1.0, '{phase="staging"}': 1.0}), "relist"
    )
    assert fake.lists >= 2 and agent.watchers[0].lists >= 2


async def test_forbidden_list_keeps_the_agent_unready_with_the_rbac_reason(world: Any) -> None:
    _, agent, url = await world([], forbid=True)
    agent.start()
    status, body = await eventually(lambda: _unready_with_reason(url), "an unready answer with a reason")
    assert status == 503 and "RBAC: not allowed to list deployruns" in body
    assert (await get(f"{url}/healthz"))[0] == 200  # alive: it keeps retrying


async def _ready(url: str) -> bool:
    return (await get(f"{url}/readyz"))[0] == 200


async def _is(counts: Any, wanted: dict[str, float]) -> bool:
    return (await counts) == wanted


async def _unready_with_reason(url: str) -> tuple[int, str] | None:
    status, body = await get(f"{url}/readyz")
    return (status, body) if status == 503 and "not listed yet" not in body else None


# --- the command a Pod runs -----------------------------------------------------------------------


async def test_deploydeck_agent_command_serves_watches_and_stops_on_sigterm(tmp_path: Path) -> None:
    import os
    import re
    import signal
    import sys

    fake = FakeDeployRunApi([plan_run("checkout-new")])
    api_runner, api_url = await start(fake.app())
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": api_url}}],
                "users": [{"name": "agent", "user": {"token": TOKEN}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "agent"}}],
                "current-context": "fake",
            }
        ),
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "agent", "--kubeconfig", str(kubeconfig), "--port", "0",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        url = ""
        seen: list[str] = []
        while not url:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, f"the agent exited early: {seen}"
            seen.append(line)
            if found := re.search(r"health and metrics on (http://127\.0\.0\.1:\d+)", line):
                url = found.group(1)
        assert "driving DeployRuns in all namespaces" in seen[-1]
        await eventually(lambda: _ready(url), "ready")
        assert await in_flight(url) == {'{phase="pending"}': 1.0}
        proc.send_signal(signal.SIGTERM)
        said = "".join(seen) + (await asyncio.wait_for(proc.stderr.read(), 30)).decode()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert "deployrun shop/checkout-new: checkout 1.4.2 → 1.5.0, phase pending" in said
        assert said.rstrip().endswith("agent: stopped")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await api_runner.cleanup()


async def test_stop_ends_a_watch_loop_that_swallowed_one_cancellation() -> None:
    # Python 3.11's asyncio.wait_for (inside KubeApi.request) can lose a cancel that lands as the
    # inner call completes; the agent must still stop on SIGTERM
    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # swallowed, as the race does
        await asyncio.sleep(30)

    agent = Agent(await kube_api("http://127.0.0.1:9"), None)
    agent.tasks = [asyncio.create_task(stubborn())]
    await asyncio.sleep(0)
    await asyncio.wait_for(agent.stop(), 5)
    assert agent.tasks[0].cancelled()
    await agent.api.close()


async def test_agent_watches_only_the_namespaces_it_is_given(world: Any) -> None:
    elsewhere = plan_run("other-team", {"phase": "canary"})
    elsewhere["metadata"]["namespace"] = "payments"
    fake, agent, url = await world(
        [plan_run("a", {"phase": "staging"}), elsewhere], namespaces=["shop", "search"]
    )
    agent.start()
    await eventually(lambda: _ready(url), "both namespaces listed")
    assert [w.namespace for w in agent.watchers] == ["shop", "search"]
    assert await in_flight(url) == {'{phase="staging"}': 1.0}  # payments is not watched
    moved = json.loads(json.dumps(elsewhere))
    moved["status"] = {"phase": "verify"}
    await fake.put("MODIFIED", moved)
    await fake.put("ADDED", plan_run("b", {"phase": "canary"}))
    await eventually(
        lambda: _is(in_flight(url), {'{phase="staging"}': 1.0, '{phase="canary"}': 1.0}), "shop only"
    )
