"""The ReplicaSet/pod tree and pod events/log (core.cluster_view) on every cluster backend: the
simulated API server (its pods/log subresource as strict as Kubernetes'), KubeCluster over it, the
in-memory SimCluster, and kubectl against the simulated server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from core.cluster_view import ClusterInspector, ClusterTree
from core.ports import ClusterError
from core.sim.kube.controller import DEPLOYMENTS
from core.sim.kube.pods import PODS
from core.sim.world import SimCluster
from tests.kube_helpers import NS, STABLE, Sim, eventually, sim  # noqa: F401


def _pods(s: Sim) -> list[dict]:
    return s.server.store.list(PODS, NS, lambda _o: True)


async def _get(s: Sim, path: str, method: str = "GET") -> tuple[int, str, str]:
    """A raw request with the kubeconfig's token (aiohttp: the adapter parses JSON, a log is text)."""
    import aiohttp
    import yaml

    config = yaml.safe_load(s.kubeconfig.read_text())
    token = config["users"][0]["user"].get("token")  # a server without tokens lets anyone in
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, s.server.url + path, headers=headers) as r,
    ):
        kind, text = r.headers.get("Content-Type", ""), await r.text()
        # an error is a JSON Status: its message, as kubectl prints it
        return r.status, kind, json.loads(text).get("message", text) if kind == "application/json" else text


async def test_pods_log_serves_text_with_tail_and_refuses_as_kubernetes_does(sim: Sim) -> None:  # noqa: F811
    await eventually(lambda: all(p["status"].get("phase") == "Running" for p in _pods(sim)), what="pods up")
    pod = _pods(sim)[0]
    name = pod["metadata"]["name"]
    container = pod["spec"]["containers"][0]["name"]
    base = f"/api/v1/namespaces/{NS}/pods/{name}/log"
    status, kind, text = await _get(sim, base)
    assert (status, kind) == (200, "text/plain")
    assert text.endswith("listening on :8080, ready\n")
    status, _, text = await _get(sim, f"{base}?tailLines=1&container={container}")
    assert status == 200 and text.count("\n") == 1 and "listening" in text
    status, _, text = await _get(sim, f"{base}?tailLines=1&timestamps=true")
    stamp, _, line = text.partition(" ")
    assert line == "listening on :8080, ready\n" and stamp.endswith("Z") and "T" in stamp
    status, _, text = await _get(sim, f"{base}?tailLines=0")
    assert (status, text) == (200, "")
    status, _, text = await _get(sim, f"{base}?container=nope")
    assert status == 400 and f"container nope is not valid for pod {name}" in text
    status, _, text = await _get(sim, f"{base}?tailLines=-1")
    assert status == 422 and "tailLines: Invalid value: -1: must be greater than or equal to 0" in text
    status, _, text = await _get(sim, f"{base}?tailLines=x")
    assert status == 400 and "invalid syntax" in text
    status, _, _ = await _get(sim, base, method="PUT")
    assert status == 405
    status, _, text = await _get(sim, f"/api/v1/namespaces/{NS}/pods/ghost/log")
    assert status == 404 and 'pods "ghost" not found' in text
    status, _, text = await _get(sim, "/api/v1")
    assert status == 200
    assert {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]} in (
        json.loads(text)["resources"]
    )


