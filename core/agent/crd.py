"""The DeployRun custom resource: its CRD generated from the plan models, and plan → DeployRun.

``spec`` is the plan exactly as written (``${VAR}`` references stay references: the agent
interpolates them from its own environment and Secrets, so a token never lands in etcd through
a DeployRun), ``status`` is the run's persisted progress (:class:`DeployRunStatus`).

The OpenAPI schema is generated, never hand-edited: ``python -m core.agent.crd > deploy/crd.yaml``
rewrites the committed file and ``tests/test_crd.py`` fails when the two drift. Kubernetes wants a
*structural* schema (every node typed, no ``$ref``, no ``anyOf`` carrying types), so pydantic's JSON
schema is rewritten here: references inlined, ``X | None`` made ``nullable``, durations (``"5m"`` or
seconds) made int-or-string, ``date | datetime`` a string, draft 2020-12's numeric
``exclusiveMinimum`` turned into OpenAPI 3.0's boolean form, defaults dropped (the API server
would otherwise write them into the stored spec; the plan loader applies them).
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema

from core.domain import Outcome, Phase
from core.durations import parse_duration
from core.plan import Plan

GROUP = "deploydeck.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "DeployRun"
PLURAL = "deployruns"
SINGULAR = "deployrun"
SHORT_NAMES = ["drun"]
#: commands the agent authorizes with a SubjectAccessReview on deployruns/<name>; the API server
#: does not serve them (a CRD has only status and scale), RBAC rules may still name them.
COMMAND_SUBRESOURCES = ("signoff", "proceed", "rollback", "abort", "pause")


# --- status: what a run persists about itself ------------------------------------------


class _Status(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WindowStart(_Status):
    """A timed window (canary step observe, soak, verification) and when it began: deadlines
    persist their start, never a remaining time, so a resumed run keeps the same end."""

    name: str = Field(description="e.g. canary-step-2, staging-soak, verification")
    started: dt.datetime


class SignOffStatus(_Status):
    gate: str
    kind: Literal["sign", "override"] = "sign"
    user: str = Field(description="the TokenReview's username, or the --as name when selfDeclared")
    groups: list[str] = Field(default_factory=list)
    self_declared: bool = Field(
        default=False, alias="selfDeclared", description="true: nobody authenticated this name"
    )
    note: str = ""
    at: dt.datetime


class Condition(_Status):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: dt.datetime | None = Field(default=None, alias="lastTransitionTime")


class AgentRef(_Status):
    """The replica driving the run: its lease holder identity and its API URL (where the other
    replicas forward commands and event streams)."""

    holder: str
    url: str | None = None


class DeployRunStatus(_Status):
    deploy_id: str | None = Field(default=None, alias="deployId")
    phase: Phase | None = None
    phase_since: dt.datetime | None = Field(default=None, alias="phaseSince")
    step: int | None = Field(default=None, ge=0, description="index of the canary step")
    weight: int = Field(default=0, ge=0, le=100, description="canary traffic percent")
    windows: list[WindowStart] = Field(default_factory=list)
    outcome: Outcome | None = None
    sign_offs: list[SignOffStatus] = Field(default_factory=list, alias="signOffs")
    lease_holder: str | None = Field(default=None, alias="leaseHolder")
    agent: AgentRef | None = Field(default=None, description="the replica driving it; null: nobody")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    message: str = ""
    conditions: list[Condition] = Field(default_factory=list)


# --- pydantic JSON schema → Kubernetes structural schema ----------------------------------

_DURATION = "x-deploydeck-duration"
_KEEP = ("enum", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems")
_FORMATS = {"date-time", "date"}


class _KubeJsonSchema(GenerateJsonSchema):
    """Marks durations: their validation schema says "number", but a plan writes "5m"."""

    def function_before_schema(self, schema: Any) -> Any:
        if schema.get("function", {}).get("function") is parse_duration:
            return {_DURATION: True}
        return super().function_before_schema(schema)


class SchemaError(Exception):
    """A model the generator does not know how to express structurally (teach it, do not hand-edit)."""


def _structural(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        extra = {k: v for k, v in node.items() if k not in {"$ref", "default", "title"}}
        return _structural({**defs[name], **extra}, defs, where)
    if node.get(_DURATION):
        return {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _DURATION_TEXT}],
        }
    out: dict[str, Any] = {}
    if node.get("description"):
        out["description"] = node["description"]
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        nullable = len(branches) < len(node["anyOf"])
        if len(branches) == 1:
            inner = _structural(branches[0], defs, where)
        elif all(b.get("type") == "string" for b in branches):  # date | datetime
            inner = {"type": "string"}
        else:
            raise SchemaError(f"{where}: a union of {branches} has no structural form")
        out.update(inner)
        if nullable:
            out["nullable"] = True
        return out
    if "const" in node:
        node = {**node, "enum": [node["const"]]}
    kind = node.get("type")
    if kind is None:
        raise SchemaError(f"{where}: no type in {node}")
    out["type"] = kind
    if kind == "object":
        props = node.get("properties", {})
        if props:
            out["properties"] = {k: _structural(v, defs, f"{where}.{k}") for k, v in props.items()}
        if isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = _structural(node["additionalProperties"], defs, f"{where}.*")
        if node.get("required"):
            out["required"] = list(node["required"])
    elif kind == "array":
        out["items"] = _structural(node["items"], defs, f"{where}[]")
    for key in _KEEP:
        if key in node:
            out[key] = node[key]
    if node.get("format") in _FORMATS:
        out["format"] = node["format"]
    for bound, base in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node:
            out[base] = node[bound]
            out[bound] = True
    return out


# a guard, not the parser: core.durations decides (it takes "1h 30m" too)
_DURATION_TEXT = r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*)+$"


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model (validation mode, by alias)."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_KubeJsonSchema)
    return _structural(raw, raw.get("$defs", {}), model.__name__)


def structural_problems(node: dict[str, Any], where: str = "") -> list[str]:
    """What makes a schema non-structural (the rules the API server applies, the ones we can break)."""
    problems: list[str] = []
    if "$ref" in node:
        problems.append(f"{where}: $ref")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    if "type" not in node and not int_or_string and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{where}: no type")
    if node.get("additionalProperties") is False:
        problems.append(f"{where}: additionalProperties: false is not allowed")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{where}: properties and additionalProperties together")
    for junctor in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(junctor, []):
            if int_or_string and junctor == "anyOf":
                continue  # the one permitted shape: [{type: integer}, {type: string}]
            if any(k in branch for k in ("type", "default", "description", "nullable")):
                problems.append(f"{where}: {junctor} branch carries {sorted(branch)}")
    for key, child in node.get("properties", {}).items():
        problems += structural_problems(child, f"{where}.{key}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{where}.*")
    if "items" in node:
        problems += structural_problems(node["items"], f"{where}[]")
    return problems


def openapi_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {**model_schema(Plan), "description": "The deploy plan, as written (see examples/)."},
            "status": {
                **model_schema(DeployRunStatus),
                "description": "Persisted progress; written only by the agent that holds the run's lease.",
            },
        },
    }


PRINTER_COLUMNS = [
    {"name": "Service", "type": "string", "jsonPath": ".spec.service"},
    {"name": "From", "type": "string", "jsonPath": ".spec.version.from"},
    {"name": "To", "type": "string", "jsonPath": ".spec.version.to"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.weight"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["deploydeck"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = (
        "# Generated by `python -m core.agent.crd` from the plan models (core/plan.py) and\n"
        "# core.agent.crd.DeployRunStatus. Do not edit: tests/test_crd.py fails when they drift.\n"
    )
    return header + yaml.safe_dump(crd(), sort_keys=False, allow_unicode=True, width=100)


# --- plan → DeployRun -------------------------------------------------------------------

_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def deployrun_name(service: str, to_version: str) -> str:
    """A DNS-1123 label naming the run: ``checkout-1-5-0``."""
    name = _NOT_NAME.sub("-", f"{service}-{to_version}".lower()).strip("-")
    return name[:63].rstrip("-") or "deployrun"


def _jsonable(value: Any) -> Any:
    # YAML reads `2026-12-25` as a date; JSON (and the API server) wants the text back
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def deployrun(raw_plan: dict[str, Any], *, name: str | None = None, namespace: str | None = None) -> dict:
    """A DeployRun for a plan as written (the parsed YAML, before interpolation)."""
    spec = _jsonable(raw_plan)
    version = spec.get("version") or {}
    targets = spec.get("targets") or {}
    production = targets.get("production") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name or deployrun_name(str(spec.get("service", "")), str(version.get("to", ""))),
            "namespace": namespace or production.get("namespace") or spec.get("namespace") or "default",
        },
        "spec": spec,
    }


if __name__ == "__main__":  # pragma: no cover - the generator's command line
    sys.stdout.write(crd_yaml())
