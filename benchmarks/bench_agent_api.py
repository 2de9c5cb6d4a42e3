"""Agent API benchmarks: an engine event reaching 20 attached clients, and a rollback reaching the cluster.

Run: python benchmarks/bench_agent_api.py  (or `make bench`). Prints goal beside measured; asserts nothing.

1. Engine event → 20 SSE clients on loopback. The agent's API serves a real engine on the
   in-memory world; the caller's token goes through TokenReview/SubjectAccessReview on the
   simulated API server. The 20 clients run in a separate process (as remote dashboards would:
   their parsing does not load the agent's loop); each event carries the monotonic time it was
   emitted, and each client measures when the frame was parsed (CLOCK_MONOTONIC is system-wide).
2. POST rollback → the cluster write. The engine drives the kube-backed world (the simulated
   API server through the real adapter), sits in its canary at a weight, paused; the time is
   from sending ``POST .../commands/rollback`` to the simulated API server storing the first
   traffic write (a production Deployment's replicas change) and, before it, receiving the
   persisted intent (the progress annotation).
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


async def main() -> None:
    latencies, expected = await fanout()
    ms = [x * 1000 for x in latencies]
    first, traffic = await rollbacks()
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
