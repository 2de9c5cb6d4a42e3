"""KubeCluster: the real `Cluster` port over the Kubernetes API (kubernetes.aio, imported lazily)."""

from __future__ import annotations

import inspect
import json
from collections import Counter
from typing import Any

from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.adapters.kubernetes.lease import LeaseInfo, LeaseKeeper
from core.adapters.kubernetes.traffic import TrafficStrategies, paused_error
from core.adapters.kubernetes.undo import (
    STATE_ANNOTATION,
    equal_ignore_hash,
    owned_by,
    pick_revision,
    revision,
    undo_patch,
)
from core.clock import Clock
from core.cluster_view import ClusterTree, PodDetail
from core.domain import RollbackReport, WorkloadStatus
from core.plan import TargetSpec, VersionSpec
from core.ports import ClusterError, Progress, Role

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
#: the adapter's own bookkeeping inside the state annotation, hidden from the engine
OWN = "_kube"
CONFLICT_RETRIES = 5


class KubeCluster(TrafficStrategies):
    """One target (namespace + stable/canary Deployments + traffic object) on a real API server."""

    poll_interval_s = 0.25

    def __init__(self, target: TargetSpec, api: KubeApi, clock: Clock) -> None:
        self.target = target
        self.api = api
        self.clock = clock
        ns = target.namespace
        self._deploy_base = f"/apis/apps/v1/namespaces/{ns}/deployments"
        self._stable_path = f"{self._deploy_base}/{target.deployment}"
        self._canary_path = f"{self._deploy_base}/{target.canary_name}"
        self._state: dict[str, Any] | None = None
        self._own: dict[str, Any] = {}
        self._loaded = False
        self._replicas: dict[str, int] = {}  # last known spec.replicas per role
        self._route: dict[str, Any] | None = None
        self._hpa_checked = False  # this deploy looked for an HPA on stable and found none
        self._lease = LeaseKeeper(api, clock, ns, f"deploydeck-{target.deployment}")

    @classmethod
    async def connect(
        cls, target: TargetSpec, *, kubeconfig: str | None, clock: Clock, context: str | None = None
    ) -> KubeCluster:
        from core.adapters.kubernetes.credentials import shared

        # one client per kubeconfig and context: staging and production, and an agent's runs, share it
        api_client, credentials = await shared(kubeconfig, context or target.context)
        return cls(target, KubeApi(api_client, clock, credentials=credentials), clock)

    @property
    def api_calls(self) -> Counter[str]:
        return self.api.api_calls

    async def close(self) -> None:
        await self._lease.release()
        await self.api.close()

    # --- reads -----------------------------------------------------------------

    def _path(self, role: Role) -> str:
        return self._stable_path if role == "stable" else self._canary_path

    def _name(self, role: Role) -> str:
        return self.target.deployment if role == "stable" else self.target.canary_name

    async def _get(self, role: Role) -> dict[str, Any]:
        obj = await self.api.request("GET", self._path(role))
        self._remember(role, obj)
        return obj

    def _remember(self, role: Role, obj: dict[str, Any]) -> None:
        self._replicas[role] = int(obj.get("spec", {}).get("replicas", 0))
        if role == "stable":
            raw = (obj["metadata"].get("annotations") or {}).get(STATE_ANNOTATION)
            state: dict[str, Any] | None = None
            if raw:
                try:
                    state = json.loads(raw)
                except json.JSONDecodeError:
                    raise ClusterError(
                        f"deployment {self.target.namespace}/{self.target.deployment}: annotation "
                        f"{STATE_ANNOTATION} is not valid JSON"
                    ) from None
                if not isinstance(state, dict):
                    raise ClusterError(f"annotation {STATE_ANNOTATION} must hold a JSON object")
            own = (state or {}).pop(OWN, {}) if state else {}
            self._state = state
            self._own = own if isinstance(own, dict) else {}
            self._loaded = True

    def _annotation(self) -> dict[str, str]:
        return {STATE_ANNOTATION: json.dumps({**(self._state or {}), OWN: self._own}, sort_keys=True)}

    def _container_hint(self, obj: dict[str, Any]) -> tuple[str, str] | None:
        try:
            return _container_name(obj, self.target.container, obj["metadata"]["name"])
        except ClusterError:
            return None

    async def describe(self) -> WorkloadStatus:
        stable = await self._get("stable")
        canary = await self._get("canary")
        weight = await self._read_weight(stable, canary)
        return WorkloadStatus(
            stable_image=_image(stable, self._container_hint(stable)),
            canary_image=_image(canary, self._container_hint(canary)),
            stable_ready=int(stable.get("status", {}).get("readyReplicas", 0)),
            stable_desired=int(stable["spec"].get("replicas", 0)),
            canary_ready=int(canary.get("status", {}).get("readyReplicas", 0)),
            canary_desired=int(canary["spec"].get("replicas", 0)),
            weight=weight,
            revision=revision(stable),
        )

    async def tree(self) -> ClusterTree:
        """The ReplicaSet/pod tree, images, revisions and weights (core.cluster_view); only GETs."""
        from core.adapters.kubernetes.inspect import tree

        return await tree(self)

    async def pod_detail(self, pod: str, tail: int = 50) -> PodDetail:
        """One pod's recent events and log tail, as `kubectl describe pod` and `kubectl logs --tail`."""
        from core.adapters.kubernetes.inspect import pod_detail

        return await pod_detail(self, pod, tail)

    async def refusals(self, version: VersionSpec) -> list[str]:
        """Why this cluster must not be deployed to as the plan says (empty: go); see preflight.py."""
        from core.adapters.kubernetes.preflight import refusals

        return await refusals(self, version)

    # --- state annotation ------------------------------------------------------------

    async def read_state(self) -> dict[str, object] | None:
        await self._get("stable")
        return dict(self._state) if self._state is not None else None

    async def write_state(self, state: dict[str, object]) -> None:
        if not self._loaded:
            await self._get("stable")
        self._state = dict(state)
        await self._write_own()

    # --- deploy ------------------------------------------------------------------

    async def deploy(self, image: str, role: Role) -> None:
        if role == "canary":
            if not self._loaded:
                await self._get("stable")
            if "stable_base_revision" in self._own and self._own.get("stable_base_for") != image:
                # a new deploy starts with its canary: the previous deploy's stable base is history,
                # so a rollback of this deploy cannot undo stable past the release it started from
                for key in ("stable_base_revision", "stable_base_for", "stable_base_image"):
                    self._own.pop(key, None)
                obj = await self.api.request(
                    "PATCH",
                    self._stable_path,
                    body={"metadata": {"annotations": self._annotation()}},
                    content_type=MERGE,
                    idempotent=True,
                )
                self._remember("stable", obj)
        await self._set_image(role, image, record_base=role == "stable")

    async def _set_image(
        self, role: Role, image: str, *, record_base: bool, forget_base: bool = False
    ) -> None:
        for _ in range(CONFLICT_RETRIES):
            current = await self._get(role)  # reloads the state annotation
            if forget_base:
                for key in ("stable_base_revision", "stable_base_for", "stable_base_image"):
                    self._own.pop(key, None)
            if current["spec"].get("paused"):
                raise paused_error(current)
            key, container = _container_name(current, self.target.container, self._name(role))
            body: dict[str, Any] = {
                "spec": {"template": {"spec": {key: [{"name": container, "image": image}]}}}
            }
            if role == "stable":
                # remember what stable was before THIS deploy touched it, for rollback(); a base
                # left by an earlier deploy of another image is replaced, never reused. The image
                # too: with revisionHistoryLimit 0 the old ReplicaSet is gone and undo cannot work
                if record_base and self._own.get("stable_base_for") != image:
                    self._own["stable_base_revision"] = revision(current)
                    self._own["stable_base_for"] = image
                    self._own["stable_base_image"] = _image(current, (key, container))
                body["metadata"] = {"annotations": self._annotation()}
            if (
                role == "canary"
                and self.target.strategy != "replicas"
                and not current["spec"].get("replicas")
            ):
                # ingress/route strategies need canary pods before any weight can reach them
                body["spec"]["replicas"] = self._replicas.get("stable") or self.target.replicas or 1
            body.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                obj = await self.api.request("PATCH", self._path(role), body=body, content_type=STRATEGIC)
            except KubeApiError as exc:
                if exc.status == 409:
                    continue
                raise
            self._remember(role, obj)
            return
        raise ClusterError(f"deployment {self.target.namespace}/{self._name(role)}: update kept conflicting")

    async def wait_ready(self, role: Role, timeout_s: float, progress: Progress | None = None) -> None:
        started = self.clock.now()
        last = ""
        name = f"{self.target.namespace}/{self._name(role)}"
        while True:
            obj = await self._get(role)
            if obj["spec"].get("paused"):
                raise paused_error(obj)
            done, message = rollout_status(obj)
            if message != last and progress is not None:
                result = progress(f"{name}: {message}")
                if inspect.isawaitable(result):
                    await result
            last = message
            if done:
                return
            if "ProgressDeadlineExceeded" in message:
                raise ClusterError(f"deployment {name} failed: {message}")
            if (self.clock.now() - started).total_seconds() >= timeout_s:
                raise ClusterError(f"deployment {name} not ready after {timeout_s:g}s: {message}")
            await self.clock.sleep(self.poll_interval_s)

    # --- rollback -----------------------------------------------------------------------

    async def rollback(self) -> RollbackReport:
        """Back to what was stable when THIS deploy started, never below the ready floor.

        When this deploy changed stable (a promotion), stable is undone first: its old pods must be
        coming back before traffic or pods leave the canary, which still serves. Then the weight
        returns to 0, which waits for stable to be Ready before anything is taken from the canary.
        """
        if not self._loaded:
            await self._get("stable")
        base = self._own.get("stable_base_revision")
        undo: RollbackReport | None = None
        if base is not None:
            saved_image = self._own.get("stable_base_image")
            try:
                undo = await self.rollout_undo(int(base) if base else 0)
            except ClusterError as exc:
                if not saved_image or not _history_gone(exc):
                    raise
                undo = await self._reapply_stable(str(saved_image), str(exc))
        traffic = await self.set_canary_weight(0)
        weight_reset = traffic.effective == 0
        if undo is None:
            return RollbackReport(
                weight_reset=weight_reset,
                stable_restored=False,
                detail=f"canary weight 0 ({traffic.detail}); stable was not changed by this rollout",
            )
        return RollbackReport(
            weight_reset=weight_reset,
            stable_restored=undo.stable_restored,
            to_revision=undo.to_revision,
            detail=f"canary weight 0 ({traffic.detail}); {undo.detail}",
        )

    async def _reapply_stable(self, image: str, why: str) -> RollbackReport:
        """No ReplicaSet left to undo to (revisionHistoryLimit: 0): set the saved stable image back.
        The rest of the old template cannot be recovered; the image is what the deploy changed."""
        await self._set_image("stable", image, record_base=False, forget_base=True)
        name = f"{self.target.namespace}/{self.target.deployment}"
        return RollbackReport(
            weight_reset=False,
            stable_restored=True,
            to_revision=None,
            detail=f"rollout history of {name} is gone ({why}); re-applied the saved stable image {image}",
        )

    async def rollout_undo(self, to_revision: int = 0) -> RollbackReport:
        """`kubectl rollout undo deployment/<stable> [--to-revision=N]`, keeping deploydeck's state annotation."""
        name = f"{self.target.namespace}/{self.target.deployment}"
        for _ in range(CONFLICT_RETRIES):
            deployment = await self._get("stable")
            if deployment["spec"].get("paused"):
                raise ClusterError(
                    f"deployment {name} is paused: refusing rollout undo (resume it first with "
                    f"'kubectl rollout resume deployment/{self.target.deployment}')"
                )
            selector = deployment["spec"].get("selector", {}).get("matchLabels") or {}
            label = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            listed = await self.api.request(
                "GET",
                f"/apis/apps/v1/namespaces/{self.target.namespace}/replicasets",
                query={"labelSelector": label},
            )
            owned = [rs for rs in listed.get("items", []) if owned_by(rs, deployment)]
            target_rs = pick_revision(owned, to_revision)
            to = revision(target_rs)
            for key in ("stable_base_revision", "stable_base_for", "stable_base_image"):
                self._own.pop(key, None)
            if equal_ignore_hash(target_rs["spec"]["template"], deployment["spec"]["template"]):
                if self._state is not None or self._own:
                    await self.write_state(dict(self._state or {}))
                return RollbackReport(
                    weight_reset=False,
                    stable_restored=False,
                    to_revision=to,
                    detail=f"skipped rollback of {name}: current template already matches revision {to}",
                )
            deployment["metadata"].setdefault("annotations", {}).update(self._annotation())
            patch = undo_patch(deployment, target_rs, keep=frozenset({STATE_ANNOTATION}))
            patch.insert(
                0,
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": deployment["metadata"]["resourceVersion"],
                },
            )
            try:
                obj = await self.api.request("PATCH", self._stable_path, body=patch, content_type=JSON_PATCH)
            except KubeApiError as exc:
                if exc.status in {409, 422}:
                    continue  # changed under us (the test op failed): re-read and decide again
                raise
            self._remember("stable", obj)
            return RollbackReport(
                weight_reset=False,
                stable_restored=True,
                to_revision=to,
                detail=f"rolled back {name} to revision {to} (image {_image(obj, self._container_hint(obj))})",
            )
        raise ClusterError(f"deployment {name}: rollout undo kept conflicting")

    # --- lease --------------------------------------------------------------------------

    async def acquire_lease(self, holder: str, ttl_s: float = 15.0) -> LeaseInfo:
        return await self._lease.acquire(holder, ttl_s)

    async def renew_lease(self) -> None:
        await self._lease.renew()

    async def release_lease(self) -> None:
        await self._lease.release()

    @property
    def lease_lost(self) -> str | None:
        return self._lease.lost


