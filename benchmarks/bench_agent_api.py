"""Agent API benchmarks: an engine event reaching 20 attached clients, and a rollback reaching the cluster.

Run: python benchmarks/bench_agent_api.py  (or `make bench`). Prints goal beside measured; asserts nothing.

1. Engine event → 20 SSE clients on loopback. The agent's API serves a real engine on the
   in-memory world; the caller's token goes through TokenReview/SubjectAccessReview on the
   simulated API server. The 20 clients run in a separate process (as remote dashboards would:
   their parsing does not load the agent's loop); each event carries the monotonic time it was
   emitted, and each client measures when the frame was parsed (CLOCK_MONOTONIC is system-wide).
2. POST rollback → the first traffic write (a production Deployment's replicas change, as the
   simulated API server stores it), twice:
   - through the API in front of an engine alone, on the kube-backed world (the simulated API
     server through the real adapter), paused in its canary at a weight; also the time to the
     persisted intent (the progress annotation) the engine writes before any traffic change;
   - through ``deploydeck agent`` itself (``run_agent``) on ``sim serve``'s environment (its
     simulated metrics API), driving a DeployRun with its own credentials while alice, with her
     own token, signs, proceeds and, at the first canary step, rolls back.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

CLIENTS = 20
EVENTS = 200
SPACING_S = 0.02
ROLLBACKS = 10
AGENT_ROLLBACKS = 5


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the clients' process ---------------------------------------------------------------------


async def clients_main(url: str, token: str, count: int, expect: int) -> None:
    """Attach `count` clients; print "ready" once all are attached, then the latencies (JSON)."""
    from tests.agent_api_helpers import NS, RUN

    latencies: list[float] = []
    attached = 0
    all_attached = asyncio.Event()

    async def one(http: aiohttp.ClientSession) -> None:
        nonlocal attached
        seen = 0
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{url}/api/v1/namespaces/{NS}/runs/{RUN}/events", headers=headers) as response:
            kind = ""
            async for raw in response.content:
                line = raw.decode()
                if line.startswith("event: "):
                    kind = line[7:].strip()
                elif line.startswith("data: ") and kind == "state" and not all_attached.is_set():
                    attached += 1
                    if attached == count:
                        all_attached.set()
                elif line.startswith("data: ") and kind == "event" and '"bench ' in line:
                    now = time.monotonic()
                    sent = float(json.loads(line[6:])["message"].split()[2])
                    latencies.append(now - sent)
                    seen += 1
                    if seen == expect:
                        return

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        tasks = [asyncio.create_task(one(http)) for _ in range(count)]
        await all_attached.wait()
        print("ready", flush=True)
        await asyncio.gather(*tasks)
    print(json.dumps(latencies), flush=True)


# --- 1. engine event → clients ------------------------------------------------------------------


async def fanout() -> tuple[list[float], int]:
    from core.events import LogLine
    from tests.agent_api_helpers import NS, RUN, TOKENS, View, start_cluster, start_replica
    from tests.engine_helpers import sim_session, until

    kube = await start_cluster()
    with tempfile.TemporaryDirectory() as tmp:
        session = await sim_session(Path(tmp), "healthy", interactive=True, approve=False)
        rollout = session.rollout
        run = asyncio.create_task(rollout.run())
        await until(lambda: rollout.phase.value == "preflight" and "rollback-plan" in rollout.gates)
        replica = await start_replica(kube.url, [View((NS, RUN), rollout)])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--clients",
            replica.url,
            TOKENS["alice"],
            str(CLIENTS),
            str(EVENTS),
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,  # the latencies come back as one JSON line
        )
        try:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
            for i in range(EVENTS):
                # the engine's own publishing path: journal, then every subscriber (the stream hub)
                await rollout._emit(LogLine, message=f"bench {i} {time.monotonic():.6f}")
                await asyncio.sleep(SPACING_S)
            latencies = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            run.cancel()
            await asyncio.wait({run})
            await replica.close()
            await session.close()
            await kube.stop()
    return latencies, CLIENTS * EVENTS


# --- 2. POST rollback → the cluster write ----------------------------------------------------


class _TimedRequests(list):  # type: ignore[type-arg]
    """SimKubeServer.requests, with the monotonic time each request reached the server."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        self.times.append(time.monotonic())
        super().append(item)


