"""Many services in one simulated API server (issue 12's fleet): seeding without settling each one,
and the controller's per-Deployment view of pods, stay exact."""

from __future__ import annotations

from core.sim.kube import SimKubeServer
from core.sim.kube.controller import DEPLOYMENTS, REPLICASETS
from core.sim.kube.pods import PODS, is_ready

NS = "fleet"


def _owned_pods(server: SimKubeServer, deployment: str) -> list[dict]:
    rs_uids = {
        rs["metadata"]["uid"]
        for rs in server.store.scan(REPLICASETS, NS)
        if any(r.get("name") == deployment for r in rs["metadata"].get("ownerReferences") or [])
    }
    return [
        p
        for p in server.store.scan(PODS, NS)
        if any(r.get("uid") in rs_uids for r in p["metadata"].get("ownerReferences") or [])
    ]


def test_seeding_without_settling_then_one_settle_rolls_every_service_out() -> None:
    server = SimKubeServer(pod_ready_delay_s=0.01)
    for i in range(6):
        server.seed_service(
            namespace=NS,
            deployment=f"svc-{i}",
            canary_deployment=f"svc-{i}-canary",
            image=f"app:{i}",
            replicas=i + 1,
            settle=i == 5,
        )
    for i in range(6):
        status = server.store.get(DEPLOYMENTS, NS, f"svc-{i}")["status"]
        # each Deployment counts its own pods only, never a neighbour's in the same namespace
        assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == (i + 1,) * 3
        pods = _owned_pods(server, f"svc-{i}")
        assert len(pods) == i + 1 and all(is_ready(p) for p in pods)
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {f"app:{i}"}
        canary = server.store.get(DEPLOYMENTS, NS, f"svc-{i}-canary")["status"]
        assert canary.get("replicas", 0) == 0


def test_a_scale_after_a_pass_is_seen_by_the_next_pass() -> None:
    # the pods-by-owner index is kept between reads: a write must invalidate it
    server = SimKubeServer(pod_ready_delay_s=0.01)
    for i in range(2):
        server.seed_service(
            namespace=NS, deployment=f"svc-{i}", canary_deployment=f"svc-{i}-canary", image="app:1"
        )
    d = server.store.get(DEPLOYMENTS, NS, "svc-1")
    d["spec"]["replicas"] = 3
    server.store.update(DEPLOYMENTS, NS, "svc-1", d)
    server.controller.settle_now()
    assert server.store.get(DEPLOYMENTS, NS, "svc-1")["status"]["availableReplicas"] == 3
    assert server.store.get(DEPLOYMENTS, NS, "svc-0")["status"]["availableReplicas"] == 10
    assert len(_owned_pods(server, "svc-1")) == 3
