"""Memory per driven run (issue 12): what one more DeployRun's session costs the agent.

Run: python benchmarks/bench_agent_memory.py  (BENCH_MEMORY_RUNS to change 20; --trace adds a
tracemalloc pass naming where the Python allocations of the further sessions go).

This process is the world: the simulated API server with RUNS services. A child process does what
`deploydeck agent` does per DeployRun (core.agent.drive: ``open_session`` of the run's plan on the
agent's own kubeconfig: both clusters connected, preflight read, Lease taken, state read; then a
health probe and a CI check, as the engine does early, so their HTTP clients exist too), RUNS
sessions held open together as concurrent runs are, and reports its RSS (/proc/self/statm) after
each. The first session pays one-time costs (imports, the first client); the slope over the others
is the per-run cost, the figure 100 concurrent runs multiply. The engines are not run: per-run
buffers of a running engine are not in this figure (bench_agent_fleet.py measures the whole agent).
RSS is noisy by a few hundred KB (allocator arenas); the slope over 19 sessions smooths that.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = int(os.environ.get("BENCH_MEMORY_RUNS", "20"))
NS = "mem"


def plan_text(kubeconfig: str, i: int) -> str:
    svc = f"svc-{i}"
    return f"""
service: {svc}
namespace: {NS}
version: {{from: "1.0", to: "1.1", image: "registry.example.com/app:1.1"}}
change: {{id: CHG-{i}, class: normal, author: alice}}
cluster: {{kind: kube, kubeconfig: "{kubeconfig}"}}
targets:
  staging: {{namespace: {NS}, deployment: {svc}, canary_deployment: {svc}-canary, replicas: 10}}
  production: {{namespace: {NS}, deployment: {svc}, canary_deployment: {svc}-canary, replicas: 10}}
alertmanager: {{url: "{NOWHERE}/alertmanager", timeout: 1s}}
gates:
  ci: {{provider: github, base_url: "{NOWHERE}/github", token: t}}
"""


#: a closed port: the first health probe and CI check make their clients, then fail at once
NOWHERE = "http://127.0.0.1:9"


async def first_calls(session: object) -> None:
    """What each run's engine does early: a health probe and a CI check (their HTTP clients)."""
    from core.ports import PortError

    world = session.world  # type: ignore[attr-defined]
    await world.probe.check(f"{NOWHERE}/health", timeout_s=1.0)
    with contextlib.suppress(PortError):
        await world.codehost.checks("org/app", "0" * 40)


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def child(kubeconfig: str, runs: int, trace: bool) -> None:
    """Open ``runs`` sessions one after the other, all held open; print the RSS after each."""
    import tracemalloc

    from core.clock import SystemClock
    from core.plan import parse_plan
    from core.session import open_session

    state = Path(tempfile.mkdtemp(prefix="dd-mem-"))
    sessions = []
    gc.collect()
    rss = [rss_bytes()]
    snapshot = None
    for i in range(runs):
        plan = parse_plan(plan_text(kubeconfig, i), f"run-{i}", env={})
        session = await open_session(
            plan, actor="agent", clock=SystemClock(), journal_path=state / f"{i}.jsonl", plan_path=f"run-{i}"
        )
        sessions.append(session)
        await first_calls(session)
        gc.collect()
        rss.append(rss_bytes())
        if trace and i == 0:
            tracemalloc.start(8)
            snapshot = tracemalloc.take_snapshot()
    top: list[tuple[str, int]] = []
    if snapshot is not None:
        after = tracemalloc.take_snapshot()
        stats = after.compare_to(snapshot, "filename")
        top = [(str(s.traceback[0].filename).replace(str(ROOT) + "/", ""), s.size_diff) for s in stats[:12]]
        tracemalloc.stop()
    for session in sessions:
        await session.close()
    gc.collect()
    print(json.dumps({"rss": rss, "closed": rss_bytes(), "top": top}), flush=True)


async def main(trace: bool) -> None:
    from core.sim.kube import SimKubeServer

    server = SimKubeServer(pod_ready_delay_s=0.01)
    await server.start()
    try:
        for i in range(RUNS):
            server.seed_service(
                namespace=NS,
                deployment=f"svc-{i}",
                canary_deployment=f"svc-{i}-canary",
                image="registry.example.com/app:1.0",
                replicas=10,
                service=f"svc-{i}",
                settle=i == RUNS - 1,
            )
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = server.write_kubeconfig(Path(tmp) / "agent-kubeconfig.yaml")
            results = []
            for _ in range(3):  # three children: the RSS slope moves with the allocator's arenas
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--child", str(kubeconfig), str(RUNS), *(["--trace"] if trace else []),
                    cwd=ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
                )  # fmt: skip
                out, _ = await proc.communicate()
                if proc.returncode != 0:
                    raise SystemExit(f"child failed ({proc.returncode})")
                results.append(json.loads(out.decode().strip().splitlines()[-1]))
                trace = False  # tracemalloc's own bookkeeping inflates RSS: once is enough
    finally:
        await server.stop()
    mb = 1024 * 1024
    first = [r["rss"][1] - r["rss"][0] for r in results]
    slope = [(r["rss"][-1] - r["rss"][1]) / (RUNS - 1) for r in results[1:] or results]
    per_run = statistics.median(slope)
    print(f"agent memory per driven run: {RUNS} sessions held open on the simulated API server")
    print(f"  first session (imports, first client; one-time): {statistics.median(first) / mb:.1f} MB")
    print(
        f"  each further session (median slope of {len(slope)} children): {per_run / 1024:.0f} KB"
        f"  (runs: {', '.join(f'{s / 1024:.0f}' for s in slope)} KB)"
    )
    print(f"  100 concurrent runs ≈ {100 * per_run / mb:.0f} MB of sessions over the idle agent")
    if results[0]["top"]:
        print("  where the further sessions' Python allocations went (tracemalloc, by file):")
        for name, size in results[0]["top"]:
            print(f"    {size / 1024 / (RUNS - 1):8.1f} KB/run  {name}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        at = sys.argv.index("--child")
        asyncio.run(child(sys.argv[at + 1], int(sys.argv[at + 2]), "--trace" in sys.argv))
    else:
        asyncio.run(main("--trace" in sys.argv))