async def one_rollback(tmp: Path, kube_url: str) -> tuple[float, float]:
    from core.sim.kube import SimKubeServer
    from tests.agent_api_helpers import NS, RUN, TOKENS, View, start_replica
    from tests.engine_helpers import sim_session, until

    session = await sim_session(tmp, "healthy", backend="kube")
    rollout = session.rollout
    cluster = next(c for c in session.world.closers if isinstance(c, SimKubeServer))
    replica = await start_replica(kube_url, [View((NS, RUN), rollout)])
    run = asyncio.create_task(rollout.run())
    try:
        await until(lambda: rollout.weight > 0 and rollout.phase.value == "canary", turns=10**8)
        await rollout.pause("bench", "hold the canary for the measurement")
        timed = _TimedRequests()
        cluster.requests = timed
        scaled: list[float] = []  # when a production deployment's replicas changed: traffic moved

        def on_change(change: Any) -> None:
            obj, prev = change.obj, change.prev or {}
            if change.res[-1] == "deployments" and obj["metadata"].get("namespace") == NS:
                if obj.get("spec", {}).get("replicas") != prev.get("spec", {}).get("replicas"):
                    scaled.append(time.monotonic())

        cluster.store.listeners.append(on_change)
        async with aiohttp.ClientSession() as http:
            url = f"{replica.url}/api/v1/namespaces/{NS}/runs/{RUN}/commands/rollback"
            headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
            # warm: the TokenReview and SubjectAccessReview caches are what a person's second
            # keystroke meets; the first one pays them (measured in the note)
            async with http.get(f"{replica.url}/api/v1/whoami", headers=headers) as r:
                await r.read()
            sent = time.monotonic()
            async with http.post(url, headers=headers, json={"reason": "bench"}) as r:
                assert r.status == 200, await r.text()
        loop_deadline = time.monotonic() + 30
        while time.monotonic() < loop_deadline:
            writes = [t for t, (m, _) in zip(timed.times, timed, strict=False) if m != "GET" and t >= sent]
            if writes and scaled:
                return writes[0] - sent, scaled[0] - sent
            await asyncio.sleep(0.001)
        raise RuntimeError("the rollback never changed a deployment's replicas")
    finally:
        await asyncio.wait({run}, timeout=30)  # the rollback finishes before its world closes
        run.cancel()
        await asyncio.wait({run})
        await replica.close()
        await session.close()


async def rollbacks() -> tuple[list[float], list[float]]:
    from tests.agent_api_helpers import start_cluster

    kube = await start_cluster()  # the identities' API server (TokenReview, SubjectAccessReview)
    first, traffic = [], []
    try:
        for i in range(ROLLBACKS):
            with tempfile.TemporaryDirectory() as tmp:
                a, b = await one_rollback(Path(tmp) / str(i), kube.url)
                first.append(a)
                traffic.append(b)
    finally:
        await kube.stop()
    return first, traffic


async def poll(condition: Any, timeout_s: float, every_s: float) -> bool:
    """Whether ``condition()`` held within ``timeout_s`` (checked every ``every_s``)."""
    for _ in range(int(timeout_s / every_s) + 1):
        if condition():
            return True
        await asyncio.sleep(every_s)
    return bool(condition())


# --- 2b. the same, through `deploydeck agent` on the simulated environment ------------------------


