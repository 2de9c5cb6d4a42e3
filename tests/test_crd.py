"""The DeployRun CRD: generated from the plan models, structural, and it accepts the example plans."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.agent import crd as crd_mod
from core.agent.crd import (
    DeployRunStatus,
    crd,
    crd_yaml,
    deployrun,
    deployrun_name,
    model_schema,
    openapi_schema,
    structural_problems,
)
from core.plan import Plan, parse_plan

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name != "rbac.yaml")
jsonschema = pytest.importorskip("jsonschema")


def to_json_schema(node: Any, *, strict_fields: bool = True) -> Any:
    """The CRD's OpenAPI 3.0 schema as draft-4 JSON Schema, the way the API server reads it:
    `nullable` admits null, int-or-string admits both, and unknown fields are an error
    (kubectl's default --validate=strict; without it the API server would drop them silently)."""
    if isinstance(node, list):
        return [to_json_schema(n, strict_fields=strict_fields) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v, strict_fields=strict_fields) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out["type"] = ["integer", "string"]
    if out.pop("nullable", False):
        out["type"] = [*([out["type"]] if isinstance(out.get("type"), str) else out.get("type", [])), "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if strict_fields and out.get("type") == "object" and "properties" in out and node is not None:
        out.setdefault("additionalProperties", False)
    return out


def spec_validator() -> Any:
    schema = to_json_schema(openapi_schema())
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft4Validator(schema)


def errors_of(manifest: dict) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in spec_validator().iter_errors(manifest)
    ]


# --- drift and shape ----------------------------------------------------------------------


def test_committed_crd_matches_the_models() -> None:
    committed = (ROOT / "deploy" / "crd.yaml").read_text(encoding="utf-8")
    assert committed == crd_yaml(), (
        "deploy/crd.yaml is stale: run `python -m core.agent.crd > deploy/crd.yaml`"
    )


def test_every_plan_field_is_in_the_schema_and_nothing_else() -> None:
    spec = openapi_schema()["properties"]["spec"]

    def walk(model: type, node: dict, where: str) -> None:
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        assert set(node["properties"]) == set(fields), where
        for key, field in fields.items():
            inner = field.annotation
            for candidate in getattr(inner, "__args__", (inner,)):
                if isinstance(candidate, type) and issubclass(candidate, crd_mod.BaseModel):
                    child = node["properties"][key]
                    walk(candidate, child.get("items", child), f"{where}.{key}")

    walk(Plan, spec, "spec")
    assert set(spec["required"]) == {"service", "version", "change", "targets"}


def test_schema_is_structural_and_the_checker_catches_what_is_not() -> None:
    assert structural_problems(openapi_schema()) == []
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/x"},
            "b": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "c": {"type": "object", "additionalProperties": False},
        },
    }
    found = structural_problems(bad)
    assert any(".a: $ref" in p for p in found)
    assert any(".b: no type" in p for p in found) and any(".b: anyOf branch" in p for p in found)
    assert any(".c: additionalProperties: false" in p for p in found)


def test_union_without_structural_form_is_refused_not_guessed() -> None:
    from pydantic import BaseModel

    class Odd(BaseModel):
        x: int | str

    with pytest.raises(crd_mod.SchemaError, match=r"Odd\.x"):
        model_schema(Odd)


def test_crd_names_subresource_and_printer_columns() -> None:
    doc = crd()
    assert doc["metadata"]["name"] == "deployruns.deploydeck.dev"
    assert doc["spec"]["scope"] == "Namespaced" and doc["spec"]["names"]["kind"] == "DeployRun"
    (version,) = doc["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["storage"] and version["served"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Service": ".spec.service",
        "From": ".spec.version.from",
        "To": ".spec.version.to",
        "Phase": ".status.phase",
        "Weight": ".status.weight",
        "Age": ".metadata.creationTimestamp",
    }


