"""The three traffic strategies of KubeCluster, and the readiness waits that keep them safe.

Safety rules (README, "Kubernetes"):
- traffic never moves to pods that are not Ready: a canary weight above 0 is written only once the
  canary Deployment is fully rolled out (every pod on the new template and available);
- the `replicas` strategy scales the growing side first, waits until it is rolled out, and only then
  scales the shrinking side down, so ready stable + canary never falls below what was ready before
  (and so never below total - maxUnavailable);
- traffic moves back to stable (the weight goes down) only while stable has at least its floor of
  available pods (spec.replicas - maxUnavailable), so a rollback never reaches 0 ready pods.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from core.adapters.kubernetes import hpa
from core.adapters.kubernetes.api import KubeApiError
from core.adapters.kubernetes.expressible import canary_pods, effective_percent
from core.domain import TrafficChange
from core.ports import ClusterError, Role

if TYPE_CHECKING:
    from core.adapters.kubernetes.cluster import KubeCluster

MERGE = "application/merge-patch+json"
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
TOTAL_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight-total"
CONFLICT_RETRIES = 5


def _scaled(value: Any, total: int, *, round_up: bool) -> int:
    """An int-or-percent field of a RollingUpdate strategy, resolved as the Deployment controller does."""
    if isinstance(value, int):
        return max(0, value)
    text = str(value).strip()
    if text.endswith("%"):
        try:
            share = total * float(text[:-1]) / 100
        except ValueError:
            return 0
        return max(0, math.ceil(share) if round_up else math.floor(share))
    try:
        return max(0, int(text))
    except ValueError:
        return 0


def max_unavailable(deployment: dict[str, Any], total: int) -> int:
    """maxUnavailable of a Deployment for `total` pods (default 25 %, rounded down as upstream).

    A Recreate Deployment gives no availability guarantee of its own: we allow none to be lost."""
    strategy = deployment.get("spec", {}).get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", "25%"), total, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), total, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # upstream's rule: both zero is invalid, it uses one
    return min(unavailable, total)


def ready_floor(deployment: dict[str, Any], total: int) -> int:
    """The fewest ready pods this service may have: total - maxUnavailable."""
    return max(0, total - max_unavailable(deployment, total))


def _available(obj: dict[str, Any]) -> int:
    return int(obj.get("status", {}).get("availableReplicas", 0))


def paused_error(obj: dict[str, Any]) -> ClusterError:
    name = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
    return ClusterError(
        f"deployment {name} is paused (spec.paused: true): it would never roll out; resume it with "
        f"'kubectl rollout resume deployment/{obj['metadata']['name']} -n {obj['metadata'].get('namespace')}' "
        "or finish what paused it first"
    )


class TrafficStrategies:
    """Mixed into KubeCluster: set/read the canary weight for `replicas`, `nginx` and `gateway`."""

    async def set_canary_weight(self: KubeCluster, percent: int) -> TrafficChange:
        if not 0 <= percent <= 100:
            raise ClusterError(f"canary weight must be 0..100, got {percent}")
        if self.target.strategy == "nginx":
            return await self._set_nginx(percent)
        if self.target.strategy == "gateway":
            return await self._set_gateway(percent)
        return await self._set_replicas(percent)

    # --- readiness ----------------------------------------------------------------------

    async def _await_rolled_out(self: KubeCluster, role: Role, why: str) -> dict[str, Any]:
        """Every pod of `role` on its current template and available (kubectl rollout status)."""
        from core.adapters.kubernetes.cluster import rollout_status

        return await self._await(role, why, lambda obj: rollout_status(obj))

    async def _await_floor(self: KubeCluster, role: Role, why: str) -> dict[str, Any]:
        """At least spec.replicas - maxUnavailable pods of `role` available, whatever their version:
        enough to take traffic back even while a rolling update (an undo) is still going on."""

        def check(obj: dict[str, Any]) -> tuple[bool, str]:
            desired = int(obj["spec"].get("replicas", 0))
            floor = ready_floor(obj, desired)
            have = _available(obj)
            return have >= floor and (
                desired == 0 or have > 0
            ), f"{have} of {desired} available (floor {floor})"

        return await self._await(role, why, check)

    async def _await(self: KubeCluster, role: Role, why: str, check: Any) -> dict[str, Any]:
        started = self.clock.now()
        name = f"{self.target.namespace}/{self._name(role)}"
        timeout = self.target.rollout_timeout
        while True:
            obj = await self._get(role)
            if obj["spec"].get("paused"):
                raise paused_error(obj)
            meta, status = obj.get("metadata", {}), obj.get("status", {})
            observed = meta.get("generation", 0) <= status.get("observedGeneration", 0)
            done, message = check(obj)
            if observed and done:
                return obj
            if "ProgressDeadlineExceeded" in message:
                raise ClusterError(f"deployment {name} failed {why}: {message}")
            if (self.clock.now() - started).total_seconds() >= timeout:
                raise ClusterError(f"deployment {name} not ready {why} after {timeout:g}s: {message}")
            await self.clock.sleep(self.poll_interval_s)

    # --- replicas -------------------------------------------------------------------------

    def _total(self: KubeCluster) -> int:
        # the plan's size; else, during a deploy, the total this deploy started from (the live sum
        # is inflated while one side has surged); else the live size, so an operator's scale (or an
        # HPA's) between releases wins over anything an earlier rollout saved
        live = self._replicas["stable"] + self._replicas["canary"]
        return int(self.target.replicas or self._own.get("total") or live or 0)

    async def _set_replicas(self: KubeCluster, percent: int) -> TrafficChange:
        if "stable" not in self._replicas or not self._loaded:
            await self._get("stable")
        if "canary" not in self._replicas:
            await self._get("canary")
        total = self._total()
        wanted: dict[Role, int] = {"canary": canary_pods(total, percent)}
        wanted["stable"] = total - wanted["canary"]
        # the total is remembered while canary traffic is on, and forgotten at 0 (deploy over)
        own_total = total if percent > 0 else None
        remember = self._own.get("total") != own_total
        if own_total is None:
            self._own.pop("total", None)
        else:
            self._own["total"] = own_total
        if percent > 0:
            await hpa.suspend(self)  # refuse, or switch its scaling off, before our first replica write
        growing = [r for r in ("canary", "stable") if wanted[r] > self._replicas[r]]
        shrinking = [r for r in ("canary", "stable") if wanted[r] < self._replicas[r]]
        for role in growing:
            await self._scale(role, wanted[role], remember and role == "stable")
        if shrinking:
            # the pods that take over must be Ready before any pod that serves goes away; this also
            # covers a growth made by an earlier, interrupted attempt
            for role in ("canary", "stable"):
                if role not in shrinking and wanted[role] > 0:
                    await self._await_rolled_out(role, f"before {self._name(shrinking[0])} is scaled down")
        for role in shrinking:
            await self._scale(role, wanted[role], remember and role == "stable")
        if remember and "stable" not in growing + shrinking:
            await self._write_own()
        if percent == 0:
            await hpa.restore(self)  # the deploy is over (promoted or rolled back): the HPA scales again
            self._hpa_checked = False
        effective = effective_percent(self._replicas["canary"], self._replicas["stable"])
        return TrafficChange(
            requested=percent,
            effective=effective,
            detail=f"{self._replicas['canary']} of {total} pods on the canary ({effective}%)",
        )

    async def _scale(self: KubeCluster, role: Role, replicas: int, with_state: bool) -> None:
        body: dict[str, Any] = {"spec": {"replicas": replicas}}
        if with_state:
            # the total rides along with the stable scale: no extra write to remember it
            body["metadata"] = {"annotations": self._annotation()}
        obj = await self.api.request(
            "PATCH", self._path(role), body=body, content_type=MERGE, idempotent=True
        )
        self._remember(role, obj)

    async def _write_own(self: KubeCluster) -> None:
        obj = await self.api.request(
            "PATCH",
            self._stable_path,
            body={"metadata": {"annotations": self._annotation()}},
            content_type=MERGE,
            idempotent=True,
        )
        self._remember("stable", obj)

    # --- weights through a traffic object -------------------------------------------------

    async def _before_weight(self: KubeCluster, current: int, percent: int) -> None:
        """Canary fully Ready before it gets any (more) traffic; stable at its floor before it takes
        traffic back."""
        if percent > current and percent > 0:
            canary = await self._await_rolled_out("canary", f"before canary traffic {percent}%")
            if not _available(canary):
                raise ClusterError(
                    f"deployment {self.target.namespace}/{self.target.canary_name} has no ready pods: "
                    f"refusing to send {percent}% of traffic to it"
                )
        if percent < current and percent < 100:
            await self._await_floor("stable", f"before traffic returns to stable ({percent}% canary)")

    def _ingress_path(self: KubeCluster) -> str:
        return (
            f"/apis/networking.k8s.io/v1/namespaces/{self.target.namespace}/ingresses/{self.target.ingress}"
        )

    def _route_path(self: KubeCluster) -> str:
        return (
            f"/apis/gateway.networking.k8s.io/v1/namespaces/{self.target.namespace}/httproutes/"
            f"{self.target.httproute}"
        )

    async def _set_nginx(self: KubeCluster, percent: int) -> TrafficChange:
        ingress = await self.api.request("GET", self._ingress_path())
        current = nginx_weight(ingress)
        scale = nginx_total(ingress)
        if current == percent and _canary_on(ingress):
            return self._nginx_change(percent, ingress)
        await self._before_weight(current, percent)
        # ingress-nginx reads the weight against canary-weight-total (default 100): write the share of it
        raw = str(math.floor(percent * scale / 100 + 0.5))
        body = {"metadata": {"annotations": {CANARY_ANNOTATION: "true", WEIGHT_ANNOTATION: raw}}}
        ingress = await self.api.request(
            "PATCH", self._ingress_path(), body=body, content_type=MERGE, idempotent=True
        )
        return self._nginx_change(percent, ingress)

    def _nginx_change(self: KubeCluster, percent: int, ingress: dict[str, Any]) -> TrafficChange:
        effective = nginx_weight(ingress)
        annotations = ingress.get("metadata", {}).get("annotations") or {}
        raw = annotations.get(WEIGHT_ANNOTATION, "0")
        of = f"/{annotations[TOTAL_ANNOTATION]}" if TOTAL_ANNOTATION in annotations else ""
        return TrafficChange(
            requested=percent,
            effective=effective,
            detail=f"ingress {self.target.ingress} canary-weight={raw}{of} ({effective}%)"
            if of
            else f"ingress {self.target.ingress} canary-weight={effective}",
        )

    def _route_weight(self: KubeCluster, route: dict[str, Any]) -> int:
        # the weight is the canary rule's share: other rules (other paths, other services) are not ours
        refs = [
            r
            for rule in route.get("spec", {}).get("rules") or []
            if any(b.get("name") == self.target.canary_name for b in rule.get("backendRefs") or [])
            for r in rule.get("backendRefs") or []
        ]
        total = sum(int(r.get("weight", 1)) for r in refs)
        canary = sum(int(r.get("weight", 1)) for r in refs if r.get("name") == self.target.canary_name)
        return round(100 * canary / total) if total else 0

    async def _set_gateway(self: KubeCluster, percent: int) -> TrafficChange:
        # the readiness check is for the move from the weight of the route we are about to write: a
        # cached route (our last write) or one re-read after a conflict may hold another weight, set by
        # hand in between, and then the move is another one (0 → 25 to a canary with no ready pods)
        checked: int | None = None
        for _ in range(CONFLICT_RETRIES):
            route = self._route or await self.api.request("GET", self._route_path())
            for _ in range(CONFLICT_RETRIES):
                current = self._route_weight(route)
                if current in (percent, checked):
                    break
                await self._before_weight(current, percent)
                checked = current
                route = await self.api.request("GET", self._route_path())  # fresh: the wait took time
            else:
                raise ClusterError(
                    f"HTTPRoute {self.target.namespace}/{self.target.httproute}: its weight kept changing "
                    f"while waiting for the pods to take {percent}%"
                )
            rules = json.loads(json.dumps(route.get("spec", {}).get("rules") or []))
            found = False
            for rule in rules:
                refs = rule.get("backendRefs") or []
                if not any(ref.get("name") == self.target.canary_name for ref in refs):
                    continue  # a rule without the canary backend keeps its own weights
                for ref in refs:
                    if ref.get("name") == self.target.canary_name:
                        ref["weight"], found = percent, True
                    else:
                        ref["weight"] = 100 - percent
            if not found:
                raise ClusterError(
                    f"HTTPRoute {self.target.namespace}/{self.target.httproute} has no backendRef named "
                    f"{self.target.canary_name} (the canary Service)"
                )
            # merge patch replaces the rules list; the resourceVersion makes it fail rather than clobber
            body = {
                "metadata": {"resourceVersion": route["metadata"]["resourceVersion"]},
                "spec": {"rules": rules},
            }
            try:
                updated = await self.api.request("PATCH", self._route_path(), body=body, content_type=MERGE)
            except KubeApiError as exc:
                if exc.status == 409:
                    self._route = None
                    continue
                raise
            self._route = updated
            effective = self._route_weight(updated)
            return TrafficChange(
                requested=percent,
                effective=effective,
                detail=f"httproute {self.target.httproute} canary weight {effective}%",
            )
        raise ClusterError(
            f"HTTPRoute {self.target.namespace}/{self.target.httproute}: update kept conflicting"
        )

    async def _read_weight(self: KubeCluster, stable: dict[str, Any], canary: dict[str, Any]) -> int:
        strategy = self.target.strategy
        if strategy == "nginx":
            return nginx_weight(await self.api.request("GET", self._ingress_path()))
        if strategy == "gateway":
            route = await self.api.request("GET", self._route_path())
            self._route = route
            return self._route_weight(route)
        return effective_percent(
            int(canary["spec"].get("replicas", 0)), int(stable["spec"].get("replicas", 0))
        )


def _canary_on(ingress: dict[str, Any]) -> bool:
    return (ingress.get("metadata", {}).get("annotations") or {}).get(CANARY_ANNOTATION) == "true"


def nginx_total(ingress: dict[str, Any]) -> int:
    """canary-weight-total (ingress-nginx >= 1.1: the weight is out of this, default 100)."""
    annotations = ingress.get("metadata", {}).get("annotations") or {}
    try:
        total = int(annotations.get(TOTAL_ANNOTATION, "100"))
    except ValueError:
        return 100
    return total if total > 0 else 100


def nginx_weight(ingress: dict[str, Any]) -> int:
    """The canary's share in percent, as ingress-nginx applies it."""
    annotations = ingress.get("metadata", {}).get("annotations") or {}
    if annotations.get(CANARY_ANNOTATION) != "true":
        return 0
    total = nginx_total(ingress)
    try:
        weight = max(0, min(total, int(annotations.get(WEIGHT_ANNOTATION, "0"))))
    except ValueError:
        return 0
    return math.floor(100 * weight / total + 0.5)
