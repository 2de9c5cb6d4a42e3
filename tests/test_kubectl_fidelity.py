"""kubectl (the real binary) against the simulated API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.sim.kube.controller import DEPLOYMENTS as DEPLOYMENTS_RES
from tests.kube_helpers import CANARY, INGRESS, NS, STABLE, Sim, eventually, sim, start_sim

__all__ = ["sim"]

pytestmark = pytest.mark.real

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: prod
  labels: {app: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        image: api:IMAGE
        ports: [{containerPort: 8080}]
"""


async def test_get_several_kinds_as_json(sim: Sim) -> None:
    k = sim.kubectl()
    listed = await k.json("-n", NS, "get", "deploy,rs,svc,ingress")
    kinds = {(i["kind"], i["metadata"]["name"]) for i in listed["items"]}
    assert {
        ("Deployment", STABLE),
        ("Deployment", CANARY),
        ("Service", STABLE),
        ("Ingress", INGRESS),
    } <= kinds
    assert any(kind == "ReplicaSet" for kind, _ in kinds)
    _, table, _ = await k.run("-n", NS, "get", "deploy")
    assert table.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert any(line.split()[:2] == [STABLE, "10/10"] for line in table.splitlines())


async def test_apply_create_then_configure(sim: Sim, tmp_path: Path) -> None:
    k = sim.kubectl()
    manifest = tmp_path / "api.yaml"
    manifest.write_text(MANIFEST.replace("IMAGE", "1"))
    _, out, _ = await k.run("apply", "-f", str(manifest))
    assert out.strip() == "deployment.apps/api created"
    manifest.write_text(MANIFEST.replace("IMAGE", "2"))
    _, out, _ = await k.run("apply", "-f", str(manifest))
    assert out.strip() == "deployment.apps/api configured"
    _, out, _ = await k.run("apply", "-f", str(manifest))
    assert out.strip() == "deployment.apps/api unchanged"
    _, out, _ = await k.run("-n", NS, "rollout", "status", "deploy/api", "--timeout=20s")
    assert 'deployment "api" successfully rolled out' in out
    d = sim.deployment("api")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "api:2"
    assert "kubectl.kubernetes.io/last-applied-configuration" in d["metadata"]["annotations"]
    _, out, _ = await k.run("apply", "-f", str(manifest), "--dry-run=server")
    assert "server dry run" in out


async def test_set_image_rollout_status_history_and_undo(sim: Sim) -> None:
    k = sim.kubectl()
    await k.run("-n", NS, "set", "image", f"deployment/{STABLE}", "app=shop:2.0")
    _, out, _ = await k.run("-n", NS, "rollout", "status", f"deployment/{STABLE}", "--timeout=20s")
    assert f'deployment "{STABLE}" successfully rolled out' in out
    _, out, _ = await k.run("-n", NS, "rollout", "history", f"deployment/{STABLE}")
    assert [line.split()[0] for line in out.splitlines()[2:] if line.strip()] == ["1", "2"]
    _, out, _ = await k.run("-n", NS, "rollout", "undo", f"deployment/{STABLE}")
    assert out.strip() == f"deployment.apps/{STABLE} rolled back"
    await k.run("-n", NS, "rollout", "status", f"deployment/{STABLE}", "--timeout=20s")
    assert sim.server.deployment_image(NS, STABLE) == "shop:1.0"
    _, out, _ = await k.run("-n", NS, "rollout", "history", f"deployment/{STABLE}")
    assert [line.split()[0] for line in out.splitlines()[2:] if line.strip()] == ["2", "3"]
    _, out, _ = await k.run("-n", NS, "rollout", "undo", f"deployment/{STABLE}", "--to-revision=3")
    assert "skipped rollback" in out


async def test_rollout_status_times_out_on_pods_that_never_get_ready(sim: Sim) -> None:
    sim.server.controller.unready_images.add("shop:broken")
    k = sim.kubectl()
    await k.run("-n", NS, "set", "image", f"deployment/{STABLE}", "app=shop:broken")
    code, _, err = await k.run(
        "-n", NS, "rollout", "status", f"deployment/{STABLE}", "--timeout=1s", check=False
    )
    assert code != 0 and "timed out waiting for the condition" in err


async def test_rollout_undo_refuses_a_paused_deployment(sim: Sim) -> None:
    k = sim.kubectl()
    await k.run("-n", NS, "set", "image", f"deployment/{STABLE}", "app=shop:2.0")
    await k.run("-n", NS, "rollout", "pause", f"deployment/{STABLE}")
    code, _, err = await k.run("-n", NS, "rollout", "undo", f"deployment/{STABLE}", check=False)
    assert code != 0 and "paused" in err


