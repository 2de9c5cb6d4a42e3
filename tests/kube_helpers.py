"""Helpers for the Kubernetes tests: a seeded simulated API server, kubectl runs, adapter targets.

Import the fixtures explicitly: ``from tests.kube_helpers import sim  # noqa: F401``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.clock import Clock, SystemClock
from core.plan import TargetSpec
from core.sim.kube import FaultConfig, SimKubeServer
from tests.real_servers import require_binary

KUBECTL = "/usr/bin/kubectl"
NS = "prod"
STABLE = "web"
CANARY = "web-canary"
INGRESS = "web-canary-ing"
ROUTE = "web-route"


def kubectl_path() -> str:
    """kubectl, or skip (fail under DEPLOYDECK_REQUIRE_REAL=1) when it is not installed."""
    return require_binary(KUBECTL)


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path
    home: Path

    async def run(self, *args: str, check: bool = True, timeout_s: float = 30.0) -> tuple[int, str, str]:
        # kubectl runs as a child process so the in-process server keeps answering meanwhile
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "KUBECACHEDIR": str(self.home / "cache"),
            "KUBECONFIG": str(self.kubeconfig),
        }
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--kubeconfig",
            str(self.kubeconfig),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        code = proc.returncode if proc.returncode is not None else -1
        if check and code != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {code}: {err.decode()}")
        return code, out.decode(), err.decode()

    async def json(self, *args: str) -> Any:
        _, out, _ = await self.run(*args, "-o", "json")
        return json.loads(out)


@dataclass
class Sim:
    server: SimKubeServer
    kubeconfig: Path
    tmp: Path

    def target(self, strategy: str = "replicas", **extra: Any) -> TargetSpec:
        fields: dict[str, Any] = {
            "namespace": NS,
            "deployment": STABLE,
            "canary_deployment": CANARY,
            "service": STABLE,
            "strategy": strategy,
            "ingress": INGRESS,
            "httproute": ROUTE,
        }
        fields.update(extra)
        return TargetSpec(**fields)

    async def cluster(self, strategy: str = "replicas", clock: Clock | None = None, **extra: Any) -> Any:
        from core.adapters.kubernetes import KubeCluster

        return await KubeCluster.connect(
            self.target(strategy, **extra), kubeconfig=str(self.kubeconfig), clock=clock or SystemClock()
        )

    def kubectl(self) -> Kubectl:
        return Kubectl(kubectl_path(), self.kubeconfig, self.tmp / "home")

    def deployment(self, name: str = STABLE) -> dict[str, Any]:
        from core.sim.kube.controller import DEPLOYMENTS

        return self.server.store.get(DEPLOYMENTS, NS, name)

    def replicasets(self) -> list[dict[str, Any]]:
        from core.sim.kube.controller import REPLICASETS

        return self.server.store.list(REPLICASETS, NS, lambda _o: True)


async def start_sim(
    tmp: Path,
    *,
    replicas: int = 10,
    tokens: dict[str, set[str] | None] | None = None,
    token: str | None = None,
    pod_ready_delay_s: float = 0.01,
    clock: Clock | None = None,
    tls: bool = False,
) -> Sim:
    """`pod_ready_delay_s` is in the server's clock: with a VirtualClock shared with the adapter,
    a realistic 3 s (or 30 s) pod start costs no wall time. tls=True serves HTTPS (kubectl sends
    tokens only over TLS; in-cluster clients dial https)."""
    server = SimKubeServer(
        pod_ready_delay_s=pod_ready_delay_s, faults=FaultConfig(seed=7), tokens=tokens, clock=clock, tls=tls
    )
    await server.start()
    server.seed_service(
        namespace=NS,
        deployment=STABLE,
        canary_deployment=CANARY,
        image="shop:1.0",
        replicas=replicas,
        service=STABLE,
        ingress=INGRESS,
        httproute=ROUTE,
    )
    kubeconfig = server.write_kubeconfig(tmp / "kube" / "config", token=token)
    (tmp / "home").mkdir(exist_ok=True)
    return Sim(server, kubeconfig, tmp)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    s = await start_sim(tmp_path)
    try:
        yield s
    finally:
        await s.server.stop()


async def eventually(check: Any, timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll a sync predicate with a real deadline (the server's pods become ready in real time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


HPA_KEY = ("autoscaling", "v2", "horizontalpodautoscalers")


def add_hpa(sim: Sim, monkeypatch: pytest.MonkeyPatch, behavior: dict[str, Any] | None = None) -> Any:
    """An HPA on the stable Deployment. The simulator does not serve autoscaling/v2 (yet): this
    registers the resource for this test only, as plain stored objects (no autoscaling loop)."""
    from core.sim.kube import resources

    res = resources.Resource(
        "autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler"
    )
    monkeypatch.setitem(resources.BY_PATH, HPA_KEY, res)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": STABLE},
        "minReplicas": 4,
        "maxReplicas": 30,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
            }
        ],
    }
    if behavior is not None:
        spec["behavior"] = behavior
    sim.server.store.create(res, NS, {"metadata": {"name": f"{STABLE}-hpa"}, "spec": spec})
    return res
