"""The simulated Kubernetes API server over real HTTP: discovery, semantics, controller, faults."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from core.sim.kube import SimKubeServer
from core.sim.kube.errors import ApiError
from core.sim.kube.patch import json_patch, merge_patch, strategic_merge
from core.sim.kube.selectors import label_matcher
from tests.kube_helpers import CANARY, INGRESS, NS, ROUTE, STABLE, Sim, eventually, sim, start_sim

__all__ = ["sim"]

DEPLOY = f"/apis/apps/v1/namespaces/{NS}/deployments"


async def call(
    s: Sim,
    method: str,
    path: str,
    body: Any = None,
    ctype: str = "application/json",
    token: str | None = None,
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as session:
        data = json.dumps(body) if body is not None else None
        async with session.request(method, s.server.url + path, data=data, headers=headers) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text.startswith(("{", "[")) else text), resp.headers


def new_deployment(name: str, image: str = "api:1", replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "api", "image": image}, {"name": "proxy", "image": "envoy:1"}]
                },
            },
        },
    }


async def test_discovery_documents(sim: Sim) -> None:
    code, version, _ = await call(sim, "GET", "/version")
    assert code == 200 and version["major"] == "1"
    _, api, _ = await call(sim, "GET", "/api")
    assert api["versions"] == ["v1"]
    _, groups, _ = await call(sim, "GET", "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {"apps", "networking.k8s.io", "gateway.networking.k8s.io", "coordination.k8s.io"} <= names
    _, apps, _ = await call(sim, "GET", "/apis/apps/v1")
    resources = {r["name"]: r for r in apps["resources"]}
    assert resources["deployments"]["shortNames"] == ["deploy"]
    assert {"deployments/scale", "deployments/status", "replicasets"} <= set(resources)
    code, _, _ = await call(sim, "GET", "/apis/nothing.example/v1")
    assert code == 404


async def test_create_conflict_and_status_bodies(sim: Sim) -> None:
    code, created, _ = await call(sim, "POST", DEPLOY, new_deployment("api"))
    assert code == 201 and created["metadata"]["generation"] == 1
    code, body, _ = await call(sim, "POST", DEPLOY, new_deployment("api"))
    assert code == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == 'deployments.apps "api" already exists'
    code, body, _ = await call(sim, "GET", f"{DEPLOY}/missing")
    assert (code, body["kind"], body["reason"]) == (404, "Status", "NotFound")
    assert body["details"] == {"name": "missing", "group": "apps", "kind": "deployments"}
    # the live controller may write the Deployment (revision, status) between our GET and PUT; a
    # correct client re-reads on 409, as here, until its update lands on the version it read
    for _ in range(50):
        _, fresh, _ = await call(sim, "GET", f"{DEPLOY}/api")
        stale = dict(fresh)
        stale["spec"] = {**fresh["spec"], "replicas": 5}
        code, _, _ = await call(sim, "PUT", f"{DEPLOY}/api", stale)
        if code != 409:
            break
    assert code == 200
    code, body, _ = await call(sim, "PUT", f"{DEPLOY}/api", stale)  # same old resourceVersion again
    assert code == 409 and body["reason"] == "Conflict" and "the object has been modified" in body["message"]
    broken = new_deployment("bad")
    broken["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    code, body, _ = await call(sim, "POST", DEPLOY, broken)
    assert code == 422 and body["reason"] == "Invalid"
    assert "spec.template.metadata.labels" in body["message"]


async def test_resource_version_and_generation(sim: Sim) -> None:
    _, created, _ = await call(sim, "POST", DEPLOY, new_deployment("api"))
    rv0 = int(created["metadata"]["resourceVersion"])
    patch = {"metadata": {"annotations": {"note": "x"}}}
    _, annotated, _ = await call(sim, "PATCH", f"{DEPLOY}/api", patch, "application/merge-patch+json")
    assert int(annotated["metadata"]["resourceVersion"]) > rv0
    # apps/v1 bumps a Deployment's generation on annotation changes too (they reach its ReplicaSets)
    assert annotated["metadata"]["generation"] == 2
    _, labelled, _ = await call(
        sim, "PATCH", f"{DEPLOY}/api", {"metadata": {"labels": {"x": "y"}}}, "application/merge-patch+json"
    )
    assert labelled["metadata"]["generation"] == 2  # labels do not
    spec_patch = {"spec": {"replicas": 3}}
    _, scaled, _ = await call(sim, "PATCH", f"{DEPLOY}/api", spec_patch, "application/merge-patch+json")
    assert scaled["metadata"]["generation"] == 3
    await eventually(lambda: sim.deployment("api")["status"].get("observedGeneration") == 3, what="observed")


async def test_strategic_merge_keeps_other_containers_and_json_patch_test_fails(sim: Sim) -> None:
    await call(sim, "POST", DEPLOY, new_deployment("api"))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}}
    _, out, _ = await call(sim, "PATCH", f"{DEPLOY}/api", patch, "application/strategic-merge-patch+json")
    images = {c["name"]: c["image"] for c in out["spec"]["template"]["spec"]["containers"]}
    assert images == {"api": "api:2", "proxy": "envoy:1"}
    _, out, _ = await call(sim, "PATCH", f"{DEPLOY}/api", patch, "application/merge-patch+json")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["api"]
    failing = [
        {"op": "test", "path": "/spec/replicas", "value": 99},
        {"op": "replace", "path": "/spec/replicas", "value": 1},
    ]
    code, body, _ = await call(sim, "PATCH", f"{DEPLOY}/api", failing, "application/json-patch+json")
    assert code == 422 and "test failed" in body["message"]
    assert sim.deployment("api")["spec"]["replicas"] == 2


async def test_dry_run_does_not_persist(sim: Sim) -> None:
    code, out, _ = await call(sim, "POST", DEPLOY + "?dryRun=All", new_deployment("ghost"))
    assert code == 201 and out["metadata"]["name"] == "ghost"
    code, _, _ = await call(sim, "GET", f"{DEPLOY}/ghost")
    assert code == 404
    patch = {"spec": {"replicas": 7}}
    _, out, _ = await call(
        sim, "PATCH", f"{DEPLOY}/{STABLE}?dryRun=All", patch, "application/merge-patch+json"
    )
    assert out["spec"]["replicas"] == 7 and sim.deployment()["spec"]["replicas"] == 10


async def test_label_selector_on_list(sim: Sim) -> None:
    _, out, _ = await call(sim, "GET", f"{DEPLOY}?labelSelector=track%3Dcanary")
    assert [d["metadata"]["name"] for d in out["items"]] == [CANARY]
    _, out, _ = await call(sim, "GET", f"{DEPLOY}?labelSelector=track+in+(stable,canary),app%3D{STABLE}")
    assert len(out["items"]) == 2
    _, out, _ = await call(sim, "GET", f"{DEPLOY}?labelSelector=!track")
    assert out["items"] == []


async def test_watch_streams_changes_and_ends_at_timeout(sim: Sim) -> None:
    _, listed, _ = await call(sim, "GET", DEPLOY)
    rv = listed["metadata"]["resourceVersion"]
    patch = {"metadata": {"labels": {"seen": "yes"}}}
    await call(sim, "PATCH", f"{DEPLOY}/{STABLE}", patch, "application/merge-patch+json")
    events = []
    async with aiohttp.ClientSession() as session:
        url = f"{sim.server.url}{DEPLOY}?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        async with session.get(url) as resp:
            async for line in resp.content:
                events.append(json.loads(line))
    assert events and events[0]["type"] == "MODIFIED"
    assert any(e["object"]["metadata"].get("labels", {}).get("seen") == "yes" for e in events)
    # too old: the real server accepts the watch and sends one ERROR event carrying the 410 Status
    async with aiohttp.ClientSession() as session:
        url = f"{sim.server.url}{DEPLOY}?watch=true&resourceVersion=1&timeoutSeconds=1"
        async with session.get(url) as resp:
            code, lines = resp.status, [json.loads(line) async for line in resp.content]
    assert code == 200 and [e["type"] for e in lines] == ["ERROR"]
    assert (lines[0]["object"]["code"], lines[0]["object"]["reason"]) == (410, "Expired")


async def test_controller_creates_revisions_and_ready_status(sim: Sim) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop:2.0"}]}}}}
    await call(sim, "PATCH", f"{DEPLOY}/{STABLE}", patch, "application/strategic-merge-patch+json")

    def rolled() -> bool:
        d = sim.deployment()
        st = d["status"]
        return (
            st.get("updatedReplicas") == 10 and st.get("availableReplicas") == 10 and st.get("replicas") == 10
        )

    await eventually(rolled, what="rollout of shop:2.0")
    owned = [
        rs
        for rs in sim.replicasets()
        if rs["metadata"]["name"].startswith(f"{STABLE}-") and "canary" not in rs["metadata"]["name"]
    ]
    revisions = sorted(
        int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) for rs in owned
    )
    assert revisions == [1, 2]
    new = next(
        rs for rs in owned if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    )
    assert (
        new["spec"]["template"]["metadata"]["labels"]["pod-template-hash"]
        == new["metadata"]["name"].rsplit("-", 1)[1]
    )
    assert sim.deployment()["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    progressing = next(c for c in sim.deployment()["status"]["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"


async def test_scale_subresource(sim: Sim) -> None:
    code, scale, _ = await call(sim, "GET", f"{DEPLOY}/{STABLE}/scale")
    assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 10
    _, scale, _ = await call(
        sim, "PATCH", f"{DEPLOY}/{STABLE}/scale", {"spec": {"replicas": 4}}, "application/merge-patch+json"
    )
    assert scale["spec"]["replicas"] == 4 and sim.deployment()["spec"]["replicas"] == 4


async def test_fault_injection(sim: Sim) -> None:
    sim.server.faults.error_rate_500 = 1.0
    code, body, _ = await call(sim, "GET", f"{DEPLOY}/{STABLE}")
    assert code == 500 and body["reason"] == "InternalError"
    sim.server.faults.error_rate_500 = 0.0
    sim.server.faults.error_rate_429 = 1.0
    code, _, headers = await call(sim, "GET", f"{DEPLOY}/{STABLE}")
    assert code == 429 and headers["Retry-After"] == "1"
    sim.server.faults.error_rate_429 = 0.0
    sim.server.faults.force_conflicts = 1
    patch = {"metadata": {"labels": {"a": "b"}}}
    code, _, _ = await call(sim, "PATCH", f"{DEPLOY}/{STABLE}", patch, "application/merge-patch+json")
    assert code == 409
    code, _, _ = await call(sim, "PATCH", f"{DEPLOY}/{STABLE}", patch, "application/merge-patch+json")
    assert code == 200
    sim.server.faults.drop_rate = 1.0
    with pytest.raises(aiohttp.ClientError):
        await call(sim, "GET", f"{DEPLOY}/{STABLE}")
    sim.server.faults.drop_rate = 0.0
    code, _, _ = await call(sim, "GET", "/version")  # discovery is never faulted
    assert code == 200


async def test_token_auth_and_forbidden_message(tmp_path) -> None:
    s = await start_sim(tmp_path, tokens={"reader": {"get", "list", "watch"}, "admin": None})
    try:
        code, body, _ = await call(s, "GET", f"{DEPLOY}/{STABLE}")
        assert code == 401 and body["reason"] == "Unauthorized"
        code, _, _ = await call(s, "GET", f"{DEPLOY}/{STABLE}", token="reader")
        assert code == 200
        patch = {"spec": {"replicas": 1}}
        code, body, _ = await call(
            s, "PATCH", f"{DEPLOY}/{STABLE}", patch, "application/merge-patch+json", token="reader"
        )
        assert code == 403 and body["reason"] == "Forbidden"
        assert (
            'cannot patch resource "deployments" in API group "apps" in the namespace "prod"'
            in body["message"]
        )
        code, _, _ = await call(
            s, "PATCH", f"{DEPLOY}/{STABLE}", patch, "application/merge-patch+json", token="admin"
        )
        assert code == 200
    finally:
        await s.server.stop()


async def test_canary_weight_per_strategy(sim: Sim) -> None:
    w = sim.server.canary_weight
    assert w(NS, STABLE, CANARY, "nginx", ingress=INGRESS) == 0
    assert w(NS, STABLE, CANARY, "gateway", httproute=ROUTE) == 0
    assert w(NS, STABLE, CANARY, "replicas") == 0
    ing = f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses/{INGRESS}"
    patch = {"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "30"}}}
    await call(sim, "PATCH", ing, patch, "application/merge-patch+json")
    assert w(NS, STABLE, CANARY, "nginx", ingress=INGRESS) == 30
    await call(sim, "PATCH", f"{DEPLOY}/{CANARY}", {"spec": {"replicas": 5}}, "application/merge-patch+json")
    await eventually(lambda: w(NS, STABLE, CANARY, "replicas") == 33, what="ready canary pods")
    assert sim.server.deployment_image(NS, STABLE) == "shop:1.0"
    assert sim.server.deployment_image(NS, "nope") is None


async def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await SimKubeServer().start(host="0.0.0.0")


# --- pure pieces ---------------------------------------------------------------------


def test_strategic_merge_directives() -> None:
    doc = {
        "spec": {
            "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}],
            "finalizers": ["x"],
        }
    }
    out = strategic_merge(
        doc, {"spec": {"containers": [{"name": "b", "$patch": "delete"}, {"name": "c", "image": "3"}]}}
    )
    assert [c["name"] for c in out["spec"]["containers"]] == ["a", "c"]
    out = strategic_merge(
        doc,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "image": "2"}],
            }
        },
    )
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [("b", "1"), ("a", "2")]
    out = strategic_merge(doc, {"spec": {"finalizers": ["y"], "containers": None}})
    assert out["spec"] == {"finalizers": ["x", "y"]}


def test_merge_and_json_patch() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(
        doc, [{"op": "add", "path": "/a/-", "value": 3}, {"op": "move", "from": "/b/c", "path": "/d"}]
    )
    assert out == {"a": [1, 2, 3], "b": {}, "d": 1}
    with pytest.raises(ApiError) as err:
        json_patch(doc, [{"op": "remove", "path": "/zzz"}])
    assert err.value.code == 422


def test_label_selector_parser() -> None:
    m = label_matcher("app=web,tier notin (db),!legacy")
    assert m({"metadata": {"labels": {"app": "web", "tier": "front"}}})
    assert not m({"metadata": {"labels": {"app": "web", "tier": "db"}}})
    assert not m({"metadata": {"labels": {"app": "web", "legacy": "1"}}})
    with pytest.raises(ApiError):
        label_matcher("app=(")


async def test_default_and_kube_system_namespaces_exist(sim: Sim) -> None:
    for namespace in ("default", "kube-system"):
        code, body, _ = await call(sim, "GET", f"/api/v1/namespaces/{namespace}")
        assert (code, body["metadata"]["name"]) == (200, namespace)
    code, _, _ = await call(
        sim, "POST", "/apis/apps/v1/namespaces/default/deployments", new_deployment("api")
    )
    assert code == 201


async def test_strategic_merge_patch_on_a_custom_resource_is_415(sim: Sim) -> None:
    path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/{ROUTE}"
    patch = {"metadata": {"labels": {"x": "y"}}}
    code, body, _ = await call(sim, "PATCH", path, patch, "application/strategic-merge-patch+json")
    assert (code, body["reason"]) == (415, "UnsupportedMediaType")
    code, _, _ = await call(sim, "PATCH", path, patch, "application/merge-patch+json")
    assert code == 200