async def test_scale_and_annotate(sim: Sim) -> None:
    k = sim.kubectl()
    _, out, _ = await k.run("-n", NS, "scale", f"deployment/{STABLE}", "--replicas=4")
    assert out.strip() == f"deployment.apps/{STABLE} scaled"
    await eventually(lambda: sim.deployment()["status"].get("replicas") == 4, what="scale down to 4")
    _, out, _ = await k.run("-n", NS, "annotate", f"deployment/{STABLE}", "team=payments")
    assert out.strip() == f"deployment.apps/{STABLE} annotated"
    assert sim.deployment()["metadata"]["annotations"]["team"] == "payments"
    code, _, err = await k.run("-n", NS, "annotate", f"deployment/{STABLE}", "team=other", check=False)
    assert code != 0 and "--overwrite is false" in err


async def test_patch_strategic_merge_and_json(sim: Sim) -> None:
    k = sim.kubectl()
    env = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "app", "env": [{"name": "MODE", "value": "x"}]}]}}
        }
    }
    await k.run("-n", NS, "patch", "deploy", STABLE, "--type=strategic", "-p", json.dumps(env))
    container = sim.deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "MODE", "value": "x"}] and container["image"] == "shop:1.0"
    await k.run(
        "-n", NS, "patch", "deploy", STABLE, "--type=merge", "-p", '{"metadata":{"labels":{"tier":"web"}}}'
    )
    assert sim.deployment()["metadata"]["labels"]["tier"] == "web"
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    await k.run("-n", NS, "patch", "deploy", STABLE, "--type=json", "-p", json.dumps(ops))
    assert sim.deployment()["spec"]["replicas"] == 3
    bad = [{"op": "test", "path": "/spec/replicas", "value": 99}]
    code, _, err = await k.run(
        "-n", NS, "patch", "deploy", STABLE, "--type=json", "-p", json.dumps(bad), check=False
    )
    assert code != 0 and "test failed" in err
    code, _, err = await k.run("-n", NS, "get", "deploy", "missing", check=False)
    assert code != 0 and 'deployments.apps "missing" not found' in err


async def test_get_watch_with_request_timeout(sim: Sim) -> None:
    k = sim.kubectl()
    code, out, _ = await k.run("-n", NS, "get", "deploy", "-w", "--request-timeout=1s", check=False)
    assert code == 0, out
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert lines[0][:2] == ["NAME", "READY"]
    assert {STABLE, CANARY} <= {line[0] for line in lines[1:]}
    _, out, _ = await k.run(
        "-n", NS, "get", "deploy", STABLE, "-w", "-o", "json", "--request-timeout=1s", check=False
    )
    assert json.loads(out)["metadata"]["name"] == STABLE


async def test_get_in_chunks_lists_every_object_once(sim: Sim, tmp_path: Path) -> None:
    k = sim.kubectl()
    manifest = tmp_path / "cms.yaml"
    manifest.write_text(
        "---\n".join(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{n}, namespace: {NS}}}\n"
            for n in range(5)
        )
    )
    await k.run("apply", "-f", str(manifest))
    _, out, err = await k.run("-n", NS, "get", "configmaps", "--chunk-size=2", "-o", "name", "-v=6")
    assert out.split() == [f"configmap/cm-{n}" for n in range(5)]
    # kubectl really paged: limit=2 and then the server's continue tokens
    pages = [line for line in err.splitlines() if "/configmaps?" in line and "limit=2" in line]
    assert len(pages) == 3 and sum("continue=" in line for line in pages) == 2


