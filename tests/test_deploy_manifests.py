"""deploy/: every manifest parses, kustomize lists them all, RBAC is least privilege, the agent is sane."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.agent.crd import COMMAND_SUBRESOURCES

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MANIFESTS = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")

# What the agent's own ServiceAccount may hold: (apiGroup, resource) → the verbs it may have.
AGENT_ALLOWED = {
    ("deploydeck.dev", "deployruns"): {"get", "list", "watch", "update", "patch"},
    ("deploydeck.dev", "deployruns/status"): {"get", "update", "patch"},
    ("deploydeck.dev", "deployruns/finalizers"): {"update"},
    ("authentication.k8s.io", "tokenreviews"): {"create"},
    ("authorization.k8s.io", "subjectaccessreviews"): {"create"},
    ("apps", "deployments"): {"get", "list", "watch", "patch"},
    ("apps", "replicasets"): {"get", "list", "watch"},
    ("networking.k8s.io", "ingresses"): {"get", "patch"},
    ("gateway.networking.k8s.io", "httproutes"): {"get", "patch"},
    ("coordination.k8s.io", "leases"): {"get", "list", "watch", "create", "update", "patch"},
}
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                out.append((path.name, doc))
    return out


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == kind}


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role.get("rules", []):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                out.setdefault((group, resource), set()).update(rule.get("verbs", []))
    return out


def agent_grants() -> dict[tuple[str, str], set[str]]:
    roles = {**by_kind("ClusterRole"), **by_kind("Role")}
    total: dict[tuple[str, str], set[str]] = {}
    for binding in [*by_kind("ClusterRoleBinding").values(), *by_kind("RoleBinding").values()]:
        if any(
            s.get("kind") == "ServiceAccount" and s["name"] == "deploydeck-agent" for s in binding["subjects"]
        ):
            for key, verbs in grants(roles[binding["roleRef"]["name"]]).items():
                total.setdefault(key, set()).update(verbs)
    return total


def test_every_manifest_parses_and_has_kind_and_name() -> None:
    docs = documents()
    assert len(docs) >= 10
    for name, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), name


def test_kustomization_lists_every_manifest_and_nothing_missing() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = kustomization["resources"]
    assert sorted(listed) == sorted(p.name for p in MANIFESTS)
    assert len(listed) == len(set(listed))


def test_no_wildcards_anywhere_in_rbac() -> None:
    for name, doc in documents():
        for rule in doc.get("rules", []) if doc["kind"] in {"Role", "ClusterRole"} else []:
            for key in ("verbs", "resources", "apiGroups", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{name}: {doc['metadata']['name']}: '*' in {key}"
            assert not set(rule["verbs"]) & DANGEROUS_VERBS, f"{name}: {rule}"
            assert "nonResourceURLs" not in rule, name


def test_agent_holds_exactly_what_it_needs() -> None:
    held = agent_grants()
    for key, verbs in held.items():
        assert key in AGENT_ALLOWED, f"the agent may not hold {key}"
        assert verbs <= AGENT_ALLOWED[key], (
            f"{key}: {sorted(verbs - AGENT_ALLOWED[key])} beyond what it needs"
        )
    assert set(held) == set(AGENT_ALLOWED), f"missing {set(AGENT_ALLOWED) - set(held)}"
    # never secrets, never the people's command subresources (it checks them for callers)
    assert not any(resource == "secrets" for _, resource in held)
    assert not any(resource.split("/")[-1] in COMMAND_SUBRESOURCES for _, resource in held)
    for binding in by_kind("ClusterRoleBinding").values():
        assert binding["roleRef"]["name"] not in {"cluster-admin", "admin", "edit"}


def test_people_roles_split_acting_from_watching() -> None:
    roles = by_kind("ClusterRole")
    manager = grants(roles["deploydeck-release-manager"])
    for sub in COMMAND_SUBRESOURCES:
        assert manager[("deploydeck.dev", f"deployruns/{sub}")] == {"create"}
    assert {"get", "list", "watch"} <= manager[("deploydeck.dev", "deployruns")]
    viewer = grants(roles["deploydeck-viewer"])
    assert viewer == {("deploydeck.dev", "deployruns"): {"get", "list", "watch"}}


def test_bindings_point_at_roles_and_accounts_that_exist() -> None:
    roles = by_kind("ClusterRole")
    accounts = {(d["metadata"]["namespace"], n) for n, d in by_kind("ServiceAccount").items()}
    for binding in by_kind("ClusterRoleBinding").values():
        assert binding["roleRef"]["name"] in roles
        for subject in binding["subjects"]:
            assert (subject["namespace"], subject["name"]) in accounts


def test_agent_deployment_two_replicas_probes_requests() -> None:
    deployment = by_kind("Deployment")["deploydeck-agent"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "deploydeck-agent"
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["args"][0] == "agent"
    # the database URL comes from a Secret, never written into the manifest
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["DEPLOYDECK_DATABASE_URL"]["valueFrom"]
    port_names = {p["name"] for p in container["ports"]}
    service = by_kind("Service")["deploydeck-agent"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_crd_in_deploy_is_the_generated_one() -> None:
    from core.agent.crd import crd

    (doc,) = [d for _, d in documents() if d["kind"] == "CustomResourceDefinition"]
    assert doc == crd()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_every_object() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (d["kind"], d["metadata"]["name"]) for _, d in documents()
    )
