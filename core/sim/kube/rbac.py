"""TokenReview and SubjectAccessReview: who a token is, and what the stored RBAC objects let a user do.

The rule matching follows pkg/registry/rbac/validation (RuleAllows, VerbMatches, APIGroupMatches,
ResourceMatches, ResourceNameMatches, NonResourceURLMatches) and the RBAC authorizer's walk over
ClusterRoleBindings, then the request namespace's RoleBindings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from core.sim.kube.errors import invalid_all
from core.sim.kube.resources import BY_PATH
from core.sim.kube.store import Obj, Store, rfc3339

_G = "rbac.authorization.k8s.io"
ROLES = BY_PATH[(_G, "v1", "roles")]
CLUSTER_ROLES = BY_PATH[(_G, "v1", "clusterroles")]
ROLE_BINDINGS = BY_PATH[(_G, "v1", "rolebindings")]
CLUSTER_ROLE_BINDINGS = BY_PATH[(_G, "v1", "clusterrolebindings")]


def seed_token_role(store: Store, user: str, verbs: set[str]) -> None:
    """A token's verb set as RBAC: a ClusterRole of those verbs on everything, bound to its user
    cluster-wide (what `tokens=` used to grant directly); further bindings add to it."""
    name = f"deploydeck-sim:token:{user}"
    rule = {"apiGroups": ["*"], "resources": ["*"], "verbs": sorted(verbs)}
    store.create(CLUSTER_ROLES, None, {"metadata": {"name": name}, "rules": [rule] if verbs else []})
    subject = {"kind": "User", "apiGroup": _G, "name": user}
    ref = {"apiGroup": _G, "kind": "ClusterRole", "name": name}
    store.create(
        CLUSTER_ROLE_BINDINGS, None, {"metadata": {"name": name}, "subjects": [subject], "roleRef": ref}
    )


def review(
    store: Store,
    kind: str,
    body: Obj,
    user: str,
    groups: list[str],
    lookup: Callable[[str], tuple[str, list[str]] | None],
) -> Obj:
    """The answer to a created TokenReview, SubjectAccessReview or SelfSubjectAccessReview."""
    if kind == "TokenReview":
        return token_review(body, lookup)
    if kind == "SelfSubjectAccessReview":
        return self_access_review(store, body, user, groups)
    return access_review(store, body)


def token_review(body: Obj, lookup: Callable[[str], tuple[str, list[str]] | None]) -> Obj:
    token = (body.get("spec") or {}).get("token")
    if not token:
        raise invalid_all("TokenReview", "authentication.k8s.io", "", [("spec.token", "Required value")])
    found = lookup(token)
    status: Obj = {"authenticated": False, "user": {}}
    if found is not None:
        username, groups = found
        status = {"authenticated": True, "user": {"username": username, "groups": groups}}
    else:
        status["error"] = "invalid bearer token"
    return _answer("TokenReview", "authentication.k8s.io/v1", body, status)


def access_review(store: Store, body: Obj) -> Obj:
    spec = body.get("spec") or {}
    user, groups = spec.get("user") or "", list(spec.get("groups") or [])
    errors = _spec_problems(spec)
    if not user and not groups:
        errors.insert(0, ("spec.user", 'Invalid value: "": at least one of user or group must be specified'))
    if errors:
        raise invalid_all("SubjectAccessReview", "authorization.k8s.io", "", errors)
    return _answer("SubjectAccessReview", "authorization.k8s.io/v1", body, decide(store, user, groups, spec))


def self_access_review(store: Store, body: Obj, user: str, groups: list[str]) -> Obj:
    spec = body.get("spec") or {}
    errors = _spec_problems(spec)
    if errors:
        raise invalid_all("SelfSubjectAccessReview", "authorization.k8s.io", "", errors)
    return _answer(
        "SelfSubjectAccessReview", "authorization.k8s.io/v1", body, decide(store, user, groups, spec)
    )


def _spec_problems(spec: Obj) -> list[tuple[str, str]]:
    if bool(spec.get("resourceAttributes")) == bool(spec.get("nonResourceAttributes")):
        return [
            (
                "spec.resourceAttributes",
                "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        ]
    return []


def _answer(kind: str, api_version: str, body: Obj, status: Obj) -> Obj:
    meta = dict(body.get("metadata") or {})
    meta["creationTimestamp"] = rfc3339(datetime.now(UTC))
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": meta,
        "spec": body.get("spec") or {},
        "status": status,
    }


def decide(store: Store, user: str, groups: list[str], spec: Obj) -> Obj:
    """allowed and the reason the RBAC authorizer gives (denied: no opinion, empty reason)."""
    if "system:masters" in groups:
        return {"allowed": True, "reason": 'RBAC: allowed by group "system:masters"'}
    attrs = spec.get("resourceAttributes")
    namespace = (attrs or {}).get("namespace") or ""
    for binding, role_kind, role_name, rules in _bindings(store, namespace):
        subject = _subject_matches(binding, user, groups, namespace)
        if subject is None:
            continue
        if any(_rule_allows(rule, spec) for rule in rules):
            where = f' in namespace "{namespace}"' if binding["kind"] == "RoleBinding" else ""
            return {
                "allowed": True,
                "reason": f'RBAC: allowed by {binding["kind"]} "{binding["metadata"]["name"]}" of '
                f'{role_kind} "{role_name}" to {subject}{where}',
            }
    return {"allowed": False}


def _bindings(store: Store, namespace: str) -> Iterator[tuple[Obj, str, str, list[Obj]]]:
    for crb in store.scan(CLUSTER_ROLE_BINDINGS, None):
        yield (crb, *_role(store, crb, None))
    if namespace:
        for rb in store.scan(ROLE_BINDINGS, namespace):
            yield (rb, *_role(store, rb, namespace))


def _role(store: Store, binding: Obj, namespace: str | None) -> tuple[str, str, list[Obj]]:
    ref = binding.get("roleRef") or {}
    kind, name = ref.get("kind", ""), ref.get("name", "")
    if kind == "Role" and namespace:
        role = store.peek(ROLES, namespace, name)
        return kind, name, list((role or {}).get("rules") or [])
    if kind == "ClusterRole":
        return kind, name, _cluster_role_rules(store, name)
    return kind, name, []  # a binding to a missing role grants nothing


def _cluster_role_rules(store: Store, name: str) -> list[Obj]:
    role = store.peek(CLUSTER_ROLES, None, name)
    if role is None:
        return []
    rules = list(role.get("rules") or [])
    # aggregated ClusterRoles: the controller copies in the rules of every ClusterRole the selectors pick
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        wanted = selector.get("matchLabels") or {}
        for other in store.scan(CLUSTER_ROLES, None):
            labels = (other.get("metadata") or {}).get("labels") or {}
            if other is not role and all(labels.get(k) == v for k, v in wanted.items()):
                rules += other.get("rules") or []
    return rules


def _subject_matches(binding: Obj, user: str, groups: list[str], namespace: str) -> str | None:
    for s in binding.get("subjects") or []:
        kind, name = s.get("kind"), s.get("name")
        if kind == "User" and name == user:
            return f'User "{user}"'
        if kind == "Group" and name in groups:
            return f'Group "{name}"'
        if kind == "ServiceAccount":
            ns = s.get("namespace") or (binding["metadata"].get("namespace") or "")
            if user == f"system:serviceaccount:{ns}:{name}":
                return f'ServiceAccount "{name}"'
    return None


def _has(values: list[str] | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]


def _rule_allows(rule: Obj, spec: Obj) -> bool:
    attrs = spec.get("resourceAttributes")
    if attrs is None:
        non = spec.get("nonResourceAttributes") or {}
        if not _has(rule.get("verbs"), non.get("verb", "")):
            return False
        path = non.get("path", "")
        return any(
            u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1]))
            for u in rule.get("nonResourceURLs") or []
        )
    if rule.get("nonResourceURLs") and not rule.get("resources"):
        return False
    if not _has(rule.get("verbs"), attrs.get("verb", "")):
        return False
    if not _has(rule.get("apiGroups"), attrs.get("group", "")):
        return False
    resource, sub = attrs.get("resource", ""), attrs.get("subresource", "")
    combined = f"{resource}/{sub}" if sub else resource
    listed = rule.get("resources") or []
    if not ("*" in listed or combined in listed or (sub and f"*/{sub}" in listed)):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.get("name", "") in names
