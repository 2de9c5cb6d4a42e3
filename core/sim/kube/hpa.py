"""HorizontalPodAutoscalers (autoscaling/v2) and the part of their controller a rollout runs into.

The simulator has no metrics, so an HPA here does what a real one does when its metrics are missing:
it keeps the target's `spec.replicas` inside [minReplicas, maxReplicas] (pkg/controller/podautoscaler
reconcileAutoscaler: "Current number of replicas above Spec.MaxReplicas" / "below Spec.MinReplicas").
A test can play the metrics' part with `wanted[(namespace, hpa)] = N`: the HPA then scales its target
to N (clamped), as a load-driven HPA would, and writes it back over any other `spec.replicas` write on
its next sync, every `sync_s` seconds of the Clock (kube-controller-manager's default is 15 s).
"""

from __future__ import annotations

import copy
from typing import Any

from core.clock import Clock
from core.sim.kube.errors import ApiError
from core.sim.kube.events import EventRecorder
from core.sim.kube.resources import BY_PATH
from core.sim.kube.store import Obj, Store, rfc3339

HPAS = BY_PATH[("autoscaling", "v2", "horizontalpodautoscalers")]
DEPLOYMENTS = BY_PATH[("apps", "v1", "deployments")]
SYNC_S = 15.0


class HpaController:
    def __init__(self, store: Store, clock: Clock, events: EventRecorder) -> None:
        self.store = store
        self.clock = clock
        self.events = events
        self.sync_s = SYNC_S
        #: what the metrics would ask for, per (namespace, hpa name); absent: metrics unavailable
        self.wanted: dict[tuple[str, str], int] = {}

    def sync_all(self) -> None:
        for hpa in [copy.deepcopy(h) for h in self.store.scan(HPAS, None)]:
            try:
                self._sync(hpa)
            except ApiError:
                continue  # the target went away or a client write won the race: next period

    def _sync(self, hpa: Obj) -> None:
        ns, name = hpa["metadata"]["namespace"], hpa["metadata"]["name"]
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        target = (
            self.store.peek(DEPLOYMENTS, ns, ref.get("name", "")) if ref.get("kind") == "Deployment" else None
        )
        low, high = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        if target is None:
            self._status(
                hpa,
                None,
                None,
                (
                    "AbleToScale",
                    "False",
                    "FailedGetScale",
                    "the HPA controller was unable to get the target's current scale",
                ),
            )
            return
        current = int(target["spec"].get("replicas", 1))
        if current == 0 and low != 0:
            self._status(
                hpa,
                0,
                0,
                (
                    "ScalingActive",
                    "False",
                    "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero",
                ),
            )
            return
        metric = self.wanted.get((ns, name))
        if current > high:
            desired, reason = high, "Current number of replicas above Spec.MaxReplicas"
        elif current < low:
            desired, reason = low, "Current number of replicas below Spec.MinReplicas"
        elif metric is not None:
            desired, reason = (
                max(low, min(high, metric)),
                "metric above target" if metric > current else "All metrics below target",
            )
        else:
            desired, reason = current, ""
        if desired != current:
            scaled = copy.deepcopy(target)
            scaled["spec"]["replicas"] = desired
            scaled["metadata"]["resourceVersion"] = None
            self.store.update(DEPLOYMENTS, ns, target["metadata"]["name"], scaled)
            self.events.record(
                hpa,
                "Normal",
                "SuccessfulRescale",
                f"New size: {desired}; reason: {reason}",
                "horizontal-pod-autoscaler",
            )
        active = (
            (
                "ScalingActive",
                "True",
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count",
            )
            if metric is not None
            else (
                "ScalingActive",
                "False",
                "FailedGetResourceMetric",
                "the HPA was unable to compute the replica count: no metrics returned",
            )
        )
        self._status(hpa, current, desired, active, scaled_at=desired != current)

    def _status(
        self,
        hpa: Obj,
        current: int | None,
        desired: int | None,
        condition: tuple[str, str, str, str],
        *,
        scaled_at: bool = False,
    ) -> None:
        old = hpa.get("status") or {}
        kind, status, reason, message = condition
        now = rfc3339(self.clock.now())
        previous = next((c for c in old.get("conditions") or [] if c.get("type") == kind), {})
        since = previous.get("lastTransitionTime", now) if previous.get("status") == status else now
        new: dict[str, Any] = {
            "currentReplicas": current or 0,
            "desiredReplicas": desired or 0,
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "lastTransitionTime": since,
                    "reason": reason,
                    "message": message,
                }
            ],
        }
        if scaled_at or "lastScaleTime" in old:
            new["lastScaleTime"] = now if scaled_at else old["lastScaleTime"]
        if new != old:
            ns, name = hpa["metadata"]["namespace"], hpa["metadata"]["name"]
            self.store.update(HPAS, ns, name, {"metadata": {}, "status": new}, subresource="status")
