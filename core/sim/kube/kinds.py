"""Defaulting and validation per kind: the part of the API server that shapes objects before storing them."""

from __future__ import annotations

import re
from typing import Any

from core.sim.kube import crds
from core.sim.kube.errors import invalid_all
from core.sim.kube.resources import Resource
from core.sim.kube.selectors import label_matcher, selector_string
from core.sim.kube.strategy import validate_strategy


def apply_defaults(res: Resource, obj: dict[str, Any]) -> None:
    if res.kind == "Deployment":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            # SetDefaults_Deployment: each bound defaults on its own, so {maxSurge: 1} keeps 25% unavailable
            strategy.setdefault("type", "RollingUpdate")
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
        _default_pod_template(spec.get("template") or {})
    elif res.kind == "ReplicaSet":
        obj.setdefault("spec", {}).setdefault("replicas", 1)
        _default_pod_template(obj["spec"].get("template") or {})
    elif res.kind == "HorizontalPodAutoscaler":
        obj.setdefault("spec", {}).setdefault("minReplicas", 1)
    elif res.kind == "Namespace":
        # the namespace registry's PrepareForCreate: a new namespace is Active with the kubernetes finalizer
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {
            "phase": "Active",
            **{k: v for k, v in (obj.get("status") or {}).items() if k != "phase"},
        }
    elif res.kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _default_pod_template(template: dict[str, Any]) -> None:
    pod = template.get("spec")
    if not isinstance(pod, dict):
        return
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("terminationGracePeriodSeconds", 30)
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("schedulerName", "default-scheduler")
    pod.setdefault("securityContext", {})
    # SetDefaults_Container applies to init containers too: without it, a template that went through a
    # typed client (rollout undo) gains `resources: {}` there and no longer equals its ReplicaSet
    for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


# k8s.io/apimachinery/pkg/util/validation: the name rules and their exact messages
_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_NAME_RULES = {
    "subdomain": (
        _DNS1123_SUBDOMAIN,
        253,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
        "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
        f"is '{_DNS1123_SUBDOMAIN}')",
    ),
    "label": (
        _DNS1123_LABEL,
        63,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
        f"start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
        f"validation is '{_DNS1123_LABEL}')",
    ),
    "dns1035": (
        _DNS1035_LABEL,
        63,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
        "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex "
        f"used for validation is '{_DNS1035_LABEL}')",
    ),
}
#: which rule each kind's name follows (ValidateNamespaceName, ValidateServiceName, ...); others: subdomain
_NAME_RULE_BY_KIND = {"Namespace": "label", "Service": "dns1035"}


def name_problems(res: Resource, name: str) -> list[tuple[str, str]]:
    """What the kind's ValidateObjectMeta says about a name, with the upstream messages."""
    if res.group == "rbac.authorization.k8s.io":
        # ValidateRBACName is path.IsValidPathSegmentName: "system:discovery" is a valid Role name
        bad = [f"may not contain '{c}'" for c in ("/", "%") if c in name]
        bad += [f"may not be '{name}'"] if name in {".", ".."} else []
        return [("metadata.name", f'Invalid value: "{name}": {b}') for b in bad]
    regex, limit, text = _NAME_RULES[_NAME_RULE_BY_KIND.get(res.kind, "subdomain")]
    out = []
    if len(name) > limit:
        out.append(("metadata.name", f'Invalid value: "{name}": must be no more than {limit} characters'))
    if not re.fullmatch(regex, name):
        out.append(("metadata.name", f'Invalid value: "{name}": {text}'))
    return out