def _history_gone(exc: ClusterError) -> bool:
    text = str(exc)
    return "no rollout history found" in text or "unable to find specified revision" in text


def rollout_status(d: dict[str, Any]) -> tuple[bool, str]:
    """kubectl's DeploymentStatusViewer: (complete, message)."""
    spec, status, meta = d.get("spec", {}), d.get("status", {}), d.get("metadata", {})
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return False, "waiting for the deployment spec update to be observed"
    for c in status.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return False, f"ProgressDeadlineExceeded: {c.get('message', '')}"
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    replicas = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    if updated < desired:
        return False, f"{updated} out of {desired} new replicas have been updated"
    if replicas > updated:
        return False, f"{replicas - updated} old replicas are pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas are available"
    if desired == 0:
        # complete as kubectl says, but nothing runs: "rolled out (0 of 0 available)" read as a
        # healthy stable while its pods were still to come (issue 15); say what is true
        return True, "rolled out, scaled to 0 replicas: no pods run it yet"
    return True, f"rolled out ({available} of {desired} available)"


def _image(obj: dict[str, Any], container: tuple[str, str] | None = None) -> str | None:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    if container is not None:
        key, name = container
        return next((c.get("image") for c in spec.get(key) or [] if c.get("name") == name), None)
    containers = spec.get("containers") or []
    return containers[0].get("image") if containers else None


def _container_name(obj: dict[str, Any], wanted: str | None, fallback: str) -> tuple[str, str]:
    """(list key, name) of the container that gets the image: the one the plan names (init containers
    too), else the only container, else one named like the Deployment; never a guess."""
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    names = [str(c.get("name")) for c in spec.get("containers") or []]
    inits = [str(c.get("name")) for c in spec.get("initContainers") or []]
    where = f"deployment {obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
    if not names:
        raise ClusterError(f"{where} has no containers")
    if wanted:
        if wanted in names:
            return "containers", wanted
        if wanted in inits:
            return "initContainers", wanted
        raise ClusterError(
            f"{where} has no container {wanted!r} (targets.*.container); containers: {', '.join(names)}"
            + (f"; init containers: {', '.join(inits)}" if inits else "")
        )
    if len(names) == 1:
        return "containers", names[0]
    if fallback in names:
        return "containers", fallback
    raise ClusterError(
        f"{where} has {len(names)} containers ({', '.join(names)}): name the one that gets the image "
        "with targets.*.container in the plan"
    )