async def test_invalid_name_and_selector_change_are_refused_like_a_real_server(
    sim: Sim, tmp_path: Path
) -> None:
    k = sim.kubectl()
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(MANIFEST.replace("name: api", "name: Bad_Api").replace("IMAGE", "1"))
    code, _, err = await k.run("apply", "-f", str(manifest), check=False)
    assert code != 0
    assert 'The Deployment "Bad_Api" is invalid: metadata.name: Invalid value: "Bad_Api"' in err
    labels = {"app": STABLE, "track": "other"}
    selector = {"spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}}}}
    code, _, err = await k.run(
        "-n", NS, "patch", "deploy", STABLE, "--type=merge", "-p", json.dumps(selector), check=False
    )
    assert code != 0 and "spec.selector" in err and "field is immutable" in err


async def test_auth_whoami_answers_who_the_credentials_belong_to(sim: Sim) -> None:
    _, out, _ = await sim.kubectl().run("auth", "whoami")
    rows = [line.split(None, 1) for line in out.splitlines()]
    assert rows == [
        ["ATTRIBUTE", "VALUE"],
        ["Username", "system:admin"],
        ["Groups", "[system:masters system:authenticated]"],
    ]


async def test_get_events_and_describe_show_the_rollout_s_scaling(sim: Sim) -> None:
    k = sim.kubectl()
    await k.run("-n", NS, "set", "image", f"deployment/{STABLE}", "app=shop:2.0")
    await k.run("-n", NS, "rollout", "status", f"deployment/{STABLE}", "--timeout=20s")
    new_rs = next(
        rs["metadata"]["name"]
        for rs in sim.replicasets()
        if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        and rs["metadata"]["name"].startswith(f"{STABLE}-")
        and not rs["metadata"]["name"].startswith(CANARY)
    )
    _, out, _ = await k.run("-n", NS, "get", "events", f"--field-selector=involvedObject.name={STABLE}")
    lines = out.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    scaling = [line.split(None, 4) for line in lines[1:] if "ScalingReplicaSet" in line]
    assert scaling and all(r[3] == f"deployment/{STABLE}" for r in scaling)
    assert f"Scaled up replica set {new_rs} from 0 to 3" in out  # 25 % surge of 10, rounded up
    ups = [r[4] for r in scaling if r[4].startswith(f"Scaled up replica set {new_rs} ")]
    assert ups[-1].endswith(" to 10")
    _, described, _ = await k.run("-n", NS, "describe", "deployment", STABLE)
    events = described.split("Events:", 1)[1]
    assert "ScalingReplicaSet" in events and "deployment-controller" in events
    assert f"Scaled up replica set {new_rs} from 0 to 3" in events
    listed = await k.json(
        "-n", NS, "get", "events.v1.events.k8s.io", f"--field-selector=regarding.name={STABLE}"
    )
    assert listed["items"] and all(e["apiVersion"] == "events.k8s.io/v1" for e in listed["items"])
    assert {e["reportingController"] for e in listed["items"]} == {"deployment-controller"}
    assert any(e["note"] == f"Scaled up replica set {new_rs} from 0 to 3" for e in listed["items"])


async def test_create_namespace_and_deployment_with_kubectl_s_protobuf_bodies(sim: Sim) -> None:
    k = sim.kubectl()
    _, out, _ = await k.run("create", "namespace", "team-a")
    assert out.strip() == "namespace/team-a created"
    _, table, _ = await k.run("get", "namespace", "team-a")
    assert table.splitlines()[1].split()[:2] == ["team-a", "Active"]
    _, out, _ = await k.run(
        "-n", "team-a", "create", "deployment", "hello", "--image=nginx:1.25", "--replicas=2", "--port=80"
    )
    assert out.strip() == "deployment.apps/hello created"
    await k.run("-n", "team-a", "rollout", "status", "deployment/hello", "--timeout=20s")
    d = await k.json("-n", "team-a", "get", "deployment", "hello")
    assert d["spec"]["replicas"] == 2 and d["spec"]["selector"] == {"matchLabels": {"app": "hello"}}
    (container,) = d["spec"]["template"]["spec"]["containers"]
    assert (container["name"], container["image"]) == ("nginx", "nginx:1.25")
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert d["status"]["availableReplicas"] == 2
    _, out, _ = await k.run("create", "deployment", "zero", "--image=nginx:1.25", "--replicas=0")
    assert (
        sim.server.store.get(DEPLOYMENTS_RES, "default", "zero")["spec"]["replicas"] == 0
    )  # explicit 0 kept
    code, _, err = await k.run("create", "namespace", "team-a", check=False)
    assert code != 0 and 'namespaces "team-a" already exists' in err
    code, _, err = await k.run("create", "deployment", "Bad_Name", "--image=x", check=False)
    assert code != 0 and 'Deployment.apps "Bad_Name" is invalid: metadata.name' in err
    _, out, _ = await k.run("create", "configmap", "settings", "--from-literal=mode=fast")
    assert out.strip() == "configmap/settings created"
    assert (await k.json("get", "configmap", "settings"))["data"] == {"mode": "fast"}


INIT_MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: prod}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      initContainers:
      - {name: migrate, image: "api:1", command: [migrate], ports: [{containerPort: 9000}]}
      containers:
      - {name: api, image: "api:1"}
