"""Rollback latency of the Kubernetes adapter vs `kubectl rollout undo`, and API writes per operation.

Runs against the simulated API server (its own process) over real loopback HTTP, with pods that
take --pod-start seconds (real time) to become Ready, as on a cluster:
    python benchmarks/bench_kube.py [--runs 10] [--pod-start 2]

Reported separately: the rollback CALL (what the operator waits for before traffic is safe to
leave alone), time to the first traffic change, and time until ready capacity is fully restored
(bounded below by the pod start time: deploydeck never takes pods away before their replacements
are Ready).
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


async def start_server(tmp: Path, pod_start_s: float) -> tuple[asyncio.subprocess.Process, Path]:
    """The simulated API server in its own process, so its controller does not share our event loop."""
    kubeconfig = tmp / "config"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.sim.kube", "--kubeconfig", str(kubeconfig), "--namespace", NS,
        "--deployment", STABLE, "--image", "shop:1", "--replicas", "10", "--pod-ready-delay", str(pod_start_s),
        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    for _ in range(2):  # the URL line, then the kubectl hint: the kubeconfig exists by then
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError("the simulated API server did not start")
    return proc, kubeconfig


def first_write_timer(cluster: KubeCluster) -> list[float]:
    """Records perf_counter() at the end of every write the adapter makes (the traffic changes)."""
    stamps: list[float] = []
    original = cluster.api.request

    async def request(method: str, path: str, **kw: object) -> dict[str, object]:
        out = await original(method, path, **kw)  # type: ignore[arg-type]
        if method != "GET":
            stamps.append(time.perf_counter())
        return out

    cluster.api.request = request  # type: ignore[method-assign]
    return stamps


async def main(runs: int, pod_start_s: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-kube-"))
    server, kubeconfig = await start_server(tmp, pod_start_s)
    clock = SystemClock()
    timeout = 60 + 10 * pod_start_s

    def target(strategy: str) -> TargetSpec:
        return TargetSpec(
            namespace=NS,
            deployment=STABLE,
            canary_deployment=CANARY,
            strategy=strategy,
            ingress="web-canary",
            httproute="web",
            rollout_timeout=timeout,
        )

    cluster = await KubeCluster.connect(target("replicas"), kubeconfig=str(kubeconfig), clock=clock)
    cluster.poll_interval_s = 0.02
    ours: list[float] = []
    ours_restored: list[float] = []
    rollback_writes: list[int] = []
    for n in range(runs):
        await cluster.deploy(f"shop:{n + 2}", "stable")
        await cluster.wait_ready("stable", timeout)
        before = writes(cluster)
        started = time.perf_counter()
        report = await cluster.rollback()
        ours.append(time.perf_counter() - started)  # the undo patch has been applied when rollback returns
        rollback_writes.append(writes(cluster) - before)
        assert report.stable_restored, report.detail
        await cluster.wait_ready("stable", timeout)
        ours_restored.append(time.perf_counter() - started)

    theirs: list[float] = []
    theirs_restored: list[float] = []
    binary = shutil.which("kubectl") or "/usr/bin/kubectl"
    if os.access(binary, os.X_OK):
        for n in range(runs):
            await cluster.deploy(f"shop:k{n}", "stable")
            await cluster.wait_ready("stable", timeout)
            started = time.perf_counter()
            theirs.append(await kubectl_undo(binary, kubeconfig, tmp))
            await cluster.wait_ready("stable", timeout)
            theirs_restored.append(time.perf_counter() - started)
    await cluster.close()

    step_writes: dict[str, list[int]] = {}
    canary_rollback_writes: dict[str, int] = {}
    first_change: dict[str, float] = {}
    restored: dict[str, float] = {}
    for strategy in ("replicas", "nginx", "gateway"):
        c = await KubeCluster.connect(target(strategy), kubeconfig=str(kubeconfig), clock=clock)
        c.poll_interval_s = 0.02
        await c.deploy(f"shop:canary-{strategy}", "canary")
        counts = []
        for percent in (5, 25, 50, 100):
            before = writes(c)
            await c.set_canary_weight(percent)
            counts.append(writes(c) - before)
        await c.set_canary_weight(50)
        stamps = first_write_timer(c)
        before = writes(c)
        started = time.perf_counter()
        await c.rollback()
        await c.wait_ready("stable", timeout)
        restored[strategy] = time.perf_counter() - started
        first_change[strategy] = (stamps[0] - started) if stamps else float("nan")
        canary_rollback_writes[strategy] = writes(c) - before
        step_writes[strategy] = counts
        await c.close()
    server.terminate()
    await server.wait()
    shutil.rmtree(tmp, ignore_errors=True)

    ms = lambda v: f"{v * 1000:9.1f}"  # noqa: E731
    print(f"pods become Ready {pod_start_s:g} s after they start; {runs} runs")
    print(f"{'rollback of stable (ms)':34}{'p50':>9} {'p99':>9} {'mean':>9}   ready restored p50")
    row = f"{'deploydeck rollback() call':34}{ms(pct(ours, 0.5))} {ms(pct(ours, 0.99))} {ms(statistics.fmean(ours))}"
    print(f"{row}   {ms(pct(ours_restored, 0.5))}")
    if theirs:
        row = f"{'kubectl rollout undo':34}{ms(pct(theirs, 0.5))} {ms(pct(theirs, 0.99))} {ms(statistics.fmean(theirs))}"
        print(f"{row}   {ms(pct(theirs_restored, 0.5))}")
        ratio = pct(ours, 0.5) / pct(theirs, 0.5)
        print(f"ratio p50 ours/kubectl: {ratio:.2f} (goal <= 0.33)")
    else:
        print("kubectl rollout undo: kubectl not installed, not measured")
    verdict = "met" if pct(ours, 0.5) <= 0.030 else "NOT met"
    print(f"rollback call p50 {pct(ours, 0.5) * 1000:.1f} ms (goal <= 30 ms: {verdict})")
    print()
    print(
        "rollback from the 50 % step (ms)      first traffic change (goal <= 30)   ready restored (goal <= pod start + 2 s)"
    )
    for strategy in first_change:
        print(f"{strategy:38}{ms(first_change[strategy]):>20}   {ms(restored[strategy]):>20}")
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
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pod-start", type=float, default=2.0, help="seconds until a new pod is Ready")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.pod_start))