def test_nullable_duration_and_exclusive_bounds_are_openapi_3_0() -> None:
    spec = openapi_schema()["properties"]["spec"]["properties"]
    production = spec["targets"]["properties"]["production"]["properties"]
    assert production["canary_deployment"] == {"type": "string", "nullable": True}
    assert production["rollout_timeout"]["x-kubernetes-int-or-string"] is True
    budget = spec["gates"]["properties"]["error_budget"]["properties"]["objective"]
    assert budget == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 100,
        "exclusiveMaximum": True,
    }
    assert "default" not in yaml.safe_dump(openapi_schema())  # defaults come from the loader, not etcd


def test_status_schema_holds_persisted_progress_and_authenticated_sign_offs() -> None:
    status = openapi_schema()["properties"]["status"]["properties"]
    assert {"phase", "step", "weight", "windows", "outcome", "signOffs", "deployId", "leaseHolder"} <= set(
        status
    )
    assert "canary" in status["phase"]["enum"] and "rolled_back" in status["outcome"]["enum"]
    sign = status["signOffs"]["items"]["properties"]
    assert {"user", "groups", "selfDeclared", "gate", "at"} <= set(sign)
    assert status["windows"]["items"]["properties"]["started"]["format"] == "date-time"


# --- the examples are valid DeployRuns; mistakes are not ---------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_plans_are_valid_deployrun_specs(path: Path) -> None:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    manifest = deployrun(raw)
    assert manifest["metadata"]["namespace"] == raw["targets"]["production"]["namespace"]
    assert errors_of(manifest) == []


def _minimal() -> dict:
    return deployrun(yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda s: s.update(servce="x"), "spec"),  # a typo is an unknown field, not a silent default
        (
            lambda s: s["canary"].update(steps=[{"weight": 101, "observe": "5m"}]),
            "spec.canary.steps.0.weight",
        ),
        (
            lambda s: s["targets"]["production"].update(strategy="blue-green"),
            "spec.targets.production.strategy",
        ),
        (lambda s: s["change"].update({"class": "urgent"}), "spec.change.class"),
        (
            lambda s: s["canary"].update(steps=[{"weight": 100, "observe": "five minutes"}]),
            "spec.canary.steps.0.observe",
        ),
        (lambda s: s.pop("targets"), "spec"),
        (lambda s: s.update(service="Checkout"), "spec.service"),
    ],
    ids=[
        "unknown-field",
        "weight-101",
        "strategy",
        "class",
        "duration-text",
        "missing-targets",
        "service-case",
    ],
)
def test_schema_rejects_mistakes(edit: Any, where: str) -> None:
    manifest = _minimal()
    manifest["spec"].setdefault("canary", {"steps": []})
    edit(manifest["spec"])
    errors = errors_of(manifest)
    assert errors and any(e.startswith(f"{where}:") for e in errors), errors


def test_schema_accepts_what_the_plan_loader_accepts() -> None:
    spec = _minimal()["spec"]
    spec["canary"] = {"steps": [{"weight": 10, "observe": 90}, {"weight": 100, "observe": "1h 30m"}]}
    spec["targets"]["production"]["canary_deployment"] = None
    assert errors_of(deployrun(spec)) == []
    parse_plan(yaml.safe_dump(spec), Path("inline.yaml"))  # and the loader agrees


def test_status_example_validates() -> None:
    manifest = _minimal()
    status = DeployRunStatus.model_validate(
        {
            "deployId": "d-1",
            "phase": "canary",
            "step": 1,
            "weight": 25,
            "windows": [{"name": "canary-step-1", "started": "2026-12-02T10:00:00Z"}],
            "signOffs": [
                {
                    "gate": "review",
                    "user": "alice",
                    "groups": ["release-managers"],
                    "at": "2026-12-02T09:00:00Z",
                }
            ],
        }
    )
    manifest["status"] = status.model_dump(mode="json", by_alias=True)
    assert errors_of(manifest) == []
    bad = copy.deepcopy(manifest)
    bad["status"]["weight"] = 150
    assert any(e.startswith("status.weight:") for e in errors_of(bad))


def test_deployrun_names_are_dns_labels() -> None:
    assert deployrun_name("checkout", "1.5.0") == "checkout-1-5-0"
    assert deployrun_name("checkout", "v2_RC/1") == "checkout-v2-rc-1"
    assert len(deployrun_name("a" * 60, "1.2.3")) <= 63