async def test_a_pod_not_started_has_no_log_yet_and_says_why(tmp_path: Path) -> None:
    from tests.kube_helpers import start_sim

    s = await start_sim(tmp_path, pod_ready_delay_s=3600)
    try:
        pending = [p for p in _pods(s) if p["status"]["phase"] == "Pending"]
        if not pending:  # seeded pods start Ready: a new template makes new (waiting) pods
            body = s.server.store.get(DEPLOYMENTS, NS, STABLE)
            body["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:2.0"
            s.server.store.update(DEPLOYMENTS, NS, STABLE, body)
            s.server.controller.kick()
            await eventually(
                lambda: any(p["status"]["phase"] == "Pending" for p in _pods(s)), what="a new pod"
            )
            pending = [p for p in _pods(s) if p["status"]["phase"] == "Pending"]
        pod = pending[0]
        waiting = pod["status"]["containerStatuses"][0]
        assert waiting["ready"] is False and waiting["state"]["waiting"]["reason"] == "ContainerCreating"
        name = pod["metadata"]["name"]
        status, _, text = await _get(s, f"/api/v1/namespaces/{NS}/pods/{name}/log")
        assert status == 400
        assert f'container "app" in pod "{name}" is waiting to start: ContainerCreating' in text
        cluster = await s.cluster()
        try:
            detail = await cluster.pod_detail(name)
            assert detail.log == [] and "waiting to start" in (detail.log_error or "")
            assert any(e.reason == "Scheduled" for e in detail.events)
            tree = await cluster.tree()
            shown = {p.name: p for rs in tree.replica_sets for p in rs.pods}
            assert shown[name].status == "ContainerCreating" and shown[name].ready == 0
        finally:
            await cluster.close()
    finally:
        await s.server.stop()


async def _canary_at_25(cluster: object) -> ClusterTree:
    await cluster.deploy("shop:2.0", "canary")  # type: ignore[attr-defined]
    change = await cluster.set_canary_weight(25)  # type: ignore[attr-defined]
    tree = await cluster.tree()  # type: ignore[attr-defined]
    # configured: what the traffic object was set to (3 of 10 replicas is 30 %, not the 25 % asked)
    assert tree.weight_configured == change.effective
    return tree


def _check_tree_at_25(tree: ClusterTree, stable_image: str, replicas: int, actual: int) -> None:
    roles = {rs.role: rs for rs in tree.replica_sets}
    assert set(roles) == {"stable", "canary"}
    assert tree.stable_image == stable_image and tree.canary_image == "shop:2.0"
    assert roles["canary"].image == "shop:2.0" and roles["stable"].image == stable_image
    # actual: the share the ready endpoints carry, from the pods themselves
    ready = roles["canary"].ready + roles["stable"].ready
    assert tree.weight_actual == round(100 * roles["canary"].ready / ready) == actual
    assert roles["canary"].desired + roles["stable"].desired == replicas
    assert len(roles["canary"].pods) == roles["canary"].desired == roles["canary"].ready
    assert all(p.status == "Running" and p.ready == p.containers == 1 for p in roles["canary"].pods)
    assert tree.stable_revision is not None and roles["stable"].revision == tree.stable_revision


async def test_kube_adapter_tree_and_pod_detail_at_a_25_percent_canary(sim: Sim) -> None:  # noqa: F811
    cluster = await sim.cluster()
    try:
        tree = await _canary_at_25(cluster)
        _check_tree_at_25(tree, "shop:1.0", 10, actual=30)
        canary = next(rs for rs in tree.replica_sets if rs.role == "canary")
        assert canary.status == "Healthy"
        detail = await cluster.pod_detail(canary.pods[0].name, tail=5)
        assert [e.reason for e in detail.events if e.reason in {"Scheduled", "Started"}] == [
            "Scheduled",
            "Started",
        ]
        assert detail.log[-1].endswith("listening on :8080, ready") and len(detail.log) <= 5
        with pytest.raises(ClusterError, match="not found"):
            await cluster.pod_detail("ghost")
    finally:
        await cluster.close()


async def test_in_memory_cluster_answers_the_same_questions() -> None:
    from core.clock import VirtualClock

    clock = VirtualClock()
    cluster = SimCluster(stable_image="shop:1.0", replicas=8, clock=clock, deployment="web")
    tree = await _canary_at_25(cluster)
    _check_tree_at_25(tree, "shop:1.0", 8, actual=25)
    canary = next(rs for rs in tree.replica_sets if rs.role == "canary")
    assert canary.name.startswith("web-canary-")
    await clock.sleep(90)
    detail = await cluster.pod_detail(canary.pods[0].name)
    assert [e.reason for e in detail.events][-1] == "Started"
    assert "listening on :8080, ready" in detail.log[1]
    with pytest.raises(ClusterError, match="not found"):
        await cluster.pod_detail("ghost")


async def test_the_inspector_says_when_an_adapter_cannot_answer_or_stalls() -> None:
    from core.clock import SystemClock

    class Bare:  # a Cluster without the read-only views
        pass

    with pytest.raises(ClusterError, match="cannot list"):
        await ClusterInspector(Bare(), SystemClock()).tree()

    class Stalled:
        async def tree(self) -> ClusterTree:
            await asyncio.sleep(60)
            raise AssertionError("unreachable")

        async def pod_detail(self, pod: str, tail: int = 50) -> object:
            raise AssertionError("unused")

    with pytest.raises(ClusterError, match=r"no complete answer within 0\.2s"):
        await ClusterInspector(Stalled(), SystemClock(), deadline_s=0.2).tree()


async def test_kubectl_logs_and_describe_read_the_simulated_pod(sim: Sim) -> None:  # noqa: F811
    kubectl = sim.kubectl()
    await eventually(lambda: all(p["status"].get("phase") == "Running" for p in _pods(sim)), what="pods up")
    name = _pods(sim)[0]["metadata"]["name"]
    _, out, _ = await kubectl.run("logs", "-n", NS, name, "--tail=1")
    assert out == "listening on :8080, ready\n"
    code, _, err = await kubectl.run("logs", "-n", NS, name, "-c", "nope", check=False)
    assert code != 0 and "container nope is not valid" in err
    _, out, _ = await kubectl.run("get", "pod", "-n", NS, name)
    assert "1/1" in out and "Running" in out


def test_a_deployment_scaled_to_zero_is_not_reported_as_rolled_out_pods() -> None:
    from core.adapters.kubernetes.cluster import rollout_status

    zero = {
        "metadata": {"generation": 3},
        "spec": {"replicas": 0},
        "status": {"observedGeneration": 3, "updatedReplicas": 0, "replicas": 0, "availableReplicas": 0},
    }
    done, message = rollout_status(zero)
    assert done and "scaled to 0 replicas: no pods run it yet" in message and "0 of 0" not in message


async def test_promotion_reports_stable_with_its_real_pods_not_0_of_0(tmp_path: Path) -> None:
    """Issue 15: "stable rollout … rolled out (0 of 0 available)" while kubectl showed 20/20. With the
    replicas strategy stable is at 0 while the canary carries 100 %; its pods return with weight 0."""
    from datetime import UTC, datetime

    from core.clock import VirtualClock
    from core.domain import Outcome
    from core.session import demo_plan, open_session

    session = await open_session(
        demo_plan("healthy"),
        actor="t",
        clock=VirtualClock(datetime.now(UTC).replace(microsecond=0)),  # as `demo --headless`
        sim_backend="kube",
        interactive=False,
        journal_path=tmp_path / "j.jsonl",
        approvals=["rollback-plan", "dashboards-reviewed"],
    )
    try:
        assert await asyncio.wait_for(session.rollout.run(), 60) == Outcome.COMPLETED
        lines = [
            e.message for e in session.rollout.events if e.type == "log" and "stable rollout" in e.message
        ]
        replicas = session.plan.targets.production.replicas
        assert not any("0 of 0" in line for line in lines), lines
        assert lines[-1] == (
            f"stable rollout: {replicas} of {replicas} pods ready, running {session.plan.version.image}"
        )
        status = await session.world.production.describe()
        assert status.stable_ready == status.stable_desired == replicas
    finally:
        await session.close()


async def test_reading_a_log_needs_pods_log_not_just_pods(tmp_path: Path) -> None:
    """RBAC as Kubernetes checks it: `get pods` does not grant `get pods/log`."""
    import aiohttp

    from core.sim.kube.rbac import ROLE_BINDINGS, ROLES
    from tests.kube_helpers import start_sim

    s = await start_sim(tmp_path, tokens={"admin-token": None, "viewer-token": set()})
    try:
        store = s.server.store
        g = "rbac.authorization.k8s.io"
        rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
        store.create(ROLES, NS, {"metadata": {"name": "pods-only"}, "rules": [rule]})
        subject = {"kind": "User", "apiGroup": g, "name": "sim-user-1"}
        ref = {"apiGroup": g, "kind": "Role", "name": "pods-only"}
        store.create(
            ROLE_BINDINGS, NS, {"metadata": {"name": "pods-only"}, "subjects": [subject], "roleRef": ref}
        )
        await eventually(lambda: all(p["status"].get("phase") == "Running" for p in _pods(s)), what="pods up")
        name = _pods(s)[0]["metadata"]["name"]
        headers = {"Authorization": "Bearer viewer-token"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{s.server.url}/api/v1/namespaces/{NS}/pods/{name}", headers=headers) as r:
                assert r.status == 200
            async with http.get(
                f"{s.server.url}/api/v1/namespaces/{NS}/pods/{name}/log", headers=headers
            ) as r:
                body = await r.json()
                assert r.status == 403 and 'cannot get resource "pods/log"' in body["message"], body
            rule["resources"] = ["pods", "pods/log"]
            store.update(ROLES, NS, "pods-only", {"metadata": {"name": "pods-only"}, "rules": [rule]})
            async with http.get(
                f"{s.server.url}/api/v1/namespaces/{NS}/pods/{name}/log", headers=headers
            ) as r:
                assert r.status == 200 and "listening on :8080" in await r.text()
    finally:
        await s.server.stop()
