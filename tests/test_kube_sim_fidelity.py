"""The simulated API server behaves as a real one where kubectl and the adapter can tell the difference.

Each test pins one behaviour of kube-apiserver / kube-controller-manager (the source it follows is named
in core/sim/kube); the controller runs on a hand-stepped VirtualClock so pod start and shutdown delays
are simulated seconds and every intermediate state of a rollout can be sampled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from core.clock import VirtualClock
from core.sim.kube import SimKubeServer
from core.sim.kube.controller import DEPLOYMENTS, REPLICASETS
from core.sim.kube.events import EVENTS as EVENTS_RES
from core.sim.kube.hpa import HPAS
from core.sim.kube.pods import PODS, is_ready, is_terminating
from core.sim.kube.store import Change
from core.sim.kube.strategy import resolve_fenceposts

NS = "default"
DEPLOY = f"/apis/apps/v1/namespaces/{NS}/deployments"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


async def call(
    server: SimKubeServer, method: str, path: str, body: Any = None, ctype: str = "application/json"
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        data = json.dumps(body) if body is not None else None
        async with session.request(
            method, server.url + path, data=data, headers={"Content-Type": ctype}
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text.startswith("{") else text)


def deployment(name: str, replicas: int = 10, image: str = "api:1", **rolling: Any) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "api", "image": image}]},
        },
    }
    if rolling:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": rolling}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
async def stepped() -> AsyncIterator[SimKubeServer]:
    """A server whose pods take 5 simulated seconds to start and 3 to shut down; time moves by hand."""
    server = SimKubeServer(clock=VirtualClock(auto_advance=False), pod_ready_delay_s=5.0, pod_shutdown_s=3.0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def quiet(server: SimKubeServer) -> None:
    """Wait (real time) until the controller stops writing: every reaction to the last change is in."""
    last = None
    while last != server.store.resource_version:
        last = server.store.resource_version
        await asyncio.sleep(0.02)


async def advance(server: SimKubeServer, seconds: float) -> None:
    assert isinstance(server.clock, VirtualClock)
    await server.clock.advance(seconds)
    await quiet(server)


def pods_of(server: SimKubeServer, app: str) -> list[dict[str, Any]]:
    return [p for p in server.store.scan(PODS, NS) if (p["metadata"].get("labels") or {}).get("app") == app]


def replicasets_of(server: SimKubeServer, app: str) -> list[dict[str, Any]]:
    return [rs for rs in server.store.scan(REPLICASETS, NS) if rs["metadata"]["name"].startswith(f"{app}-")]


async def create_ready(server: SimKubeServer, body: dict[str, Any]) -> None:
    code, out = await call(server, "POST", DEPLOY, body)
    assert code == 201, out
    await quiet(server)
    await advance(server, 5.0)
    name = body["metadata"]["name"]
    assert sum(1 for p in pods_of(server, name) if is_ready(p)) == body["spec"]["replicas"]


class Bounds:
    """Samples every store change during a rollout: pods the ReplicaSets ask for, and ready pods."""

    def __init__(self, server: SimKubeServer, app: str) -> None:
        self.server, self.app = server, app
        self.max_wanted = 0
        self.min_ready = 10**9
        server.store.listeners.append(self.sample)

    def sample(self, _change: Change) -> None:
        wanted = sum(rs["spec"].get("replicas", 0) for rs in replicasets_of(self.server, self.app))
        ready = sum(1 for p in pods_of(self.server, self.app) if is_ready(p))
        self.max_wanted = max(self.max_wanted, wanted)
        self.min_ready = min(self.min_ready, ready)


async def roll_to(server: SimKubeServer, name: str, image: str, *, steps: int = 120) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}}
    code, out = await call(server, "PATCH", f"{DEPLOY}/{name}", patch, STRATEGIC)
    assert code == 200, out
    await quiet(server)
    for _ in range(steps):
        d = server.store.get(DEPLOYMENTS, NS, name)
        st = d["status"]
        want = d["spec"]["replicas"]
        if (
            st.get("updatedReplicas") == want
            and st.get("availableReplicas") == want
            and st.get("replicas") == want
        ):
            if not any(is_terminating(p) for p in pods_of(server, name)):
                return
        await advance(server, 1.0)
    raise AssertionError(f"rollout of {image} did not finish in {steps} simulated seconds")


# --- 1. RollingUpdate: maxSurge / maxUnavailable, pod start delay, graceful termination ------------


def test_fenceposts_round_surge_up_and_unavailable_down() -> None:
    assert resolve_fenceposts("25%", "25%", 10) == (3, 2)
    assert resolve_fenceposts("25%", "25%", 1) == (1, 0)
    assert resolve_fenceposts(0, "10%", 5) == (0, 1)  # both resolve to 0: one may be unavailable
    assert resolve_fenceposts(2, 0, 10) == (2, 0)


@pytest.mark.parametrize(
    ("rolling", "surge", "unavailable"),
    [
        ({}, 3, 2),  # defaults 25 % / 25 % of 10
        ({"maxSurge": 1, "maxUnavailable": 0}, 1, 0),
        ({"maxSurge": 0, "maxUnavailable": "30%"}, 0, 3),
        ({"maxSurge": "50%", "maxUnavailable": 1}, 5, 1),
    ],
)
async def test_rolling_update_stays_within_max_surge_and_max_unavailable(
    stepped: SimKubeServer, rolling: dict[str, Any], surge: int, unavailable: int
) -> None:
    await create_ready(stepped, deployment("api", 10, **rolling))
    bounds = Bounds(stepped, "api")
    await roll_to(stepped, "api", "api:2")
    assert bounds.max_wanted <= 10 + surge
    assert bounds.min_ready >= 10 - unavailable
    # it really surged (or really dipped) as far as it was allowed to: the bounds are the real ones
    assert bounds.max_wanted == 10 + surge or bounds.min_ready == 10 - unavailable
    images = {p["spec"]["containers"][0]["image"] for p in pods_of(stepped, "api")}
    assert images == {"api:2"}


async def test_new_pods_are_not_ready_before_the_start_delay(stepped: SimKubeServer) -> None:
    code, _ = await call(stepped, "POST", DEPLOY, deployment("api", 2))
    assert code == 201
    await quiet(stepped)
    assert len(pods_of(stepped, "api")) == 2
    assert not any(is_ready(p) for p in pods_of(stepped, "api"))
    await advance(stepped, 4.9)
    assert not any(is_ready(p) for p in pods_of(stepped, "api"))
    await advance(stepped, 0.2)
    assert all(is_ready(p) for p in pods_of(stepped, "api"))
    assert stepped.store.get(DEPLOYMENTS, NS, "api")["status"]["availableReplicas"] == 2


async def test_scaled_down_pods_terminate_gracefully_then_disappear(stepped: SimKubeServer) -> None:
    await create_ready(stepped, deployment("api", 4))
    code, _ = await call(stepped, "PATCH", f"{DEPLOY}/api", {"spec": {"replicas": 1}}, MERGE)
    assert code == 200
    await quiet(stepped)
    terminating = [p for p in pods_of(stepped, "api") if is_terminating(p)]
    assert len(terminating) == 3
    for pod in terminating:
        assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
        assert not is_ready(pod)  # endpoints stop sending traffic to it at once
    status = stepped.store.get(DEPLOYMENTS, NS, "api")["status"]
    assert (status["replicas"], status["availableReplicas"]) == (1, 1)  # Terminating pods count nowhere
    await advance(stepped, 2.9)
    assert len(pods_of(stepped, "api")) == 4
    await advance(stepped, 0.2)
    assert len(pods_of(stepped, "api")) == 1


async def test_kubectl_style_pod_delete_is_graceful(stepped: SimKubeServer) -> None:
    await create_ready(stepped, deployment("api", 1))
    (pod,) = pods_of(stepped, "api")
    code, body = await call(stepped, "DELETE", f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}")
    assert code == 200 and body["metadata"]["deletionTimestamp"]
    await quiet(stepped)
    names = {p["metadata"]["name"]: is_terminating(p) for p in pods_of(stepped, "api")}
    assert names[pod["metadata"]["name"]] is True and len(names) == 2  # its replacement is starting
    await advance(stepped, 3.1)
    assert pod["metadata"]["name"] not in {p["metadata"]["name"] for p in pods_of(stepped, "api")}
    code, body = await call(
        stepped,
        "DELETE",
        f"/api/v1/namespaces/{NS}/pods/{pods_of(stepped, 'api')[0]['metadata']['name']}?gracePeriodSeconds=0",
    )
    assert code == 200
    await quiet(stepped)
    assert not any(is_terminating(p) for p in pods_of(stepped, "api"))


@pytest.mark.parametrize(
    ("rolling", "field", "problem"),
    [
        ({"maxSurge": 0, "maxUnavailable": 0}, "maxUnavailable", "may not be 0 when `maxSurge` is 0"),
        ({"maxSurge": "0%", "maxUnavailable": "0%"}, "maxUnavailable", "may not be 0 when `maxSurge` is 0"),
        ({"maxUnavailable": "150%"}, "maxUnavailable", "must not be greater than 100%"),
        ({"maxSurge": -1}, "maxSurge", "must be greater than or equal to 0"),
        ({"maxSurge": "x"}, "maxSurge", "a valid percent string"),
    ],
)
async def test_invalid_rolling_update_bounds_are_422(
    stepped: SimKubeServer, rolling: dict[str, Any], field: str, problem: str
) -> None:
    code, body = await call(stepped, "POST", DEPLOY, deployment("api", 4, **rolling))
    assert (code, body["reason"]) == (422, "Invalid")
    (cause,) = body["details"]["causes"]
    assert cause["field"] == f"spec.strategy.rollingUpdate.{field}" and problem in cause["message"]


async def test_recreate_waits_for_old_pods_to_be_gone(stepped: SimKubeServer) -> None:
    body = deployment("api", 3)
    body["spec"]["strategy"] = {"type": "Recreate"}
    await create_ready(stepped, body)
    bounds = Bounds(stepped, "api")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}}
    await call(stepped, "PATCH", f"{DEPLOY}/api", patch, STRATEGIC)
    await quiet(stepped)
    assert all(is_terminating(p) for p in pods_of(stepped, "api"))  # all old down, nothing new yet
    await advance(stepped, 3.1)
    assert {p["spec"]["containers"][0]["image"] for p in pods_of(stepped, "api")} == {"api:2"}
    assert bounds.max_wanted <= 3


# --- 2. metadata.generation on Deployments -----------------------------------------------


async def test_annotation_change_bumps_deployment_generation_and_observed_generation_follows(
    stepped: SimKubeServer,
) -> None:
    await create_ready(stepped, deployment("api", 2))
    d = stepped.store.get(DEPLOYMENTS, NS, "api")
    # the controller's own revision annotation goes through /status: it does not count as a change
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert d["metadata"]["generation"] == 1
    code, out = await call(
        stepped, "PATCH", f"{DEPLOY}/api", {"metadata": {"labels": {"tier": "web"}}}, MERGE
    )
    assert (code, out["metadata"]["generation"]) == (200, 1)  # labels are not copied to ReplicaSets
    patch = {"metadata": {"annotations": {"team": "payments"}}}
    code, out = await call(stepped, "PATCH", f"{DEPLOY}/api", patch, MERGE)
    assert (code, out["metadata"]["generation"]) == (200, 2)
    await quiet(stepped)
    d = stepped.store.get(DEPLOYMENTS, NS, "api")
    assert d["status"]["observedGeneration"] == 2
    # the annotation reached the current ReplicaSet, which is why upstream counts it as a change
    (rs,) = replicasets_of(stepped, "api")
    assert rs["metadata"]["annotations"]["team"] == "payments"
    code, out = await call(stepped, "PATCH", f"{DEPLOY}/api", patch, MERGE)  # no change: no bump
    assert out["metadata"]["generation"] == 2


# --- 7. a watch from a compacted resourceVersion ---------------------------------------------


async def watch_lines(server: SimKubeServer, path: str) -> tuple[int, list[dict[str, Any]]]:
    limit = aiohttp.ClientTimeout(total=10)  # the watch's own timeout runs on the stepped clock
    async with aiohttp.ClientSession(timeout=limit) as session, session.get(server.url + path) as resp:
        return resp.status, [json.loads(line) async for line in resp.content if line.strip()]


async def test_watch_from_a_too_old_resource_version_is_200_with_an_expired_error_event(
    stepped: SimKubeServer,
) -> None:
    await create_ready(stepped, deployment("api", 1))
    code, events = await watch_lines(stepped, f"{DEPLOY}?watch=true&resourceVersion=5&timeoutSeconds=5")
    assert code == 200
    (event,) = events
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith("too old resource version: 5 (")
    # after a compaction, a version that was fine a moment ago is too old as well
    _, listed = await call(stepped, "GET", DEPLOY)
    await call(stepped, "PATCH", f"{DEPLOY}/api", {"metadata": {"labels": {"x": "1"}}}, MERGE)
    stepped.store.compact()
    rv = listed["metadata"]["resourceVersion"]
    code, events = await watch_lines(stepped, f"{DEPLOY}?watch=true&resourceVersion={rv}&timeoutSeconds=5")
    assert code == 200 and [e["type"] for e in events] == ["ERROR"] and events[0]["object"]["code"] == 410


# --- 8. list limit / continue ------------------------------------------------------------


CM = f"/api/v1/namespaces/{NS}/configmaps"


async def make_configmaps(server: SimKubeServer, count: int) -> None:
    for n in range(count):
        code, _ = await call(server, "POST", CM, {"metadata": {"name": f"cm-{n}"}, "data": {"n": str(n)}})
        assert code == 201


async def test_list_limit_and_continue_paginate_at_one_resource_version(stepped: SimKubeServer) -> None:
    await make_configmaps(stepped, 5)
    code, first = await call(stepped, "GET", f"{CM}?limit=2")
    assert code == 200 and [i["metadata"]["name"] for i in first["items"]] == ["cm-0", "cm-1"]
    assert first["metadata"]["remainingItemCount"] == 3 and first["metadata"]["continue"]
    # changes after the first page do not leak into the next ones: every page is read at its version
    await call(stepped, "DELETE", f"{CM}/cm-3")
    await call(stepped, "POST", CM, {"metadata": {"name": "cm-25"}})
    await call(stepped, "PATCH", f"{CM}/cm-2", {"data": {"n": "changed"}}, MERGE)
    code, second = await call(stepped, "GET", f"{CM}?limit=2&continue={first['metadata']['continue']}")
    assert code == 200 and [i["metadata"]["name"] for i in second["items"]] == ["cm-2", "cm-3"]
    assert second["items"][0]["data"] == {"n": "2"}
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    code, third = await call(stepped, "GET", f"{CM}?limit=2&continue={second['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in third["items"]] == ["cm-4"]
    assert "continue" not in third["metadata"]
    code, whole = await call(stepped, "GET", CM)  # without limit: the current state, one page
    assert [i["metadata"]["name"] for i in whole["items"]] == ["cm-0", "cm-1", "cm-2", "cm-25", "cm-4"]


async def test_a_stale_continue_token_is_410_with_a_token_to_go_on(stepped: SimKubeServer) -> None:
    await make_configmaps(stepped, 3)
    _, first = await call(stepped, "GET", f"{CM}?limit=1")
    await call(stepped, "PATCH", f"{CM}/cm-2", {"data": {"n": "changed"}}, MERGE)
    stepped.store.compact()  # etcd compacted past the version the token reads at
    code, body = await call(stepped, "GET", f"{CM}?limit=1&continue={first['metadata']['continue']}")
    assert (code, body["reason"]) == (410, "Expired")
    assert "too old to display a consistent list result" in body["message"]
    code, rest = await call(stepped, "GET", f"{CM}?limit=5&continue={body['metadata']['continue']}")
    assert code == 200 and [i["metadata"]["name"] for i in rest["items"]] == ["cm-1", "cm-2"]
    assert rest["items"][1]["data"] == {"n": "changed"}  # the inconsistent remainder, as promised
    code, body = await call(stepped, "GET", f"{CM}?limit=1&continue=not-a-token")
    assert (code, body["reason"]) == (400, "BadRequest")


# --- 3. invalid names, immutable selector ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "kind", "rule"),
    [
        (DEPLOY, deployment("Bad_Name"), "Deployment.apps", "a lowercase RFC 1123 subdomain"),
        (CM, {"metadata": {"name": "x" * 254}}, "ConfigMap", "must be no more than 253 characters"),
        ("/api/v1/namespaces", {"metadata": {"name": "team.a"}}, "Namespace", "a lowercase RFC 1123 label"),
        (f"/api/v1/namespaces/{NS}/services", {"metadata": {"name": "1web"}}, "Service", "a DNS-1035 label"),
    ],
)
async def test_invalid_names_are_422_with_a_status_naming_the_field(
    stepped: SimKubeServer, path: str, body: dict[str, Any], kind: str, rule: str
) -> None:
    code, status = await call(stepped, "POST", path, body)
    name = body["metadata"]["name"]
    assert (code, status["kind"], status["reason"], status["code"]) == (422, "Status", "Invalid", 422)
    assert status["message"].startswith(f'{kind} "{name}" is invalid: metadata.name: Invalid value: ')
    assert rule in status["message"]
    (cause,) = status["details"]["causes"]
    assert (cause["reason"], cause["field"]) == ("FieldValueInvalid", "metadata.name")
    assert status["details"]["name"] == name
    code, _ = await call(stepped, "GET", f"{path}/{name}")
    assert code == 404  # nothing was stored


async def test_required_fields_are_field_value_required(stepped: SimKubeServer) -> None:
    body = deployment("api")
    del body["spec"]["selector"]
    code, status = await call(stepped, "POST", DEPLOY, body)
    assert code == 422
    assert status["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.selector",
    }


async def test_deployment_selector_is_immutable(stepped: SimKubeServer) -> None:
    await create_ready(stepped, deployment("api", 1))
    patch = {
        "spec": {
            "selector": {"matchLabels": {"app": "api", "v": "2"}},
            "template": {"metadata": {"labels": {"app": "api", "v": "2"}}},
        }
    }
    code, status = await call(stepped, "PATCH", f"{DEPLOY}/api", patch, MERGE)
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["message"] == (
        'Deployment.apps "api" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
        'map[string]string{"app":"api", "v":"2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        "field is immutable"
    )
    assert status["details"]["causes"][0]["field"] == "spec.selector"
    d = stepped.store.get(DEPLOYMENTS, NS, "api")
    assert d["spec"]["selector"] == {"matchLabels": {"app": "api"}} and d["metadata"]["generation"] == 1


# --- 6. SelfSubjectReview (kubectl auth whoami) ---------------------------------------------


async def test_self_subject_review_names_the_token_s_user_even_a_read_only_one() -> None:
    # the request `kubectl auth whoami` makes (an empty protobuf review), sent by hand over plain HTTP;
    # test_kubectl_fidelity runs kubectl itself against a TLS server, where it sends its token
    server = SimKubeServer(tokens={"admin": None, "reader": {"get", "list", "watch"}})
    await server.start()
    path = server.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    empty_review = (
        b"k8s\x00\n2\n\x1aauthentication.k8s.io/v1\x12\x11SelfSubjectReview\x12\x06\n\x00\x12\x02\n\x00"
    )
    try:
        async with aiohttp.ClientSession() as session:
            for token, user in (("reader", "sim-user-1"), ("admin", "sim-user-0")):
                headers = {
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/vnd.kubernetes.protobuf",
                }
                async with session.post(path, data=empty_review, headers=headers) as resp:
                    assert resp.status == 201
                    review = await resp.json()
                assert review["kind"] == "SelfSubjectReview"
                assert review["status"]["userInfo"] == {"username": user, "groups": ["system:authenticated"]}
            async with session.post(
                path, data=empty_review, headers={"Authorization": "Bearer nope"}
            ) as resp:
                assert resp.status == 401
        code, _ = await call(server, "GET", "/apis/authentication.k8s.io/v1")
        assert code == 401  # discovery needs credentials too
    finally:
        await server.stop()


# --- 4. protobuf bodies (kubectl create) ----------------------------------------------------


def test_protobuf_fields_the_simulator_does_not_know_are_refused_not_dropped() -> None:
    from core.sim.kube.errors import ApiError
    from core.sim.kube.protobuf import decode

    def message(*fields: tuple[int, bytes]) -> bytes:
        return b"".join(bytes([n << 3 | 2, len(v)]) + v for n, v in fields)

    type_meta = message((1, b"v1"), (2, b"Namespace"))
    meta = message((1, b"team-b"))
    body = b"k8s\x00" + message((1, type_meta), (2, message((1, meta))))
    assert decode(body) == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}}
    unknown = b"k8s\x00" + message((1, type_meta), (2, message((1, meta), (9, b"surprise"))))
    with pytest.raises(ApiError) as err:
        decode(unknown)
    assert err.value.code == 415 and "field 9 of Namespace" in err.value.message


# --- the pod start delay reaches `sim serve` ------------------------------------------------------


async def test_sim_serve_pod_start_delay_reaches_the_simulated_server(tmp_path: Any) -> None:
    from core.session import demo_plan, open_session
    from tui.cli import build_parser

    args = build_parser().parse_args(["sim", "serve", "--pod-start-delay", "2.5", "--dir", str(tmp_path)])
    assert args.pod_start_delay == 2.5
    session = await open_session(
        demo_plan("healthy"),
        actor="t",
        sim_backend="kube",
        kubeconfig_dir=tmp_path,
        pod_start_delay_s=args.pod_start_delay,
    )
    try:
        server = next(c for c in session.world.closers if isinstance(c, SimKubeServer))
        assert server.controller.pod_ready_delay_s == 2.5
    finally:
        await session.close()


# --- 10. the gap report stays true --------------------------------------------------------------


async def test_documented_gaps_still_behave_as_documented(stepped: SimKubeServer) -> None:
    """When one of these starts passing the other way, the gap is closed: update core.sim.kube.GAPS."""
    from core.sim.kube import GAPS

    assert stepped.url.startswith("http://") and any(
        "without tls=True kubectl sends no bearer" in g for g in GAPS
    )
    await create_ready(stepped, deployment("api", 1))
    code, body = await call(
        stepped, "PATCH", f"{DEPLOY}/api?fieldManager=x", {"metadata": {}}, "application/apply-patch+yaml"
    )
    assert (code, body["reason"]) == (415, "UnsupportedMediaType") and any(
        "Server-side apply" in g for g in GAPS
    )
    review = {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": NS}}}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            stepped.url + "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            json=review,
            headers={"Impersonate-User": "nobody"},
        ) as resp:
            code, body = resp.status, await resp.json()
    # impersonation is ignored: the answer is still the caller's (the admin), not "nobody"'s denial
    assert (code, body["status"]["allowed"]) == (201, True) and any("no impersonation" in g for g in GAPS)


# --- HorizontalPodAutoscalers: served, and fighting spec.replicas writes on their sync period -------

HPA_PATH = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"


def hpa(name: str, target: str, low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
                }
            ],
        },
    }


async def test_an_hpa_undoes_a_replicas_write_on_its_next_sync(stepped: SimKubeServer) -> None:
    await create_ready(stepped, deployment("api", 4))
    code, created = await call(stepped, "POST", HPA_PATH, hpa("api", "api", 3, 6))
    assert code == 201 and created["spec"]["minReplicas"] == 3
    code, _ = await call(stepped, "PATCH", f"{DEPLOY}/api", {"spec": {"replicas": 9}}, MERGE)  # above max
    assert code == 200
    await quiet(stepped)
    assert stepped.store.get(DEPLOYMENTS, NS, "api")["spec"]["replicas"] == 9  # stands until the sync
    await advance(stepped, 15.0)
    assert stepped.store.get(DEPLOYMENTS, NS, "api")["spec"]["replicas"] == 6
    # with load (the metrics' part played by the test) it scales to what the metrics ask, within bounds
    stepped.controller.hpa.wanted[(NS, "api")] = 5
    await call(stepped, "PATCH", f"{DEPLOY}/api", {"spec": {"replicas": 3}}, MERGE)
    await advance(stepped, 15.0)
    assert stepped.store.get(DEPLOYMENTS, NS, "api")["spec"]["replicas"] == 5
    status = stepped.store.get(HPAS, NS, "api")["status"]
    assert (status["currentReplicas"], status["desiredReplicas"]) == (3, 5)
    events = [e["message"] for e in stepped.store.scan(EVENTS_RES, NS) if e["reason"] == "SuccessfulRescale"]
    assert events == [
        "New size: 6; reason: Current number of replicas above Spec.MaxReplicas",
        "New size: 5; reason: metric above target",
    ]
    code, body = await call(stepped, "POST", HPA_PATH, hpa("bad", "api", 5, 2))
    assert (code, body["details"]["causes"][0]["field"]) == (422, "spec.maxReplicas")


# --- scaling events: paused Deployments scale, a resize mid-rollout spreads proportionally ----------


def scaling_events(server: SimKubeServer, name: str) -> list[str]:
    events = sorted(
        (e for e in server.store.scan(EVENTS_RES, NS) if e["involvedObject"]["name"] == name),
        key=lambda e: e["metadata"]["name"],
    )
    return [e["message"] for e in events if e["reason"] == "ScalingReplicaSet"]


async def test_a_paused_deployment_is_still_scaled(stepped: SimKubeServer) -> None:
    await create_ready(stepped, deployment("api", 4))
    await call(stepped, "PATCH", f"{DEPLOY}/api", {"spec": {"paused": True}}, MERGE)
    patch = {
        "spec": {"replicas": 6, "template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}
    }
    code, _ = await call(stepped, "PATCH", f"{DEPLOY}/api", patch, STRATEGIC)
    assert code == 200
    await quiet(stepped)
    (rs,) = replicasets_of(stepped, "api")  # paused: no rollout, no new ReplicaSet...
    assert rs["spec"]["replicas"] == 6  # ...but the size follows the Deployment (dc.sync)
    assert scaling_events(stepped, "api")[-1] == f"Scaled up replica set {rs['metadata']['name']} from 4 to 6"


async def test_resizing_mid_rollout_scales_every_replica_set_in_proportion(stepped: SimKubeServer) -> None:
    await create_ready(stepped, deployment("api", 10))
    stepped.controller.unready_images.add("api:broken")  # the rollout stalls where maxSurge/Unavailable allow
    await call(
        stepped,
        "PATCH",
        f"{DEPLOY}/api",
        {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:broken"}]}}}},
        STRATEGIC,
    )
    await quiet(stepped)
    sizes = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
        for rs in replicasets_of(stepped, "api")
    }
    assert sizes == {"api:1": 8, "api:broken": 5}  # 10 - 2 unavailable, 10 + 3 surge in all
    await call(stepped, "PATCH", f"{DEPLOY}/api", {"spec": {"replicas": 20}}, MERGE)
    await quiet(stepped)
    names = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["name"]
        for rs in replicasets_of(stepped, "api")
    }
    # 20 + 5 surge = 25: 12 more, spread over 8 and 5 sized for 13 - round(8*25/13) = 15 (+7), then
    # round(5*25/13) = 10 capped at the 5 left - as GetProportion and dc.scale do, largest first
    assert scaling_events(stepped, "api")[-2:] == [
        f"Scaled up replica set {names['api:1']} from 8 to 15",
        f"Scaled up replica set {names['api:broken']} from 5 to 10",
    ]
    await advance(stepped, 6.0)  # the old pods start; the broken ones never do: nothing may go down
    sizes = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
        for rs in replicasets_of(stepped, "api")
    }
    assert sizes == {"api:1": 15, "api:broken": 10}


# --- minReadySeconds: Ready is not yet Available ---------------------------------------------------


async def test_min_ready_seconds_keeps_ready_pods_unavailable_and_holds_the_rollout(
    stepped: SimKubeServer,
) -> None:
    body = deployment("api", 4, maxSurge=1, maxUnavailable=0)
    body["spec"]["minReadySeconds"] = 10
    code, _ = await call(stepped, "POST", DEPLOY, body)
    assert code == 201
    await quiet(stepped)
    await advance(stepped, 5.0)  # started: Ready...
    st = stepped.store.get(DEPLOYMENTS, NS, "api")["status"]
    assert (st.get("readyReplicas"), st.get("availableReplicas", 0)) == (4, 0)  # ...not yet Available
    available = next(c for c in st["conditions"] if c["type"] == "Available")
    assert available["status"] == "False"
    await advance(stepped, 9.9)
    assert stepped.store.get(DEPLOYMENTS, NS, "api")["status"].get("availableReplicas", 0) == 0
    await advance(stepped, 0.2)
    st = stepped.store.get(DEPLOYMENTS, NS, "api")["status"]
    assert (st["readyReplicas"], st["availableReplicas"]) == (4, 4)
    (rs,) = replicasets_of(stepped, "api")
    assert rs["spec"]["minReadySeconds"] == 10 and rs["status"]["availableReplicas"] == 4
    # a rolling update waits for availability, not readiness, before taking an old pod away
    bounds = Bounds(stepped, "api")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}}
    await call(stepped, "PATCH", f"{DEPLOY}/api", patch, STRATEGIC)
    await quiet(stepped)
    await advance(stepped, 6.0)  # the surge pod is Ready but not Available: all 4 old ones stay
    old = [
        rs
        for rs in replicasets_of(stepped, "api")
        if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "api:1"
    ]
    assert old[0]["spec"]["replicas"] == 4
    await advance(stepped, 10.0)
    assert f"Scaled down replica set {old[0]['metadata']['name']} from 4 to 3" in scaling_events(
        stepped, "api"
    )
    assert bounds.max_wanted <= 5


async def test_progress_deadline_must_exceed_min_ready_seconds(stepped: SimKubeServer) -> None:
    body = deployment("api", 1)
    body["spec"].update(minReadySeconds=30, progressDeadlineSeconds=30)
    code, status = await call(stepped, "POST", DEPLOY, body)
    assert code == 422 and status["details"]["causes"][0]["field"] == "spec.progressDeadlineSeconds"


async def test_every_validation_error_is_reported_at_once(stepped: SimKubeServer) -> None:
    body = deployment("Bad_Name")
    del body["spec"]["selector"]
    body["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    body["spec"]["minReadySeconds"] = -1
    code, status = await call(stepped, "POST", DEPLOY, body)
    assert code == 422
    fields = [c["field"] for c in status["details"]["causes"]]
    assert fields == [
        "metadata.name",
        "spec.selector",
        "spec.template.spec.containers[0].image",
        "spec.minReadySeconds",
    ]
    assert status["message"].startswith(
        'Deployment.apps "Bad_Name" is invalid: [metadata.name: Invalid value: '
    )
    assert (
        "spec.selector: Required value, spec.template.spec.containers[0].image: Required value"
        in status["message"]
    )
    code, status = await call(stepped, "PATCH", f"{DEPLOY}/nothing/scale", {"spec": {"replicas": -1}}, MERGE)
    assert code == 404
    await create_ready(stepped, deployment("api", 1))
    code, status = await call(stepped, "PATCH", f"{DEPLOY}/api/scale", {"spec": {"replicas": -1}}, MERGE)
    assert status["message"] == (
        'Scale.autoscaling "api" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )


async def test_the_adapter_reaches_a_tls_server_through_its_kubeconfig(tmp_path: Any) -> None:
    from tests.kube_helpers import STABLE as WEB
    from tests.kube_helpers import start_sim

    s = await start_sim(tmp_path, tls=True)
    try:
        cluster = await s.cluster("replicas")
        try:
            state = await cluster.describe()
            assert state.stable_image == "shop:1.0"
        finally:
            await cluster.close()
        assert ("GET", f"/apis/apps/v1/namespaces/prod/deployments/{WEB}") in s.server.requests
    finally:
        await s.server.stop()


async def test_events_are_gone_an_hour_after_their_last_write(stepped: SimKubeServer) -> None:
    await create_ready(stepped, deployment("api", 1))
    first = {e["metadata"]["name"] for e in stepped.store.scan(EVENTS_RES, NS)}
    assert first
    await advance(stepped, 3000.0)
    await call(stepped, "PATCH", f"{DEPLOY}/api", {"spec": {"replicas": 2}}, MERGE)  # newer events
    await quiet(stepped)
    await advance(stepped, 700.0)
    await call(stepped, "PATCH", f"{DEPLOY}/api", {"spec": {"replicas": 3}}, MERGE)  # expiry runs on record
    await quiet(stepped)
    left = {e["metadata"]["name"] for e in stepped.store.scan(EVENTS_RES, NS)}
    assert not first & left and len(left) > 0


async def test_a_conflict_rate_answers_that_share_of_writes_with_a_real_409(stepped: SimKubeServer) -> None:
    await create_ready(stepped, deployment("api", 1))
    stepped._rng.seed(7)  # the fixture's server draws faults unseeded: make this run repeatable
    stepped.faults.conflict_rate = 0.2
    codes = []
    for n in range(100):
        code, body = await call(
            stepped, "PATCH", f"{DEPLOY}/api", {"metadata": {"labels": {"n": str(n)}}}, MERGE
        )
        codes.append(code)
        if code == 409:
            assert body["reason"] == "Conflict" and body["details"] == {
                "name": "api",
                "group": "apps",
                "kind": "deployments",
            }
            assert body["message"].startswith('Operation cannot be fulfilled on deployments.apps "api"')
    assert set(codes) == {200, 409} and 5 <= codes.count(409) <= 40  # 20 % of 100, loosely
    code, _ = await call(stepped, "GET", f"{DEPLOY}/api")
    assert code == 200  # reads are never conflicts
