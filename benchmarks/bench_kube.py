"""Rollback latency of the Kubernetes adapter vs `kubectl rollout undo`, and API writes per operation.

Runs against the in-process simulated API server over real loopback HTTP:
    python benchmarks/bench_kube.py [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.adapters.kubernetes import KubeCluster  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.plan import TargetSpec  # noqa: E402

NS, STABLE, CANARY = "prod", "web", "web-canary"
WRITE_VERBS = {"create", "update", "patch", "delete"}


def writes(cluster: KubeCluster) -> int:
    return sum(n for verb, n in cluster.api_calls.items() if verb in WRITE_VERBS)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def kubectl_undo(binary: str, kubeconfig: Path, home: Path) -> float:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECACHEDIR": str(home / "cache")}
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        NS,
        "rollout",
        "undo",
        f"deployment/{STABLE}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl rollout undo failed: {err.decode().strip()}")
    return time.perf_counter() - started


async def start_server(tmp: Path) -> tuple[asyncio.subprocess.Process, Path]:
    """The simulated API server in its own process, so its controller does not share our event loop."""
    kubeconfig = tmp / "config"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.sim.kube", "--kubeconfig", str(kubeconfig), "--namespace", NS,
        "--deployment", STABLE, "--image", "shop:1", "--replicas", "10", "--pod-ready-delay", "0.001",
        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    for _ in range(2):  # the URL line, then the kubectl hint: the kubeconfig exists by then
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError("the simulated API server did not start")
    return proc, kubeconfig


async def main(runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-kube-"))
    server, kubeconfig = await start_server(tmp)
    clock = SystemClock()

    def target(strategy: str) -> TargetSpec:
        return TargetSpec(
            namespace=NS,
            deployment=STABLE,
            canary_deployment=CANARY,
            strategy=strategy,
            ingress="web-canary",
            httproute="web",
        )

    cluster = await KubeCluster.connect(target("replicas"), kubeconfig=str(kubeconfig), clock=clock)
    ours: list[float] = []
    rollback_writes: list[int] = []
    for n in range(runs):
        await cluster.deploy(f"shop:{n + 2}", "stable")
        await cluster.wait_ready("stable", 30)
        before = writes(cluster)
        started = time.perf_counter()
        report = await cluster.rollback()
        ours.append(time.perf_counter() - started)  # the undo patch has been applied when rollback returns
        rollback_writes.append(writes(cluster) - before)
        assert report.stable_restored, report.detail
        await cluster.wait_ready("stable", 30)

    theirs: list[float] = []
    binary = shutil.which("kubectl") or "/usr/bin/kubectl"
    if os.access(binary, os.X_OK):
        for n in range(runs):
            await cluster.deploy(f"shop:k{n}", "stable")
            await cluster.wait_ready("stable", 30)
            theirs.append(await kubectl_undo(binary, kubeconfig, tmp))
            await cluster.wait_ready("stable", 30)
    await cluster.close()

    step_writes: dict[str, list[int]] = {}
    canary_rollback_writes: dict[str, int] = {}
    for strategy in ("replicas", "nginx", "gateway"):
        c = await KubeCluster.connect(target(strategy), kubeconfig=str(kubeconfig), clock=clock)
        await c.describe()
        counts = []
        for percent in (5, 25, 50, 100):
            before = writes(c)
            await c.set_canary_weight(percent)
            counts.append(writes(c) - before)
        await c.set_canary_weight(50)
        before = writes(c)
        await c.rollback()
        canary_rollback_writes[strategy] = writes(c) - before
        step_writes[strategy] = counts
        await c.close()
    server.terminate()
    await server.wait()
    shutil.rmtree(tmp, ignore_errors=True)

    ms = lambda v: f"{v * 1000:8.2f}"  # noqa: E731
    print(f"rollback latency over {runs} runs (ms)")
    print(f"{'':28}{'p50':>8} {'p99':>8} {'mean':>8}")
    print(
        f"{'deploydeck rollback()':28}{ms(pct(ours, 0.5))} {ms(pct(ours, 0.99))} {ms(statistics.fmean(ours))}"
    )
    if theirs:
        print(
            f"{'kubectl rollout undo':28}{ms(pct(theirs, 0.5))} {ms(pct(theirs, 0.99))} {ms(statistics.fmean(theirs))}"
        )
        print(f"ratio p50 ours/kubectl: {pct(ours, 0.5) / pct(theirs, 0.5):.2f}")
    else:
        print("kubectl rollout undo: kubectl not installed, not measured")
    print()
    print("API writes")
    print(
        f"{'strategy':10} {'per step 5/25/50/100':>22} {'rollback in canary':>20} {'rollback of stable':>20}"
    )
    for strategy, counts in step_writes.items():
        stable = f"{max(rollback_writes)}" if strategy == "replicas" else "-"
        print(
            f"{strategy:10} {'/'.join(map(str, counts)):>22} {canary_rollback_writes[strategy]:>20} {stable:>20}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