"""


async def test_rollout_undo_with_init_containers_reuses_the_old_replica_set(sim: Sim, tmp_path: Path) -> None:
    k = sim.kubectl()
    manifest = tmp_path / "init.yaml"
    manifest.write_text(INIT_MANIFEST)
    await k.run("apply", "-f", str(manifest))
    await k.run("-n", NS, "rollout", "status", "deployment/api", "--timeout=20s")
    first = {rs["metadata"]["name"] for rs in sim.replicasets() if rs["metadata"]["name"].startswith("api-")}
    await k.run("-n", NS, "set", "image", "deployment/api", "migrate=api:2", "api=api:2")
    await k.run("-n", NS, "rollout", "status", "deployment/api", "--timeout=20s")
    await k.run("-n", NS, "rollout", "undo", "deployment/api")
    await k.run("-n", NS, "rollout", "status", "deployment/api", "--timeout=20s")
    owned = [rs for rs in sim.replicasets() if rs["metadata"]["name"].startswith("api-")]
    assert len(owned) == 2  # the undo went back to revision 1's ReplicaSet instead of making a third
    active = [rs for rs in owned if rs["spec"]["replicas"] == 2]
    assert {rs["metadata"]["name"] for rs in active} == first
    assert active[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert active[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    init = sim.deployment("api")["spec"]["template"]["spec"]["initContainers"][0]
    assert init["image"] == "api:1" and init["imagePullPolicy"] == "IfNotPresent"


async def test_get_hpa_shows_the_autoscaler_on_a_deployment(sim: Sim, tmp_path: Path) -> None:
    k = sim.kubectl()
    manifest = tmp_path / "hpa.yaml"
    manifest.write_text(
        f"""\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: {STABLE}, namespace: {NS}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {STABLE}}}
  minReplicas: 4
  maxReplicas: 20
"""
    )
    _, out, _ = await k.run("apply", "-f", str(manifest))
    assert out.strip() == f"horizontalpodautoscaler.autoscaling/{STABLE} created"
    _, table, _ = await k.run("-n", NS, "get", "hpa")
    assert table.splitlines()[0].split() == [
        "NAME",
        "REFERENCE",
        "TARGETS",
        "MINPODS",
        "MAXPODS",
        "REPLICAS",
        "AGE",
    ]
    assert table.splitlines()[1].split()[:5] == [STABLE, f"Deployment/{STABLE}", "<unknown>", "4", "20"]


async def test_over_tls_kubectl_sends_tokens_and_whoami_names_their_user(tmp_path: Path) -> None:
    s = await start_sim(
        tmp_path, tokens={"admin": None, "reader": {"get", "list", "watch"}}, token="reader", tls=True
    )
    try:
        assert s.server.url.startswith("https://")
        k = s.kubectl()
        review = await k.json("auth", "whoami")
        # a read-only user may still ask who it is (system:basic-user) and gets its own name
        assert review["status"]["userInfo"] == {"username": "sim-user-1", "groups": ["system:authenticated"]}
        _, out, _ = await k.run("-n", NS, "get", "deploy", STABLE, "-o", "name")
        assert out.strip() == f"deployment.apps/{STABLE}"
        code, _, err = await k.run("-n", NS, "scale", f"deployment/{STABLE}", "--replicas=3", check=False)
        # the real authorizer names the subresource kubectl scale patches
        assert code != 0 and 'User "sim-user-1" cannot patch resource "deployments/scale"' in err
        s.server.write_kubeconfig(s.kubeconfig, token="stolen")
        code, _, err = await k.run("auth", "whoami", check=False)
        assert code != 0 and "Unauthorized" in err
    finally:
        await s.server.stop()
    assert not s.server.cert.folder.exists()  # the key does not outlive the server


async def test_get_pods_shows_terminating_pods_during_a_restart(tmp_path: Path) -> None:
    s = await start_sim(tmp_path, replicas=2)
    s.server.controller.pods.shutdown_s = 30.0  # long enough to see them (capped by the 30 s grace)
    try:
        k = s.kubectl()
        await k.run("-n", NS, "rollout", "restart", f"deployment/{STABLE}")
        await k.run("-n", NS, "rollout", "status", f"deployment/{STABLE}", "--timeout=20s")
        _, out, _ = await k.run("-n", NS, "get", "pods", "-l", "track=stable")
        rows = [line.split() for line in out.splitlines()[1:]]
        assert sorted(r[2] for r in rows) == ["Running", "Running", "Terminating", "Terminating"]
        assert all(r[1] == "0/1" for r in rows if r[2] == "Terminating")
    finally:
        await s.server.stop()


async def test_over_tls_without_tokens_kubectl_does_not_prompt(tmp_path: Path) -> None:
    s = await start_sim(tmp_path, tls=True)
    try:
        # a kubeconfig user without credentials makes kubectl ask for a password over TLS (and fail
        # without a terminal); the server asks for none, so its kubeconfig carries a token it ignores
        _, out, _ = await s.kubectl().run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        assert out == "system:admin"
    finally:
        await s.server.stop()