async def agent_rollbacks(runs: int = AGENT_ROLLBACKS) -> list[float]:
    """`sim serve`'s environment (simulated metrics API), an agent driving DeployRuns of its plan
    with its own credentials, people acting through the agent's API with their own tokens: per
    run, alice signs and proceeds, and at the first canary step presses rollback."""
    import yaml

    from core.adapters.kubernetes.api import KubeApi
    from core.adapters.kubernetes.credentials import load
    from core.agent.crd import deployrun
    from core.agent.runner import Agent, run_agent
    from core.clock import SystemClock
    from core.sim.environment import PROD_NS, SimEnvironment

    out: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = SimEnvironment(Path(tmp), use_real_servers=False)
        await env.start()
        client, credentials = await load(str(env.agent_kubeconfig), None)
        agent_api = KubeApi(client, SystemClock(), credentials=credentials)
        ready: asyncio.Future[Agent] = asyncio.get_running_loop().create_future()
        drive = {
            "kubeconfig": str(env.agent_kubeconfig),
            "context": None,
            "journal_path": Path(tmp) / "j.jsonl",
        }
        task = asyncio.create_task(
            run_agent(agent_api, None, "127.0.0.1", 0, drive=drive, api_port=0, ready=ready)
        )
        admin_client, admin_credentials = await load(str(env.agent_kubeconfig), None)
        admin = KubeApi(admin_client, SystemClock(), credentials=admin_credentials)
        try:
            agent = await asyncio.wait_for(ready, 30)
            plan = yaml.safe_load(env.plan_path.read_text(encoding="utf-8"))
            plan["staging"]["soak"]["duration"] = "3s"  # the metrics need a few scrapes
            plan["canary"]["steps"] = [{"weight": w, "observe": "60s"} for w in (5, 25, 50, 100)]
            headers = {"Authorization": f"Bearer {env.tokens['alice']}"}
            scaled: list[float] = []

            def on_change(change: Any) -> None:
                obj, prev = change.obj, change.prev or {}
                if change.res[-1] == "deployments" and obj["metadata"].get("namespace") == PROD_NS:
                    if obj.get("spec", {}).get("replicas") != prev.get("spec", {}).get("replicas"):
                        scaled.append(time.monotonic())

            env.kube.store.listeners.append(on_change)
            async with aiohttp.ClientSession() as http:
                for i in range(runs):
                    name = f"checkout-bench-{i}"
                    body = deployrun(plan, name=name, namespace=PROD_NS)
                    await admin.request(
                        "POST", f"/apis/deploydeck.dev/v1alpha1/namespaces/{PROD_NS}/deployruns", body=body
                    )
                    base = f"{agent.api_url}/api/v1/namespaces/{PROD_NS}/runs/{name}/commands"
                    deadline = time.monotonic() + 40
                    while True:  # sign (once evaluated), proceed, until the canary holds traffic
                        view = agent.registry.get(PROD_NS, name)
                        rollout = view.rollout if view is not None else None
                        if rollout is not None and rollout.phase.value == "canary" and rollout.weight > 0:
                            break
                        if rollout is not None and rollout.allowed("sign_off").ok:
                            for gate in ("rollback-plan", "dashboards-reviewed"):
                                if not rollout.ledger.signed(gate) and gate in rollout.gates:
                                    async with http.post(
                                        f"{base}/signoff", json={"gate": gate}, headers=headers
                                    ) as r:
                                        await r.read()
                        if rollout is not None and rollout.allowed("proceed").ok:
                            async with http.post(f"{base}/proceed", headers=headers) as r:
                                await r.read()
                        if time.monotonic() > deadline:
                            where = (
                                f"{rollout.phase.value}: {'; '.join(rollout.pending_reasons())}"
                                if rollout is not None
                                else f"not driven here ({view.row() if view else 'not seen'})"
                            )
                            tail = (Path(tmp) / "j.jsonl").read_text(encoding="utf-8").splitlines()[-6:]
                            raise RuntimeError(
                                f"{name} never reached its canary ({where})\n" + "\n".join(tail)
                            )
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.5)  # settled in the step: the pods of 5 % are up
                    scaled.clear()
                    sent = time.monotonic()
                    async with http.post(f"{base}/rollback", json={"reason": "bench"}, headers=headers) as r:
                        assert r.status == 200, await r.text()
                    if not await poll(lambda: bool(scaled), 30, 0.001):
                        raise RuntimeError(f"{name}: the rollback never changed a deployment's replicas")
                    out.append(scaled[0] - sent)
                    # rolled back and let go before the next run
                    await poll(lambda v=view: v is None or v.rollout is None, 60, 0.05)
        finally:
            task.cancel()
            await asyncio.wait({task})
            await admin.close()
            await env.stop()
    return out


async def main() -> None:
    latencies, expected = await fanout()
    ms = [x * 1000 for x in latencies]
    first, traffic = await rollbacks()
    through_agent = await agent_rollbacks()
    rows = [
        (
            f"engine event → {CLIENTS} SSE clients ({EVENTS} events, {len(ms)}/{expected} frames)",
            f"p50 {pct(ms, 0.5):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms",
            "goal p50 ≤ 50 ms, p99 ≤ 200 ms",
        ),
        (
            f"POST rollback → first traffic write ({ROLLBACKS} runs)",
            f"p50 {statistics.median(traffic) * 1000:.1f} ms, max {max(traffic) * 1000:.1f} ms",
            "goal p50 ≤ 100 ms",
        ),
        (
            f"POST rollback → first traffic write, `deploydeck agent` on sim serve ({len(through_agent)} runs)",
            f"p50 {statistics.median(through_agent) * 1000:.1f} ms, max {max(through_agent) * 1000:.1f} ms",
            "goal p50 ≤ 100 ms",
        ),
        (
            "POST rollback → first cluster write (the persisted intent)",
            f"p50 {statistics.median(first) * 1000:.1f} ms, max {max(first) * 1000:.1f} ms",
            "journal first, then the intent, then traffic",
        ),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    header = ("benchmark", "measured", "goal")
    print("  ".join(h.ljust(w) for h, w in zip(header, width, strict=True)))
    print("  ".join("-" * w for w in width))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--clients"]:
        asyncio.run(clients_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    else:
        asyncio.run(main())
