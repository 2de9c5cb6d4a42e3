"""The deployment controller: ReplicaSets per template, revisions, simulated pods, Deployment status."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from typing import Any

from core.clock import Clock
from core.sim.kube import strategy
from core.sim.kube.errors import ApiError
from core.sim.kube.events import EventRecorder
from core.sim.kube.hpa import HPAS, HpaController
from core.sim.kube.pods import PODS, PodLifecycle, is_ready, is_terminating
from core.sim.kube.resources import BY_PATH
from core.sim.kube.status import conditions, deployment_status
from core.sim.kube.store import Change, Obj, Store

DEPLOYMENTS = BY_PATH[("apps", "v1", "deployments")]
REPLICASETS = BY_PATH[("apps", "v1", "replicasets")]

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


def _without_hash(template: Obj) -> Obj:
    # shallow copies down to the labels: a deep copy of both templates per Deployment and pass was
    # a third of a reconcile pass over a few hundred Deployments
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    return {**template, "metadata": meta}


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return json.dumps(_without_hash(a), sort_keys=True) == json.dumps(_without_hash(b), sort_keys=True)


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


def _any(_obj: Obj) -> bool:
    return True


class DeploymentController:
    """The deployment and ReplicaSet controllers, and (through PodLifecycle) the kubelet's pod states."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        pod_ready_delay_s: float,
        pod_shutdown_s: float | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.events = EventRecorder(store, clock)
        self.pods = PodLifecycle(store, clock, pod_ready_delay_s, pod_shutdown_s, self._spawn, self.events)
        self.hpa = HpaController(store, clock, self.events)
        self._hpa_created = asyncio.Event()
        self._dirty = asyncio.Event()
        self._timers: set[asyncio.Task[None]] = set()
        self._progress_since: dict[str, float] = {}
        self._wakes: set[float] = set()
        self._owner_index: dict[tuple[str | None, str], dict[str, list[Obj]]] = {}
        self._rs_index: dict[tuple[str, str], dict[str, list[Obj]]] = {}
        store.listeners.append(self._on_change)

    @property
    def pod_ready_delay_s(self) -> float:
        return self.pods.ready_delay_s

    @pod_ready_delay_s.setter
    def pod_ready_delay_s(self, seconds: float) -> None:
        self.pods.ready_delay_s = seconds

    @property
    def unready_images(self) -> set[str]:
        return self.pods.unready_images

    def _on_change(self, change: Change) -> None:
        if change.res in _WATCHED:
            self._dirty.set()
        elif change.res == ("autoscaling", "horizontalpodautoscalers") and change.type == "ADDED":
            self._hpa_created.set()

    def kick(self) -> None:
        self._dirty.set()

    async def run(self) -> None:
        self._spawn(self._hpa_loop())
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self.reconcile_all()
            # let watchers and readers see one consistent step before the next pass
            await asyncio.sleep(0)

    async def _hpa_loop(self) -> None:
        # the HPA controller works on a period, not on changes: a write it disagrees with stands until then.
        # No timer while there is no HPA, so a VirtualClock with nothing else to do stays still.
        while True:
            if not self.store.scan(HPAS, None):
                self._hpa_created.clear()
                await self._hpa_created.wait()
            await self.clock.sleep(self.hpa.sync_s)
            self.hpa.sync_all()

    def stop(self) -> None:
        for task in self._timers:
            task.cancel()
        self._timers.clear()

    # --- reconcile -----------------------------------------------------------

    def reconcile_all(self) -> None:
        # reads go through Store.scan (no copies): with every pod change this runs a lot
        # the stored objects, not copies: a sync never changes its Deployment in place (the store
        # copies what it writes and replaces the object), and copying 400 of them per pass was costly
        deployments = self.store.scan(DEPLOYMENTS, None)
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
        for pod in list(self.store.scan(PODS, None)):
            owner = _owner_uid(pod)
            if owner is not None and owner not in rs_uids:
                self.pods.terminate(pod)  # the garbage collector deletes with the pod's grace period

    def _pods_by_owner(self, namespace: str | None, owners: set[str] | None = None) -> dict[str, list[Obj]]:
        """Active pods (not Terminating) by owner uid: what a ReplicaSet counts as its replicas.

        ``owners``: only those owners' pods. The index of a namespace is kept until the store
        changes: every Deployment's sync asked for it anew, a scan of every pod per Deployment, so
        a pass over 200 Deployments of 20 replicas took seconds and starved the API server."""
        key = (namespace, self.store.resource_version)
        index = self._owner_index.get(key)
        if index is None:
            index = {}
            for pod in self.store.scan(PODS, namespace):
                owner = _owner_uid(pod)
                if owner and not is_terminating(pod):
                    index.setdefault(owner, []).append(pod)
            if self._owner_index and next(iter(self._owner_index))[1] != key[1]:
                self._owner_index.clear()  # only the current revision's indexes are ever read
            self._owner_index[key] = index
        if owners is None:
            return {owner: list(pods) for owner, pods in index.items()}
        return {owner: list(index[owner]) for owner in owners if owner in index}

    def _replicasets_of(self, namespace: str, uid: str) -> list[Obj]:
        """The ReplicaSets a Deployment controls, from an index kept until the store changes (a scan
        of every ReplicaSet per Deployment and pass was the other quadratic term)."""
        key = (namespace, self.store.resource_version)
        index = self._rs_index.get(key)
        if index is None:
            index = {}
            for rs in self.store.scan(REPLICASETS, namespace):
                for ref in rs["metadata"].get("ownerReferences") or []:
                    if ref.get("controller"):
                        index.setdefault(str(ref.get("uid")), []).append(rs)
            if self._rs_index and next(iter(self._rs_index))[1] != key[1]:
                self._rs_index.clear()
            self._rs_index[key] = index
        return list(index.get(uid, []))

    def _delete_quietly(self, res: Any, obj: Obj) -> None:
        try:
            self.store.delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        except ApiError:
            pass

    def _sync_deployment(self, d: Obj) -> None:
        ns, uid = d["metadata"]["namespace"], d["metadata"]["uid"]
        spec = d["spec"]
        owned = sorted(self._replicasets_of(ns, uid), key=_creation_order)
        new_rs = next(
            (rs for rs in owned if equal_ignore_hash(rs["spec"]["template"], spec["template"])), None
        )
        old = [rs for rs in owned if rs is not new_rs]
        paused = bool(spec.get("paused"))
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        by_owner = self._pods_by_owner(ns, {rs["metadata"]["uid"] for rs in owned})
        max_old_rev = max((revision_of(rs) for rs in old), default=0)
        if new_rs is not None:
            new_rs = self._adopt(d, new_rs, max_old_rev)
        # syncDeployment: a paused Deployment, or one whose size changed, is only scaled (dc.sync)
        scaling = paused or strategy.is_scaling_event(d, [rs for rs in owned if strategy.replicas(rs) > 0])
        if new_rs is None and not scaling:
            old_total = sum(strategy.replicas(rs) for rs in old)
            if recreate and (old_total or self._old_pods_exist(ns, old)):
                pass  # Recreate makes the new ReplicaSet only once every old pod is gone
            else:
                new_rs = self._create_replicaset(
                    d, max_old_rev + 1, strategy.new_rs_replicas(d, old_total, 0)
                )
                self._progress_since[uid] = self.clock.now().timestamp()
                self._schedule_deadline_check(spec.get("progressDeadlineSeconds", 600))
        if new_rs is not None and revision_of(new_rs) != revision_of(d):
            d = self._set_deployment_revision(d, revision_of(new_rs))
        if scaling:
            by_name = {rs["metadata"]["name"]: rs for rs in owned}
            if new_rs is not None:
                by_name[new_rs["metadata"]["name"]] = new_rs
            sizes = strategy.proportional_sizes(d, new_rs, old, (d.get("status") or {}).get("replicas", 0))
            for rs_name, size in sizes.items():
                self._scale(d, by_name[rs_name], size)
        elif recreate:
            self._rollout_recreate(d, new_rs, old, by_owner)
        elif new_rs is not None:
            self._rollout_rolling(d, new_rs, old, self._available(by_owner, spec.get("minReadySeconds", 0)))
        owned = self._replicasets_of(ns, uid)
        new_uid = new_rs["metadata"]["uid"] if new_rs else None
        # this Deployment's own ReplicaSets: counting every pod of the namespace per Deployment is quadratic
        by_owner = self._pods_by_owner(ns, {rs["metadata"]["uid"] for rs in owned})
        count_by_rs = {owner: len(pods) for owner, pods in by_owner.items()}
        ready_by_rs = {owner: sum(1 for p in pods if is_ready(p)) for owner, pods in by_owner.items()}
        available_by_rs = self._available(by_owner, spec.get("minReadySeconds", 0))
        self._cleanup_history(d, owned, new_uid, count_by_rs)
        self._write_deployment_status(d, owned, new_uid, count_by_rs, ready_by_rs, available_by_rs)

    def _available(self, by_owner: dict[str, list[Obj]], min_ready_s: float) -> dict[str, int]:
        """Available pods per owner: Ready for minReadySeconds; wakes the loop when the next one will be."""
        out: dict[str, int] = {}
        for owner, pods in by_owner.items():
            for pod in pods:
                wait = self.pods.available_in(pod, min_ready_s)
                if wait == 0:
                    out[owner] = out.get(owner, 0) + 1
                elif wait is not None:
                    self._wake_in(wait)
        return out

    def _wake_in(self, seconds: float) -> None:
        at = round(self.clock.now().timestamp() + seconds, 3)
        if at in self._wakes:
            return
        self._wakes.add(at)

        async def later() -> None:
            await self.clock.sleep(seconds + 0.001)
            self._wakes.discard(at)
            self._dirty.set()

        self._spawn(later())

    def _set_deployment_revision(self, d: Obj, revision: int) -> Obj:
        # upstream writes the revision annotation through UpdateStatus (pkg/controller/deployment/sync.go,
        # getNewReplicaSet): the status strategy keeps spec, so this write never bumps metadata.generation
        annotations = dict(d["metadata"].get("annotations") or {})
        annotations[REVISION] = str(revision)
        body = {"metadata": {"annotations": annotations}, "status": d.get("status") or {}}
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        return self.store.update(DEPLOYMENTS, ns, name, body, subresource="status")

    # --- strategies: pkg/controller/deployment/rolling.go and recreate.go ---------------

    def _rollout_rolling(self, d: Obj, new_rs: Obj, old: list[Obj], ready: dict[str, int]) -> None:
        desired = strategy.replicas(d)
        new_size = strategy.replicas(new_rs)
        all_size = new_size + sum(strategy.replicas(rs) for rs in old)
        # reconcileNewReplicaSet: grow within maxSurge (or shrink to the wanted size); one move a pass
        if new_size > desired:
            self._scale(d, new_rs, desired)
            return
        if new_size < desired:
            target = strategy.new_rs_replicas(d, all_size, new_size)
            if target != new_size:
                self._scale(d, new_rs, target)
                return
        # reconcileOldReplicaSets: shrink old ones while keeping spec.replicas - maxUnavailable available
        active_old = [rs for rs in old if strategy.replicas(rs) > 0]
        if not active_old:
            return
        available = {rs["metadata"]["uid"]: ready.get(rs["metadata"]["uid"], 0) for rs in [new_rs, *old]}
        min_available = desired - strategy.max_unavailable(d)
        new_unavailable = new_size - available[new_rs["metadata"]["uid"]]
        max_scaled_down = all_size - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        cleaned = 0
        for rs in active_old:  # cleanupUnhealthyReplicas: unavailable old pods go first, oldest RS first
            size, avail = strategy.replicas(rs), available[rs["metadata"]["uid"]]
            if cleaned >= max_scaled_down or size == avail:
                continue
            cut = min(max_scaled_down - cleaned, size - avail)
            rs = self._scale(d, rs, size - cut)
            cleaned += cut
        active_old = [
            rs
            for rs in (
                self.store.peek(REPLICASETS, r["metadata"]["namespace"], r["metadata"]["name"])
                for r in active_old
            )
            if rs is not None and strategy.replicas(rs) > 0
        ]
        total_available = sum(available.values())
        if total_available <= min_available:
            return
        budget = total_available - min_available
        done = 0
        for rs in active_old:  # scaleDownOldReplicaSetsForRollingUpdate
            if done >= budget:
                break
            size = strategy.replicas(rs)
            cut = min(size, budget - done)
            self._scale(d, rs, size - cut)
            done += cut

    def _rollout_recreate(
        self, d: Obj, new_rs: Obj | None, old: list[Obj], by_owner: dict[str, list[Obj]]
    ) -> None:
        active_old = [rs for rs in old if strategy.replicas(rs) > 0]
        for rs in active_old:
            self._scale(d, rs, 0)
        if active_old:
            return
        if self._old_pods_exist(d["metadata"]["namespace"], old):
            return
        if new_rs is not None and strategy.replicas(new_rs) != strategy.replicas(d):
            self._scale(d, new_rs, strategy.replicas(d))

    def _old_pods_exist(self, ns: str, old: list[Obj]) -> bool:
        # oldPodsRunning: Terminating pods still count, the new version waits for them to be gone
        old_uids = {rs["metadata"]["uid"] for rs in old}
        return any(_owner_uid(p) in old_uids for p in self.store.scan(PODS, ns))

    def _scale(self, d: Obj, rs: Obj, replicas: int) -> Obj:
        """scaleReplicaSetAndRecordEvent: size and replica annotations, and a ScalingReplicaSet event."""
        rs = copy.deepcopy(rs)
        before = strategy.replicas(rs)
        annotations = dict(rs["metadata"].get("annotations") or {})
        annotations[DESIRED] = str(strategy.replicas(d))
        annotations[MAX_REPLICAS] = str(strategy.replicas(d) + strategy.max_surge(d))
        rs["metadata"]["annotations"] = annotations
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["resourceVersion"] = None
        out = self.store.update(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs)
        if before != replicas:
            direction = "up" if replicas > before else "down"
            self.events.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {replicas}",
                "deployment-controller",
            )
        return out

    def _create_replicaset(self, d: Obj, revision: int, replicas: int) -> Obj:
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        template = copy.deepcopy(d["spec"]["template"])
        h = template_hash(template)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        annotations = self._copied_annotations(d)
        annotations[REVISION] = str(revision)
        annotations[DESIRED] = str(strategy.replicas(d))
        annotations[MAX_REPLICAS] = str(strategy.replicas(d) + strategy.max_surge(d))
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
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        }
        if d["spec"].get("minReadySeconds"):
            rs["spec"]["minReadySeconds"] = d["spec"]["minReadySeconds"]
        created = self.store.create(REPLICASETS, ns, rs)
        if replicas > 0:
            self.events.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}",
                "deployment-controller",
            )
        return created

    @staticmethod
    def _copied_annotations(d: Obj) -> dict[str, str]:
        return {k: v for k, v in (d["metadata"].get("annotations") or {}).items() if k not in _NOT_COPIED}

    def _adopt(self, d: Obj, rs: Obj, max_old_rev: int) -> Obj:
        """SetNewReplicaSetAnnotations: copy the Deployment's annotations, and renumber a template that came back."""
        current = dict(rs["metadata"].get("annotations") or {})
        annotations = {k: v for k, v in current.items() if k in {DESIRED, MAX_REPLICAS}}
        annotations.update(self._copied_annotations(d))
        old_rev = revision_of(rs)
        history = current.get(REVISION_HISTORY)
        if old_rev < max_old_rev + 1:
            # an older template came back (rollout undo): it becomes the newest revision
            annotations[REVISION] = str(max_old_rev + 1)
            if REVISION in current:
                annotations[REVISION_HISTORY] = f"{history},{old_rev}" if history else str(old_rev)
            self._progress_since[d["metadata"]["uid"]] = self.clock.now().timestamp()
        else:
            annotations[REVISION] = str(old_rev)
            if history:
                annotations[REVISION_HISTORY] = history
        min_ready = d["spec"].get("minReadySeconds", 0)
        if current == annotations and rs["spec"].get("minReadySeconds", 0) == min_ready:
            return rs  # the stored object, read only by the caller; copied below only to write
        rs = copy.deepcopy(rs)
        rs["metadata"]["annotations"] = annotations
        rs["spec"]["minReadySeconds"] = min_ready  # getNewReplicaSet keeps it in line with the Deployment
        if not min_ready:
            rs["spec"].pop("minReadySeconds")
        rs["metadata"]["resourceVersion"] = None
        return self.store.update(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs)

    def _cleanup_history(self, d: Obj, owned: list[Obj], new_uid: str | None, pods: dict[str, int]) -> None:
        limit = d["spec"].get("revisionHistoryLimit", 10)
        ns = d["metadata"]["namespace"]
        old = [
            rs
            for rs in owned
            if rs["metadata"]["uid"] != new_uid
            and strategy.replicas(rs) == 0
            and not pods.get(rs["metadata"]["uid"])
        ]
        if len(old) <= limit:
            return  # nothing to delete: no need to scan the namespace's pods
        with_pods = {_owner_uid(p) for p in self.store.scan(PODS, ns)}  # Terminating ones too
        old = [rs for rs in old if rs["metadata"]["uid"] not in with_pods]
        old.sort(key=revision_of)
        for rs in old[: max(0, len(old) - limit)]:
            self._delete_quietly(REPLICASETS, rs)

    def _write_deployment_status(
        self,
        d: Obj,
        owned: list[Obj],
        new_uid: str | None,
        counts: dict[str, int],
        ready: dict[str, int],
        avail: dict[str, int],
    ) -> None:
        uid = d["metadata"]["uid"]
        status, complete = deployment_status(d, owned, new_uid, counts, ready, avail)
        since = self._progress_since.get(uid)
        timed_out = since is not None and self.clock.now().timestamp() - since > d["spec"].get(
            "progressDeadlineSeconds", 600
        )
        if complete:
            self._progress_since.pop(uid, None)
        status["conditions"] = conditions(d, owned, new_uid, status, complete, timed_out)
        if status != (d.get("status") or {}):
            self.store.update(
                DEPLOYMENTS,
                d["metadata"]["namespace"],
                d["metadata"]["name"],
                {"metadata": {"name": d["metadata"]["name"]}, "status": status},
                subresource="status",
            )

    def _schedule_deadline_check(self, seconds: float) -> None:
        async def later() -> None:
            await self.clock.sleep(seconds + 0.001)
            self._dirty.set()

        self._spawn(later())

    # --- the ReplicaSet controller ----------------------------------------------------

    def _sync_replicaset(self, rs: Obj, pods: list[Obj]) -> None:
        ns = rs["metadata"]["namespace"]
        pods = list(pods)
        wanted = strategy.replicas(rs)
        if len(pods) < wanted:
            for _ in range(wanted - len(pods)):
                pods.append(self.pods.create(rs))
        elif len(pods) > wanted:
            # not-ready pods go first, then the youngest, as the ReplicaSet controller ranks them
            ranked = sorted(pods, key=_creation_order, reverse=True)
            ranked.sort(key=is_ready)  # stable: not ready before ready, youngest first within each
            doomed = ranked[: len(pods) - wanted]
            for pod in doomed:
                self.pods.terminate(pod)
                self.events.record(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    "replicaset-controller",
                )
            pods = [p for p in pods if p not in doomed]
        ready = sum(1 for p in pods if is_ready(p))
        available = self._available({"rs": pods}, rs["spec"].get("minReadySeconds", 0)).get("rs", 0)
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": available,
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

    def settle_now(self) -> None:
        """Reconcile until nothing moves, every pod ready at once: seeded objects start fully rolled out."""
        for _ in range(50):
            before = self.store.resource_version
            self.reconcile_all()
            self.pods.settle()
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


def _creation_order(obj: Obj) -> tuple[str, str]:
    """Oldest first, as ReplicaSetsByCreationTimestamp sorts: creationTimestamp, then name."""
    meta = obj["metadata"]
    return (meta.get("creationTimestamp", ""), meta.get("name", ""))
