"""Keystroke `r` in the attached dashboard → the cluster write, through the agent (issue 12's benchmark).

The path a release manager's key takes: the dashboard (tui.remote.AttachApp, driven by Textual's
pilot, in this process) → AgentClient's POST → the agent's API in another process (TokenReview and
SubjectAccessReview on the simulated API server, cached as a second keystroke meets them) → the
engine → its first write to the simulated Kubernetes API server, and the first change of a production
Deployment's replicas (traffic moved). Two processes, as on a laptop and in a cluster: the dashboard's
painting does not share an event loop with the engine. Times are CLOCK_MONOTONIC, one clock for both.
Goal: p50 ≤ 100 ms. `python benchmarks/bench_attach.py` (make bench).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = 7


class _TimedRequests(list):  # type: ignore[type-arg]
    """SimKubeServer.requests, with the monotonic time each request reached the server."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        self.times.append(time.monotonic())
        super().append(item)


async def agent_side(tmp: Path) -> None:
    """The child: identities, a run held paused mid-canary behind the agent's API; prints `ready URL`,
    then, once a deployment's replicas change, the monotonic times of the first write and that change."""
    from core.sim.kube import SimKubeServer
    from tests.agent_api_helpers import NS, View, start_cluster, start_replica
    from tests.engine_helpers import sim_session, until

    identities = await start_cluster()
    session = await sim_session(tmp, "healthy", backend="kube")
    rollout = session.rollout
    cluster = next(c for c in session.world.closers if isinstance(c, SimKubeServer))
    replica = await start_replica(identities.url, [View((NS, "checkout-1-5-0"), rollout)])
    run = asyncio.create_task(rollout.run())
    try:
        await until(lambda: rollout.weight > 0 and rollout.phase.value == "canary", turns=10**8)
        await rollout.pause("bench", "hold the canary for the measurement")
        timed = _TimedRequests()
        cluster.requests = timed
        scaled: list[float] = []

        def on_change(change: Any) -> None:
            obj, prev = change.obj, change.prev or {}
            if change.res[-1] == "deployments" and obj["metadata"].get("namespace") == NS:
                if obj.get("spec", {}).get("replicas") != prev.get("spec", {}).get("replicas"):
                    scaled.append(time.monotonic())

        cluster.store.listeners.append(on_change)
        print(f"ready {replica.url}", flush=True)
        deadline = time.monotonic() + 120
        while not scaled and time.monotonic() < deadline:  # noqa: ASYNC110 - a store listener, polled
            await asyncio.sleep(0.001)
        # every write since armed (the paused engine's own lease renewals too): the parent sorts them
        writes = [t for t, (m, _) in zip(timed.times, timed, strict=False) if m != "GET"]
        print(json.dumps({"writes": writes, "scaled": scaled[0] if scaled else None}))
        await asyncio.wait({run}, timeout=30)
    finally:
        run.cancel()
        await asyncio.wait({run})
        await replica.close()
        await session.close()
        await identities.stop()


async def one(tmp: Path) -> tuple[float, float, float]:
    from core.agent.client import AgentClient
    from tests.agent_api_helpers import NS, TOKENS

    class TimedClient(AgentClient):
        sent: float | None = None

        async def command(self, *args: Any, **kwargs: Any) -> Any:
            self.sent = self.sent or time.monotonic()  # the dashboard hands the key to the client
            return await super().command(*args, **kwargs)

    from tui.remote import AttachApp
    from tui.screens.main import MainScreen

    child = subprocess.Popen(  # noqa: ASYNC220 - started once, read through to_thread
        [sys.executable, __file__, "--agent-side", str(tmp)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout is not None
    try:
        line = await asyncio.to_thread(child.stdout.readline)
        if not line.startswith("ready "):
            raise RuntimeError(f"the agent side did not start: {line!r}")
        async with TimedClient(line.split()[1], TOKENS["alice"]) as client:
            app = AttachApp(client, await client.whoami(), fleet=False, run=(NS, "checkout-1-5-0"))
            async with app.run_test(size=(120, 40)) as pilot:
                while not isinstance(app.screen, MainScreen) or app.check_action("rollback", ()) is not True:
                    await pilot.pause(0.02)
                await client.run(NS, "checkout-1-5-0")  # warm the agent's review caches (a second key)
                await pilot.pause(0.2)
                pressed = time.monotonic()
                await pilot.press("r")
                answer = json.loads(await asyncio.to_thread(child.stdout.readline))
        if answer["scaled"] is None or client.sent is None:
            raise RuntimeError("the key never changed a deployment's replicas")
        # the paused engine renews its lease meanwhile: the rollback's writes come after the POST left
        writes = [t for t in answer["writes"] if t >= client.sent]
        return client.sent - pressed, writes[0] - pressed, answer["scaled"] - pressed
    finally:
        child.wait(timeout=60)


async def main() -> None:
    sent, first, traffic = [], [], []
    for i in range(RUNS):
        with tempfile.TemporaryDirectory() as tmp:
            a, b, c = await one(Path(tmp) / str(i))
            sent.append(a * 1000)
            first.append(b * 1000)
            traffic.append(c * 1000)
    rows = [
        (
            f"key r (attached) → first traffic write ({RUNS} runs)",
            f"p50 {statistics.median(traffic):.1f} ms, max {max(traffic):.1f} ms",
            "goal p50 ≤ 100 ms",
        ),
        (
            "key r (attached) → the client sends the POST (dashboard's share)",
            f"p50 {statistics.median(sent):.1f} ms, max {max(sent):.1f} ms",
            "",
        ),
        (
            "key r (attached) → first cluster write (the persisted intent)",
            f"p50 {statistics.median(first):.1f} ms, max {max(first):.1f} ms",
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
    if sys.argv[1:2] == ["--agent-side"]:
        Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
        asyncio.run(agent_side(Path(sys.argv[2])))
    else:
        asyncio.run(main())
