"""TokenReview and SubjectAccessReview in the simulated API server: tokens answer from the server's token
table, access reviews from the Roles/ClusterRoles and bindings it stores (deploy/rbac-users.yaml's roles,
command subresources such as deployruns/signoff, resourceNames, namespaces and `*` as RBAC has them)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from core.sim.kube import SimKubeServer, rbac
from core.sim.kube.rbac import ROLE_BINDINGS
from tests.kube_helpers import Kubectl, kubectl_path

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN, RELEASE_TOKEN = "admin-token", "release-token"  # sim-user-0, sim-user-1
SAR = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


async def call(
    server: SimKubeServer, method: str, path: str, body: Any, token: str = ADMIN_TOKEN
) -> tuple[int, Any]:
    ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
    headers = {"Content-Type": ctype, "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, server.url + path, data=json.dumps(body), headers=headers) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text.startswith("{") else text)


async def create(server: SimKubeServer, obj: dict[str, Any]) -> None:
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = obj["kind"].lower() + "s"
    ns = obj["metadata"].get("namespace")
    where = f"/namespaces/{ns}" if ns else ""
    path = f"/apis/{group}/{version}{where}/{plural}" if group else f"/api/{version}{where}/{plural}"
    code, body = await call(server, "POST", path, obj)
    assert code == 201, body


def binding(
    kind: str, name: str, role_kind: str, role: str, subjects: list[dict], ns: str | None = None
) -> dict:
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
    }


@pytest.fixture
async def server() -> AsyncIterator[SimKubeServer]:
    s = SimKubeServer(tokens={ADMIN_TOKEN: None, RELEASE_TOKEN: {"get", "list", "create"}})
    await s.start()
    try:
        for ns in ("shop", "other"):
            await create(s, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for doc in yaml.safe_load_all((ROOT / "deploy" / "rbac-users.yaml").read_text()):
            if doc:
                await create(s, doc)
        alice = [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]
        await create(
            s, binding("RoleBinding", "alice", "ClusterRole", "deploydeck-release-manager", alice, "shop")
        )
        yield s
    finally:
        await s.stop()


def review(user: str = "alice", groups: list[str] | None = None, **attrs: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"user": user, "resourceAttributes": attrs}
    if groups is not None:
        spec["groups"] = groups
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


async def allowed(server: SimKubeServer, body: dict[str, Any]) -> tuple[bool, str]:
    code, answer = await call(server, "POST", SAR, body)
    assert code == 201 and answer["kind"] == "SubjectAccessReview", answer
    return answer["status"]["allowed"], answer["status"].get("reason", "")


# --- TokenReview ---------------------------------------------------------------------------


async def test_token_review_answers_the_token_s_user(server: SimKubeServer) -> None:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": RELEASE_TOKEN}}
    code, answer = await call(server, "POST", TOKEN_REVIEWS, body)
    assert code == 201 and answer["status"]["authenticated"] is True
    assert answer["status"]["user"] == {"username": "sim-user-1", "groups": ["system:authenticated"]}
    body["spec"]["token"] = "stolen"
    code, answer = await call(server, "POST", TOKEN_REVIEWS, body)
    assert code == 201 and answer["status"]["authenticated"] is False and answer["status"]["user"] == {}
    code, answer = await call(server, "POST", TOKEN_REVIEWS, {"spec": {}})
    assert code == 422 and answer["details"]["causes"][0]["field"] == "spec.token"
    code, _ = await call(server, "GET", TOKEN_REVIEWS, None)
    assert code == 405


async def test_token_review_needs_credentials_and_the_create_verb(server: SimKubeServer) -> None:
    code, _ = await call(server, "POST", TOKEN_REVIEWS, {"spec": {"token": ADMIN_TOKEN}}, token="nobody")
    assert code == 401


# --- SubjectAccessReview -------------------------------------------------------------------


async def test_rolebinding_to_a_clusterrole_grants_its_rules_in_that_namespace_only(
    server: SimKubeServer,
) -> None:
    ok, reason = await allowed(server, review(verb="create", group="deploydeck.dev", resource="deployruns",
                                              subresource="signoff", namespace="shop"))  # fmt: skip
    assert ok and reason == (
        'RBAC: allowed by RoleBinding "alice" of ClusterRole "deploydeck-release-manager" to User "alice" '
        'in namespace "shop"'
    )
    # the same command elsewhere, another verb, another user, or a subresource the role does not list
    for body in (
        review(
            verb="create",
            group="deploydeck.dev",
            resource="deployruns",
            subresource="signoff",
            namespace="other",
        ),
        review(verb="delete", group="deploydeck.dev", resource="deployruns", namespace="shop"),
        review(
            "bob",
            verb="create",
            group="deploydeck.dev",
            resource="deployruns",
            subresource="signoff",
            namespace="shop",
        ),
        review(
            verb="create",
            group="deploydeck.dev",
            resource="deployruns",
            subresource="status",
            namespace="shop",
        ),
        review(verb="get", group="", resource="deployruns", namespace="shop"),
    ):
        assert await allowed(server, body) == (False, ""), body


async def test_resource_names_wildcards_groups_and_cluster_bindings(server: SimKubeServer) -> None:
    await create(server, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "one-run", "namespace": "shop"},
        "rules": [{"apiGroups": ["deploydeck.dev"], "resources": ["deployruns"], "verbs": ["patch"],
                   "resourceNames": ["checkout-1-5-0"]}],
    })  # fmt: skip
    await create(
        server,
        binding("RoleBinding", "carol-one", "Role", "one-run", [{"kind": "User", "name": "carol"}], "shop"),
    )
    attrs = {"verb": "patch", "group": "deploydeck.dev", "resource": "deployruns", "namespace": "shop"}
    assert (await allowed(server, review("carol", name="checkout-1-5-0", **attrs)))[0] is True
    assert (await allowed(server, review("carol", name="other", **attrs)))[0] is False
    assert (await allowed(server, review("carol", **attrs)))[0] is False  # a list-wide patch names nothing
    # a ClusterRole of wildcards bound cluster-wide to a group
    await create(server, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "scalers"},
        "rules": [{"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]}],
    })  # fmt: skip
    await create(
        server,
        binding(
            "ClusterRoleBinding", "ops-scale", "ClusterRole", "scalers", [{"kind": "Group", "name": "ops"}]
        ),
    )
    scale = {
        "verb": "update",
        "group": "apps",
        "resource": "deployments",
        "subresource": "scale",
        "namespace": "other",
    }
    ok, reason = await allowed(server, review("dave", ["ops"], **scale))
    assert (
        ok
        and reason
        == 'RBAC: allowed by ClusterRoleBinding "ops-scale" of ClusterRole "scalers" to Group "ops"'
    )
    assert (await allowed(server, review("dave", ["ops"], **{**scale, "subresource": ""})))[0] is False
    assert (await allowed(server, review("dave", ["dev"], **scale)))[0] is False
    # system:masters may do anything
    assert (await allowed(server, review("root", ["system:masters"], verb="delete", resource="nodes")))[
        0
    ] is True


async def test_service_accounts_and_aggregated_cluster_roles(server: SimKubeServer) -> None:
    await create(server, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "view"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]},
    })  # fmt: skip
    sa = [{"kind": "ServiceAccount", "name": "watcher", "namespace": "shop"}]
    await create(server, binding("RoleBinding", "watcher-view", "ClusterRole", "view", sa, "shop"))
    attrs = {"verb": "watch", "group": "deploydeck.dev", "resource": "deployruns", "namespace": "shop"}
    # deploydeck-viewer is aggregated into view by its label
    assert (await allowed(server, review("system:serviceaccount:shop:watcher", **attrs)))[0] is True
    assert (await allowed(server, review("system:serviceaccount:other:watcher", **attrs)))[0] is False
    assert (
        await allowed(server, review("system:serviceaccount:shop:watcher", **{**attrs, "verb": "create"}))
    )[0] is False


async def test_malformed_reviews_are_invalid(server: SimKubeServer) -> None:
    code, body = await call(server, "POST", SAR, {"spec": {"resourceAttributes": {"verb": "get"}}})
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.user"
    code, body = await call(server, "POST", SAR, {"spec": {"user": "alice"}})
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.resourceAttributes"


async def test_non_resource_urls(server: SimKubeServer) -> None:
    await create(server, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "health"},
        "rules": [{"nonResourceURLs": ["/healthz", "/metrics/*"], "verbs": ["get"]}],
    })  # fmt: skip
    await create(
        server,
        binding("ClusterRoleBinding", "health", "ClusterRole", "health", [{"kind": "User", "name": "probe"}]),
    )
    ask = lambda path: {"spec": {"user": "probe", "nonResourceAttributes": {"path": path, "verb": "get"}}}  # noqa: E731
    for path, want in (("/healthz", True), ("/metrics/cadvisor", True), ("/readyz", False)):
        code, body = await call(server, "POST", SAR, ask(path))
        assert (code, body["status"]["allowed"]) == (201, want), path


async def test_kubectl_auth_can_i_and_create_rolebinding(tmp_path: Path) -> None:
    s = SimKubeServer(tls=True, tokens={ADMIN_TOKEN: None})
    await s.start()
    try:
        k = Kubectl(kubectl_path(), s.write_kubeconfig(tmp_path / "config", token=ADMIN_TOKEN), tmp_path)
        await k.run("create", "namespace", "shop")
        await k.run("apply", "-f", str(ROOT / "deploy" / "rbac-users.yaml"))
        # kubectl names the API group in the review only for a resource discovery knows
        await k.run("apply", "-f", str(ROOT / "deploy" / "crd.yaml"))
        # kubectl create rolebinding sends protobuf; the stored binding is what the reviews read
        await k.run("-n", "shop", "create", "rolebinding", "sim-user-0-view", "--clusterrole=deploydeck-viewer",
                    "--user=sim-user-0")  # fmt: skip
        stored = s.store.get(ROLE_BINDINGS, "shop", "sim-user-0-view")
        assert stored["subjects"] == [
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "sim-user-0"}
        ]
        assert stored["roleRef"]["name"] == "deploydeck-viewer"
        # sim-user-0 is not in system:masters: kubectl auth can-i answers from the binding
        code, out, _ = await k.run(
            "auth", "can-i", "watch", "deployruns.deploydeck.dev", "-n", "shop", check=False
        )
        assert (code, out.strip()) == (0, "yes")
        code, out, _ = await k.run(
            "auth", "can-i", "delete", "deployruns.deploydeck.dev", "-n", "shop", check=False
        )
        assert (code, out.strip()) == (1, "no")
    finally:
        await s.stop()


# --- RBAC enforced on requests (tokens other than the seeded admin) ----------------------------


async def test_requests_of_a_non_admin_token_are_authorized_by_the_stored_rbac(server: SimKubeServer) -> None:
    """sim-user-1's token carries {get, list, create}: a seeded ClusterRole says so, and a RoleBinding
    grants it more in one namespace only; the admin token is not checked."""
    seeded = server.store.get(rbac.CLUSTER_ROLES, None, "deploydeck-sim:token:sim-user-1")
    assert seeded["rules"] == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["create", "get", "list"]}]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    code, _ = await call(server, "POST", "/api/v1/namespaces/shop/configmaps", cm, token=RELEASE_TOKEN)
    assert code == 201
    patch = {"data": {"a": "2"}}
    code, body = await call(
        server, "PATCH", "/api/v1/namespaces/shop/configmaps/c", patch, token=RELEASE_TOKEN
    )
    assert code == 403 and body["message"] == (
        'configmaps "c" is forbidden: User "sim-user-1" cannot patch resource "configmaps" in API group "" '
        'in the namespace "shop"'
    )
    await create(server, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "cm-edit", "namespace": "shop"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"], "resourceNames": ["c"]}],
    })  # fmt: skip
    await create(
        server,
        binding("RoleBinding", "u1-cm", "Role", "cm-edit", [{"kind": "User", "name": "sim-user-1"}], "shop"),
    )
    code, _ = await call(server, "PATCH", "/api/v1/namespaces/shop/configmaps/c", patch, token=RELEASE_TOKEN)
    assert code == 200  # the Role grants patch on this one ConfigMap
    cm["metadata"]["name"] = "d"
    code, _ = await call(server, "POST", "/api/v1/namespaces/other/configmaps", cm, token=RELEASE_TOKEN)
    assert code == 201
    code, body = await call(
        server, "PATCH", "/api/v1/namespaces/other/configmaps/d", patch, token=RELEASE_TOKEN
    )
    assert code == 403
    code, _ = await call(server, "DELETE", "/api/v1/namespaces/shop/configmaps/c", None, token=ADMIN_TOKEN)
    assert code == 200


async def test_a_subresource_needs_its_own_rule(server: SimKubeServer) -> None:
    """deployments/scale is not deployments: a rule for one does not grant the other."""
    server.tokens["scaler"] = set()  # sim-user-2: nothing but what bindings grant
    await create(server, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "scale-only"},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get"]}],
    })  # fmt: skip
    await create(
        server,
        binding(
            "RoleBinding", "u2", "ClusterRole", "scale-only", [{"kind": "User", "name": "sim-user-2"}], "shop"
        ),
    )
    code, _ = await call(
        server, "GET", "/apis/apps/v1/namespaces/shop/deployments/x/scale", None, token="scaler"
    )
    assert code == 404  # authorized, and there is no such Deployment
    code, body = await call(
        server, "GET", "/apis/apps/v1/namespaces/shop/deployments/x", None, token="scaler"
    )
    assert code == 403 and 'cannot get resource "deployments"' in body["message"]