def update_problems(res: Resource, current: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    """Update-only rules: apps/v1 forbids changing a Deployment's or ReplicaSet's spec.selector."""
    if res.kind not in {"Deployment", "ReplicaSet"}:
        return []
    old_sel, new_sel = (current.get("spec") or {}).get("selector"), (new.get("spec") or {}).get("selector")
    if old_sel != new_sel:
        return [("spec.selector", f"Invalid value: {_go_selector(new_sel)}: field is immutable")]
    return []


def _go_map(labels: dict[str, Any]) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"


def _go_selector(selector: Any) -> str:
    """A LabelSelector as Go's %#v prints it in the real message."""
    if not isinstance(selector, dict):
        return "(*v1.LabelSelector)(nil)"
    labels = _go_map(selector.get("matchLabels") or {})[len("map[string]string{") : -1]
    exprs = selector.get("matchExpressions")
    rendered = (
        "[]v1.LabelSelectorRequirement(nil)"
        if not exprs
        else "[]v1.LabelSelectorRequirement{"
        + ", ".join(
            f'v1.LabelSelectorRequirement{{Key:"{e.get("key")}", Operator:"{e.get("operator")}", '
            f"Values:[]string{{{', '.join(repr(v).replace(chr(39), chr(34)) for v in e.get('values') or [])}}}}}"
            for e in exprs
        )
        + "}"
    )
    return f"v1.LabelSelector{{MatchLabels:map[string]string{{{labels}}}, MatchExpressions:{rendered}}}"


def validate(
    res: Resource, obj: dict[str, Any], *, creating: bool = False, current: dict[str, Any] | None = None
) -> None:
    """422 Invalid listing every problem (the name's on create, immutable fields on update), as the
    registry's Validate/ValidateUpdate return a field.ErrorList and the server reports all of it."""
    name = obj.get("metadata", {}).get("name", "")
    errors = name_problems(res, name) if creating else []
    if res.kind == "CustomResourceDefinition":
        errors = crds.crd_problems(obj)  # the name rule is the CRD's own (plural.group), on update too
    errors += _spec_problems(res, obj)
    if current is not None:
        errors += update_problems(res, current, obj)
    if errors:
        raise invalid_all(res.kind, res.group, name, errors)


def _spec_problems(res: Resource, obj: dict[str, Any]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    spec = obj.get("spec") or {}
    if res.kind in {"Deployment", "ReplicaSet"}:
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            errors.append(("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0"))
        selector = spec.get("selector")
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            errors.append(("spec.selector", "Required value"))
        elif not label_matcher(selector_string(selector))({"metadata": {"labels": labels}}):
            errors.append(
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
                )
            )
        containers = (template.get("spec") or {}).get("containers") or []
        if not containers:
            errors.append(("spec.template.spec.containers", "Required value"))
        for n, container in enumerate(containers):
            for field in ("name", "image"):
                if not isinstance(container, dict) or not container.get(field):
                    errors.append((f"spec.template.spec.containers[{n}].{field}", "Required value"))
        if res.kind == "Deployment":
            problem = validate_strategy(spec)
            if problem is not None:
                errors.append(problem)
        min_ready = spec.get("minReadySeconds", 0)
        if not isinstance(min_ready, int) or min_ready < 0:
            errors.append(
                ("spec.minReadySeconds", f"Invalid value: {min_ready}: must be greater than or equal to 0")
            )
        deadline = spec.get("progressDeadlineSeconds")
        if (
            res.kind == "Deployment"
            and isinstance(deadline, int)
            and isinstance(min_ready, int)
            and deadline <= min_ready
        ):
            errors.append(
                (
                    "spec.progressDeadlineSeconds",
                    f"Invalid value: {deadline}: must be greater than minReadySeconds",
                )
            )
    if res.kind == "HorizontalPodAutoscaler":
        problem = _validate_hpa(spec)
        if problem is not None:
            errors.append(problem)
    if res.kind == "Lease":
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and (not isinstance(duration, int) or duration <= 0):
            errors.append(("spec.leaseDurationSeconds", f"Invalid value: {duration}: must be greater than 0"))
    return errors


def _validate_hpa(spec: dict[str, Any]) -> tuple[str, str] | None:
    """autoscaling validation (ValidateHorizontalPodAutoscalerSpec), the parts a test can trip."""
    ref = spec.get("scaleTargetRef") or {}
    for key in ("kind", "name"):
        if not ref.get(key):
            return f"spec.scaleTargetRef.{key}", "Required value"
    high, low = spec.get("maxReplicas"), spec.get("minReplicas", 1)
    if not isinstance(high, int) or high < 1:
        return "spec.maxReplicas", f"Invalid value: {high}: must be greater than or equal to 1"
    if not isinstance(low, int) or low < 1:
        return "spec.minReplicas", f"Invalid value: {low}: must be greater than or equal to 1"
    if low > high:
        return "spec.maxReplicas", f"Invalid value: {high}: must be greater than or equal to `minReplicas`"
    return None
