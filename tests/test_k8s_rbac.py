"""examples/rbac.yaml grants deploydeck what it needs in every namespace the example plan targets."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_rbac_example_covers_the_example_plan_namespaces() -> None:
    plan = yaml.safe_load((ROOT / "examples" / "full.yaml").read_text())
    wanted = {t["namespace"] for t in plan["targets"].values()}
    docs = [d for d in yaml.safe_load_all((ROOT / "examples" / "rbac.yaml").read_text()) if d]
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}
    bound = {d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding"}
    assert wanted <= set(roles) and wanted <= bound
    for role in roles.values():
        granted = {
            (g, r, v)
            for rule in role["rules"]
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for v in rule["verbs"]
        }
        # rollout undo lists ReplicaSets; the state annotation and scaling patch Deployments
        assert ("apps", "replicasets", "list") in granted
        assert ("apps", "deployments", "patch") in granted
