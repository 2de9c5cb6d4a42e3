"""The deployment controller: ReplicaSets per template, revisions, simulated pods, Deployment status."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import secrets
from typing import Any

from core.clock import Clock
from core.sim.kube.errors import ApiError
from core.sim.kube.resources import BY_PATH
from core.sim.kube.store import Change, Obj, Store, rfc3339

DEPLOYMENTS = BY_PATH[("apps", "v1", "deployments")]
REPLICASETS = BY_PATH[("apps", "v1", "replicasets")]
PODS = BY_PATH[("", "v1", "pods")]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
# annotations the controller does not copy from a Deployment to its ReplicaSets (as upstream)
_NOT_COPIED = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
}
_WATCHED = {("apps", "deployments"), ("apps", "replicasets"), ("", "pods")}
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj) -> str:
    body = copy.deepcopy(template)
    (body.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:10])


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    a, b = copy.deepcopy(a), copy.deepcopy(b)
    for t in (a, b):
        labels = t.setdefault("metadata", {}).setdefault("labels", {})
        labels.pop(HASH_LABEL, None)
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def revision_of(obj: Obj) -> int:
    try:
        return int((obj.get("metadata", {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(
        r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences") or []
    )


def _owner_uid(obj: Obj) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _any(_obj: Obj) -> bool:
    return True


class DeploymentController:
    def __init__(self, store: Store, clock: Clock, pod_ready_delay_s: float) -> None:
        self.store = store
        self.clock = clock
        self.pod_ready_delay_s = pod_ready_delay_s
        #: images whose pods never become ready (to provoke progress-deadline failures)
        self.unready_images: set[str] = set()
        self._dirty = asyncio.Event()
        self._timers: set[asyncio.Task[None]] = set()
        self._progress_since: dict[str, float] = {}
        store.listeners.append(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.res in _WATCHED:
            self._dirty.set()

    def kick(self) -> None:
        self._dirty.set()

    async def run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self.reconcile_all()
            # let watchers and readers see one consistent step before the next pass
            await asyncio.sleep(0)

    def stop(self) -> None:
        for task in self._timers:
            task.cancel()
        self._timers.clear()

    # --- reconcile -----------------------------------------------------------

    def reconcile_all(self) -> None:
        # reads go through Store.scan (no copies): with every pod change this runs a lot
        deployments = [copy.deepcopy(d) for d in self.store.scan(DEPLOYMENTS, None)]
        uids = {d["metadata"]["uid"] for d in deployments}
        for d in deployments:
            try:
                self._sync_deployment(d)
            except ApiError:
                # a concurrent client write won the race; the next pass sees it
                self._dirty.set()
        pods_by_owner = self._pods_by_owner(None)
        for rs in self.store.scan(REPLICASETS, None):
            owner = _owner_uid(rs)
            if owner is not None and owner not in uids:
                self._delete_quietly(REPLICASETS, rs)
                continue
            self._sync_replicaset(rs, pods_by_owner.get(rs["metadata"]["uid"], []))
        rs_uids = {rs["metadata"]["uid"] for rs in self.store.scan(REPLICASETS, None)}
        for pod in self.store.scan(PODS, None):
            owner = _owner_uid(pod)
            if owner is not None and owner not in rs_uids:
                self._delete_quietly(PODS, pod)

    def _pods_by_owner(self, namespace: str | None) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for pod in self.store.scan(PODS, namespace):
            owner = _owner_uid(pod)
            if owner:
                out.setdefault(owner, []).append(pod)
        return out

    def _delete_quietly(self, res: Any, obj: Obj) -> None:
        try:
            self.store.delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        except ApiError:
            pass

    def _sync_deployment(self, d: Obj) -> None:
        ns, name, uid = d["metadata"]["namespace"], d["metadata"]["name"], d["metadata"]["uid"]
        spec = d["spec"]
        template = spec["template"]
        owned = [rs for rs in self.store.scan(REPLICASETS, ns) if _owned_by(rs, uid)]
        new_rs = next((rs for rs in owned if equal_ignore_hash(rs["spec"]["template"], template)), None)
        max_rev = max((revision_of(rs) for rs in owned), default=0)
        paused = bool(spec.get("paused"))
        if new_rs is None and not paused:
            new_rs = self._create_replicaset(d, max_rev + 1)
            self._progress_since[uid] = self.clock.now().timestamp()
            self._schedule_deadline_check(spec.get("progressDeadlineSeconds", 600))
        elif new_rs is not None and not paused:
            new_rs = self._adopt(d, new_rs, max_rev)
        if new_rs is not None and revision_of(new_rs) != revision_of(d):
            annotations = dict(d["metadata"].get("annotations") or {})
            annotations[REVISION] = str(revision_of(new_rs))
            d["metadata"]["annotations"] = annotations
            d = self.store.update(
                DEPLOYMENTS, ns, name, {**d, "metadata": {**d["metadata"], "resourceVersion": None}}
            )
        owned = [rs for rs in self.store.scan(REPLICASETS, ns) if _owned_by(rs, uid)]
        new_uid = new_rs["metadata"]["uid"] if new_rs else None
        by_owner = self._pods_by_owner(ns)
        count_by_rs = {owner: len(pods) for owner, pods in by_owner.items()}
        ready_by_rs = {owner: sum(1 for p in pods if _pod_ready(p)) for owner, pods in by_owner.items()}
        desired = spec.get("replicas", 1)
        new_ready = ready_by_rs.get(new_uid or "", 0)
        if not paused:
            for rs in owned:
                if rs["metadata"]["uid"] == new_uid:
                    continue
                # old ReplicaSets drain once the new one is fully available (a 100 % surge rollout)
                if new_ready >= desired and rs["spec"].get("replicas", 0) != 0:
                    self._scale(rs, 0)
        self._cleanup_history(d, owned, new_uid, count_by_rs)
        self._write_deployment_status(d, owned, new_uid, count_by_rs, ready_by_rs)

    def _create_replicaset(self, d: Obj, revision: int) -> Obj:
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        template = copy.deepcopy(d["spec"]["template"])
        h = template_hash(template)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        annotations = self._copied_annotations(d)
        annotations[REVISION] = str(revision)
        rs = {
            "metadata": {
                "name": f"{name}-{h}",
                "namespace": ns,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": name,
                        "uid": d["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"replicas": d["spec"].get("replicas", 1), "selector": selector, "template": template},
        }
        return self.store.create(REPLICASETS, ns, rs)

    def _copied_annotations(self, d: Obj) -> dict[str, str]:
        out = {k: v for k, v in (d["metadata"].get("annotations") or {}).items() if k not in _NOT_COPIED}
        replicas = str(d["spec"].get("replicas", 1))
        out[DESIRED] = replicas
        out[MAX_REPLICAS] = replicas
        return out

    def _adopt(self, d: Obj, rs: Obj, max_rev: int) -> Obj:
        """Keep the current ReplicaSet's annotations, revision and size in line with its Deployment."""
        rs = copy.deepcopy(rs)
        annotations = self._copied_annotations(d)
        old_rev = revision_of(rs)
        history = (rs["metadata"].get("annotations") or {}).get(REVISION_HISTORY)
        if old_rev < max_rev:
            # an older template came back (rollout undo): it becomes the newest revision
            annotations[REVISION] = str(max_rev + 1)
            annotations[REVISION_HISTORY] = f"{history},{old_rev}" if history else str(old_rev)
            self._progress_since[d["metadata"]["uid"]] = self.clock.now().timestamp()
        else:
            annotations[REVISION] = str(old_rev)
            if history:
                annotations[REVISION_HISTORY] = history
        wanted = d["spec"].get("replicas", 1)
        if rs["metadata"].get("annotations") == annotations and rs["spec"].get("replicas") == wanted:
            return rs
        rs["metadata"]["annotations"] = annotations
        rs["spec"]["replicas"] = wanted
        rs["metadata"]["resourceVersion"] = None
        return self.store.update(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs)

    def _scale(self, rs: Obj, replicas: int) -> None:
        rs = copy.deepcopy(rs)
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["resourceVersion"] = None
        self.store.update(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs)

    def _cleanup_history(self, d: Obj, owned: list[Obj], new_uid: str | None, pods: dict[str, int]) -> None:
        limit = d["spec"].get("revisionHistoryLimit", 10)
        old = [
            rs
            for rs in owned
            if rs["metadata"]["uid"] != new_uid
            and rs["spec"].get("replicas", 0) == 0
            and not pods.get(rs["metadata"]["uid"])
        ]
        old.sort(key=revision_of)
        for rs in old[: max(0, len(old) - limit)]:
            self._delete_quietly(REPLICASETS, rs)

    def _write_deployment_status(
        self, d: Obj, owned: list[Obj], new_uid: str | None, counts: dict[str, int], ready: dict[str, int]
    ) -> None:
        spec, uid = d["spec"], d["metadata"]["uid"]
        desired = spec.get("replicas", 1)
        uids = [rs["metadata"]["uid"] for rs in owned]
        total = sum(counts.get(u, 0) for u in uids)
        available = sum(ready.get(u, 0) for u in uids)
        updated = counts.get(new_uid or "", 0)
        new_ready = ready.get(new_uid or "", 0)
        complete = updated == desired and total == desired and new_ready == desired
        old = d.get("status") or {}
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available) if desired else 0,
        }
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        max_unavailable = desired // 4
        conditions: list[dict[str, Any]] = []
        avail_ok = available >= desired - max_unavailable
        conditions.append(
            self._condition(
                old,
                "Available",
                "True" if avail_ok else "False",
                "MinimumReplicasAvailable" if avail_ok else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if avail_ok
                else "Deployment does not have minimum availability.",
            )
        )
        rs_name = next(
            (rs["metadata"]["name"] for rs in owned if rs["metadata"]["uid"] == new_uid),
            d["metadata"]["name"],
        )
        since = self._progress_since.get(uid)
        deadline = spec.get("progressDeadlineSeconds", 600)
        if spec.get("paused"):
            prog = ("Unknown", "DeploymentPaused", "Deployment is paused")
        elif complete:
            self._progress_since.pop(uid, None)
            prog = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
        elif since is not None and self.clock.now().timestamp() - since > deadline:
            prog = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
        else:
            prog = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        conditions.append(self._condition(old, "Progressing", *prog))
        status["conditions"] = conditions
        if status != old:
            self.store.update(
                DEPLOYMENTS,
                d["metadata"]["namespace"],
                d["metadata"]["name"],
                {"metadata": {"name": d["metadata"]["name"]}, "status": status},
                subresource="status",
            )

    @staticmethod
    def _condition(old: Obj, kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        for c in old.get("conditions") or []:
            if c.get("type") == kind and c.get("status") == status and c.get("reason") == reason:
                return {**c, "message": message}
        now = rfc3339()
        return {
            "type": kind,
            "status": status,
            "lastUpdateTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }

    def _schedule_deadline_check(self, seconds: float) -> None:
        async def later() -> None:
            await self.clock.sleep(seconds + 0.001)
            self._dirty.set()

        self._spawn(later())

    # --- replica sets and pods --------------------------------------------------

    def _sync_replicaset(self, rs: Obj, pods: list[Obj]) -> None:
        ns = rs["metadata"]["namespace"]
        pods = list(pods)
        wanted = rs["spec"].get("replicas", 1)
        if len(pods) < wanted:
            for _ in range(wanted - len(pods)):
                pods.append(self._create_pod(rs))
        elif len(pods) > wanted:
            # not-ready pods go first, then the youngest, as the ReplicaSet controller prefers
            doomed = sorted(pods, key=lambda p: (_pod_ready(p), p["metadata"]["name"]))[: len(pods) - wanted]
            for pod in doomed:
                self._delete_quietly(PODS, pod)
            pods = [p for p in pods if p not in doomed]
        ready = sum(1 for p in pods if _pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k in {"replicas", "observedGeneration"}}
        if status != rs.get("status"):
            self.store.update(
                REPLICASETS,
                ns,
                rs["metadata"]["name"],
                {"metadata": {}, "status": status},
                subresource="status",
            )

    def _create_pod(self, rs: Obj) -> Obj:
        template = rs["spec"]["template"]
        name = f"{rs['metadata']['name']}-{''.join(secrets.choice(_SAFE) for _ in range(5))}"
        pod = {
            "metadata": {
                "name": name,
                "namespace": rs["metadata"]["namespace"],
                "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs["metadata"]["name"],
                        "uid": rs["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": "sim-node-1"},
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": rfc3339()}],
            },
        }
        created = self.store.create(PODS, rs["metadata"]["namespace"], pod)
        images = {c.get("image") for c in pod["spec"].get("containers") or []}
        if not images & self.unready_images:
            self._spawn(self._become_ready(rs["metadata"]["namespace"], name))
        return created

    async def _become_ready(self, ns: str, name: str) -> None:
        await self.clock.sleep(self.pod_ready_delay_s)
        self._mark_ready(ns, name)

    def _mark_ready(self, ns: str, name: str) -> None:
        pod = self.store.peek(PODS, ns, name)
        if pod is None:
            return
        status = {
            "phase": "Running",
            "podIP": f"10.0.0.{(hash(name) % 250) + 2}",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339()}],
            "startTime": rfc3339(),
        }
        self.store.update(PODS, ns, name, {"metadata": {}, "status": status}, subresource="status")

    def settle_now(self) -> None:
        """Reconcile and make every pod ready at once: seeded objects start fully rolled out."""
        for _ in range(10):
            before = self.store.resource_version
            self.reconcile_all()
            for pod in self.store.list(PODS, None, _any):
                images = {c.get("image") for c in pod["spec"].get("containers") or []}
                if not _pod_ready(pod) and not images & self.unready_images:
                    self._mark_ready(pod["metadata"]["namespace"], pod["metadata"]["name"])
            if self.store.resource_version == before:
                return

    def _spawn(self, coro: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()  # no loop yet (seeding before start): settle_now makes pods ready instead
            return
        task = loop.create_task(coro)
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)
