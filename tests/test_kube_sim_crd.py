"""CustomResourceDefinitions in the simulated API server: deploy/crd.yaml registers DeployRun, whose objects
are pruned and validated against the CRD's schema, have a status subresource, printer columns and
finalizers, as kube-apiserver's apiextensions-apiserver serves them."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from core.agent.crd import deployrun
from core.sim.kube import SimKubeServer
from tests.kube_helpers import Kubectl, kubectl_path

ROOT = Path(__file__).resolve().parent.parent
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
RUNS = "/apis/deploydeck.dev/v1alpha1/namespaces/shop/deployruns"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


async def call(
    server: SimKubeServer, method: str, path: str, body: Any = None, ctype: str = "application/json"
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        data = json.dumps(body) if body is not None else None
        async with session.request(
            method, server.url + path, data=data, headers={"Content-Type": ctype}
        ) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text.startswith("{") else text)


def run_manifest(name: str = "checkout-1-5-0") -> dict[str, Any]:
    plan = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
    return deployrun(plan, name=name, namespace="shop")


@pytest.fixture
async def server() -> AsyncIterator[SimKubeServer]:
    s = SimKubeServer()
    await s.start()
    try:
        code, _ = await call(s, "POST", "/api/v1/namespaces", {"metadata": {"name": "shop"}})
        assert code == 201
        code, body = await call(
            s, "POST", CRD_PATH, yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
        )
        assert code == 201, body
        yield s
    finally:
        await s.stop()


async def test_kubectl_apply_registers_deployrun_and_get_shows_its_printer_columns(tmp_path: Path) -> None:
    s = SimKubeServer(tls=True)
    await s.start()
    try:
        k = Kubectl(kubectl_path(), s.write_kubeconfig(tmp_path / "config"), tmp_path)
        await k.run("create", "namespace", "shop")
        _, out, _ = await k.run("apply", "-f", str(ROOT / "deploy" / "crd.yaml"))
        assert "customresourcedefinition.apiextensions.k8s.io/deployruns.deploydeck.dev created" in out
        _, out, _ = await k.run("api-resources", "--api-group=deploydeck.dev")
        assert "deployruns" in out and "drun" in out and "DeployRun" in out
        manifest = tmp_path / "run.yaml"
        manifest.write_text(yaml.safe_dump(run_manifest()))
        _, out, _ = await k.run("apply", "-f", str(manifest))
        assert "deployrun.deploydeck.dev/checkout-1-5-0 created" in out
        await k.run(
            "patch", "drun", "checkout-1-5-0", "-n", "shop", "--subresource=status", "--type=merge",
            "-p", '{"status": {"phase": "canary", "weight": 25}}',
        )  # fmt: skip
        _, out, _ = await k.run("get", "deployruns", "-A")
        header, row = out.splitlines()[:2]
        assert header.split() == ["NAMESPACE", "NAME", "SERVICE", "FROM", "TO", "PHASE", "WEIGHT", "AGE"]
        assert row.split()[:7] == ["shop", "checkout-1-5-0", "checkout", "1.4.2", "1.5.0", "canary", "25"]
        # kubectl validates strictly by default: an unknown field is the server's 400, not pruned silently
        bad = run_manifest("checkout-bad")
        bad["spec"]["bogus"] = 1
        manifest.write_text(yaml.safe_dump(bad))
        code, _, err = await k.run("apply", "-f", str(manifest), check=False)
        assert code != 0 and 'unknown field "spec.bogus"' in err
    finally:
        await s.stop()


async def test_discovery_serves_the_group_only_once_the_crd_exists(server: SimKubeServer) -> None:
    code, body = await call(server, "GET", "/apis/deploydeck.dev/v1alpha1")
    assert code == 200 and [r["name"] for r in body["resources"]] == ["deployruns", "deployruns/status"]
    code, body = await call(server, "GET", CRD_PATH + "/deployruns.deploydeck.dev")
    assert {c["type"]: c["status"] for c in body["status"]["conditions"]}["Established"] == "True"
    code, _ = await call(server, "DELETE", CRD_PATH + "/deployruns.deploydeck.dev")
    assert code == 200
    code, _ = await call(server, "GET", "/apis/deploydeck.dev/v1alpha1")
    assert code == 404
    code, _ = await call(server, "GET", RUNS)
    assert code == 404


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (lambda s: s.update(service="Checkout_"), "spec.service", "should match"),
        (lambda s: s["version"].pop("to"), "spec.version.to", "Required value"),
        (lambda s: s["change"].update({"class": "urgent"}), "spec.change.class", "Unsupported value"),
        (lambda s: s["version"].update({"to": 15}), "spec.version.to", "must be of type string"),
        (lambda s: s.update(service="a" * 64), "spec.service", "Too long"),
    ],
)
async def test_objects_are_validated_against_the_schema_with_422_naming_the_field(
    server: SimKubeServer, change: Any, field: str, problem: str
) -> None:
    manifest = run_manifest()
    change(manifest["spec"])
    code, body = await call(server, "POST", RUNS, manifest)
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["details"]["kind"] == "DeployRun" and body["details"]["group"] == "deploydeck.dev"
    assert any(c["field"] == field and problem in c["message"] for c in body["details"]["causes"]), body


async def test_status_bounds_and_required_spec_are_checked(server: SimKubeServer) -> None:
    code, body = await call(
        server,
        "POST",
        RUNS,
        {"apiVersion": "deploydeck.dev/v1alpha1", "kind": "DeployRun", "metadata": {"name": "x"}},
    )
    assert code == 422 and [c["field"] for c in body["details"]["causes"]] == ["spec"]
    code, _ = await call(server, "POST", RUNS, run_manifest())
    assert code == 201
    code, body = await call(
        server, "PATCH", RUNS + "/checkout-1-5-0/status", {"status": {"weight": 101}}, MERGE
    )
    assert code == 422 and body["details"]["causes"][0]["field"] == "status.weight"
    assert "less than or equal to 100" in body["details"]["causes"][0]["message"]


async def test_unknown_fields_are_pruned_unless_strict(server: SimKubeServer) -> None:
    manifest = run_manifest()
    manifest["spec"]["bogus"] = {"a": 1}
    manifest["spec"]["version"]["extra"] = "x"
    code, body = await call(server, "POST", RUNS, manifest)
    assert code == 201 and "bogus" not in body["spec"] and "extra" not in body["spec"]["version"]
    manifest["metadata"]["name"] = "strict"
    code, body = await call(server, "POST", RUNS + "?fieldValidation=Strict", manifest)
    assert code == 400 and 'unknown field "spec.bogus"' in body["message"]


async def test_status_subresource_splits_spec_and_status_writes(server: SimKubeServer) -> None:
    code, created = await call(server, "POST", RUNS, run_manifest())
    assert created["metadata"]["generation"] == 1 and created["status"] == {}
    url = RUNS + "/checkout-1-5-0"
    # a main-resource write cannot set status
    code, body = await call(server, "PATCH", url, {"status": {"phase": "canary"}}, MERGE)
    assert code == 200 and body["status"] == {} and body["metadata"]["generation"] == 1
    # a /status write sets status, ignores spec, and does not bump generation
    code, body = await call(
        server, "PATCH", url + "/status", {"status": {"phase": "canary"}, "spec": {"service": "other"}}, MERGE
    )
    assert body["status"] == {"phase": "canary"} and body["spec"]["service"] == "checkout"
    assert body["metadata"]["generation"] == 1
    # a label change is not a spec change either; a spec change is
    code, body = await call(server, "PATCH", url, {"metadata": {"labels": {"a": "b"}}}, MERGE)
    assert body["metadata"]["generation"] == 1
    ops = [{"op": "replace", "path": "/spec/version/to", "value": "1.5.1"}]
    code, body = await call(server, "PATCH", url, ops, JSON_PATCH)
    assert code == 200 and body["spec"]["version"]["to"] == "1.5.1" and body["metadata"]["generation"] == 2
    assert body["status"] == {"phase": "canary"}
    code, body = await call(server, "PATCH", url, {"spec": {"service": "x"}}, STRATEGIC)
    assert (code, body["reason"]) == (415, "UnsupportedMediaType")


async def test_list_get_and_delete(server: SimKubeServer) -> None:
    for name in ("a-1", "b-2"):
        code, _ = await call(server, "POST", RUNS, run_manifest(name))
        assert code == 201
    code, body = await call(server, "GET", "/apis/deploydeck.dev/v1alpha1/deployruns")
    assert body["kind"] == "DeployRunList" and [i["metadata"]["name"] for i in body["items"]] == [
        "a-1",
        "b-2",
    ]
    code, body = await call(server, "DELETE", RUNS + "/a-1")
    assert code == 200
    code, body = await call(server, "GET", RUNS + "/a-1")
    assert (code, body["reason"]) == (404, "NotFound") and "deployruns.deploydeck.dev" in body["message"]


async def test_finalizers_hold_a_deleted_object_until_they_are_removed(server: SimKubeServer) -> None:
    manifest = run_manifest()
    manifest["metadata"]["finalizers"] = ["deploydeck.dev/agent"]
    code, created = await call(server, "POST", RUNS, manifest)
    seen: list[tuple[str, Any]] = []

    async def watch() -> None:
        rv = created["metadata"]["resourceVersion"]
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"{server.url}{RUNS}?watch=true&resourceVersion={rv}&timeoutSeconds=5"
            ) as r:
                async for line in r.content:
                    event = json.loads(line)
                    seen.append((event["type"], event["object"]["metadata"]))
                    if event["type"] == "DELETED":
                        return

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0.05)
    code, body = await call(server, "DELETE", RUNS + "/checkout-1-5-0")
    assert code == 200 and body["metadata"]["deletionTimestamp"]
    code, body = await call(server, "GET", RUNS + "/checkout-1-5-0")
    assert code == 200 and body["metadata"]["finalizers"] == ["deploydeck.dev/agent"]
    # a finalizer cannot be added while the object is being deleted
    code, body = await call(
        server,
        "PATCH",
        RUNS + "/checkout-1-5-0",
        {"metadata": {"finalizers": ["a", "deploydeck.dev/agent"]}},
        MERGE,
    )
    assert code == 422 and body["details"]["causes"][0]["field"] == "metadata.finalizers"
    code, _ = await call(server, "PATCH", RUNS + "/checkout-1-5-0", {"metadata": {"finalizers": None}}, MERGE)
    assert code == 200
    await asyncio.wait_for(watcher, 5)
    assert [t for t, _ in seen] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert seen[0][1]["deletionTimestamp"] and "finalizers" not in seen[1][1]
    code, _ = await call(server, "GET", RUNS + "/checkout-1-5-0")
    assert code == 404


async def test_crd_without_schema_or_with_a_wrong_name_is_invalid(server: SimKubeServer) -> None:
    crd = yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
    broken = copy.deepcopy(crd)
    broken["metadata"]["name"] = "runs.deploydeck.dev"
    del broken["spec"]["versions"][0]["schema"]
    code, body = await call(server, "POST", CRD_PATH, broken)
    assert code == 422
    fields = [c["field"] for c in body["details"]["causes"]]
    assert fields == ["metadata.name", "spec.versions[0].schema.openAPIV3Schema"]
    # an update is checked too: a CRD cannot lose its storage version's schema
    del crd["spec"]["versions"][0]["schema"]
    code, body = await call(server, "PUT", CRD_PATH + "/deployruns.deploydeck.dev", crd)
    assert code == 422 and [c["field"] for c in body["details"]["causes"]] == [
        "spec.versions[0].schema.openAPIV3Schema"
    ]
