"""Deployment rollout arithmetic, as upstream's deployment controller and apps/v1 validation do it.

Sources (kubernetes/kubernetes): pkg/controller/deployment/util/deployment_util.go (ResolveFenceposts,
MaxSurge, MaxUnavailable, NewRSNewReplicas) and pkg/controller/deployment/rolling.go
(reconcileOldReplicaSets, cleanupUnhealthyReplicas, scaleDownOldReplicaSetsForRollingUpdate).
"""

from __future__ import annotations

import math
import re
from typing import Any

Obj = dict[str, Any]

_PERCENT = re.compile(r"^([0-9]+)%$")


def int_or_percent(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetValueFromIntOrPercent: an int as is, "N%" of total rounded up or down."""
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    m = _PERCENT.match(str(value))
    if not m:
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value}")
    scaled = int(m.group(1)) * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def _rolling(d: Obj) -> Obj | None:
    strategy = (d.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    return strategy.get("rollingUpdate") or {}


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    surge = int_or_percent(0 if max_surge is None else max_surge, desired, True)
    unavailable = int_or_percent(0 if max_unavailable is None else max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        # validation refuses both explicitly 0; rounding down can still get there: then one pod may go
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    rolling = _rolling(d)
    if rolling is None:
        return 0
    return resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    rolling = _rolling(d)
    desired = replicas(d)
    if rolling is None or desired == 0:
        return 0
    unavailable = resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), desired)[1]
    return min(unavailable, desired)


def replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def new_rs_replicas(d: Obj, all_rs_replicas: int, new_rs_current: int) -> int:
    """NewRSNewReplicas: how far the new ReplicaSet may grow under maxSurge (Recreate: all at once)."""
    if _rolling(d) is None:
        return replicas(d)
    desired = replicas(d)
    max_total = desired + max_surge(d)
    if all_rs_replicas >= max_total:
        return new_rs_current
    return new_rs_current + min(max_total - all_rs_replicas, desired - new_rs_current)


def validate_strategy(spec: Obj) -> tuple[str, str] | None:
    """The (field, problem) apps/v1 validation reports for spec.strategy, or None when it is valid."""
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type", "RollingUpdate")
    if kind not in {"RollingUpdate", "Recreate"}:
        return (
            "spec.strategy.type",
            f'Unsupported value: "{kind}": supported values: "Recreate", "RollingUpdate"',
        )
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return (
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )
        return None
    rolling = rolling or {}
    values: dict[str, int] = {}
    for key in ("maxUnavailable", "maxSurge"):
        value = rolling.get(key)
        if value is None:
            continue
        path = f"spec.strategy.rollingUpdate.{key}"
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return path, f"Invalid value: {value!r}: must be an integer or percentage (e.g '5%')"
        if isinstance(value, str) and not _PERCENT.match(value):
            return (
                path,
                f"Invalid value: \"{value}\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )
        number = value if isinstance(value, int) else int(value[:-1])
        if number < 0:
            return path, f"Invalid value: {value}: must be greater than or equal to 0"
        if key == "maxUnavailable" and isinstance(value, str) and number > 100:
            return path, f'Invalid value: "{value}": must not be greater than 100%'
        values[key] = number
    if values.get("maxUnavailable", 1) == 0 and values.get("maxSurge", 1) == 0:
        shown = rolling.get("maxUnavailable")
        shown = f'"{shown}"' if isinstance(shown, str) else shown
        return (
            "spec.strategy.rollingUpdate.maxUnavailable",
            f"Invalid value: {shown}: may not be 0 when `maxSurge` is 0",
        )
    return None


# --- scaling events: pkg/controller/deployment/sync.go (isScalingEvent, scale) ----------------------

DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"


def _annotation_int(rs: Obj, key: str) -> int | None:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {})[key])
    except (KeyError, ValueError):
        return None


def is_scaling_event(d: Obj, active: list[Obj]) -> bool:
    """The Deployment's size changed since its active ReplicaSets were last sized for it."""
    return any((want := _annotation_int(rs, DESIRED)) is not None and want != replicas(d) for rs in active)


def _round(value: float) -> int:
    return math.floor(value + 0.5)  # integer.RoundToInt32 rounds half away from zero (values are >= 0)


def proportional_sizes(d: Obj, new_rs: Obj | None, old: list[Obj], status_replicas: int) -> dict[str, int]:
    """dc.scale: the size each ReplicaSet gets when a Deployment is resized mid-rollout (or paused).

    One active (or only a latest) ReplicaSet takes the whole size; a saturated new one leaves the old
    ones at 0; otherwise (RollingUpdate) the surplus or deficit is spread in proportion to the sizes the
    ReplicaSets had for the previous size (their max-replicas annotation), leftovers to the largest.
    """
    desired = replicas(d)
    every = [rs for rs in [*old, new_rs] if rs is not None]
    active = [rs for rs in every if replicas(rs) > 0]
    name = lambda rs: rs["metadata"]["name"]  # noqa: E731
    if len(active) <= 1:
        # FindActiveOrLatest: the only active one, or (none active) the new one, else the newest old one
        target = active[0] if active else (new_rs or (max(old, key=_created) if old else None))
        return {name(target): desired} if target is not None else {}
    if new_rs is not None and replicas(new_rs) == desired and _annotation_int(new_rs, DESIRED) == desired:
        if ((new_rs.get("status") or {}).get("availableReplicas", 0)) == desired:  # IsSaturated
            return {name(rs): 0 for rs in active if rs is not new_rs}
    if _rolling(d) is None:
        return {}
    allowed = desired + max_surge(d) if desired > 0 else 0
    to_add = allowed - sum(replicas(rs) for rs in active)
    if to_add > 0:  # ReplicaSetsBySizeNewer: larger first, newer first among equals
        active.sort(key=lambda rs: (replicas(rs), _created(rs)), reverse=True)
    elif to_add < 0:  # ReplicaSetsBySizeOlder: larger first, older first among equals
        active.sort(key=lambda rs: (-replicas(rs), _created(rs)))
    added = 0
    sizes: dict[str, int] = {}
    for rs in active:
        proportion = 0
        size = replicas(rs)
        if to_add != 0 and size != 0 and to_add != added:
            if desired == 0:
                fraction = -size
            else:
                before = _annotation_int(rs, MAX_REPLICAS) or status_replicas
                fraction = _round(size * (desired + max_surge(d)) / before) - size if before else 0
            left = to_add - added
            proportion = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[name(rs)] = size + proportion
        added += proportion
    if to_add != 0:
        largest = name(active[0])
        sizes[largest] = max(0, sizes[largest] + to_add - added)
    return sizes


def _created(rs: Obj) -> tuple[str, str]:
    meta = rs.get("metadata") or {}
    return (meta.get("creationTimestamp", ""), meta.get("name", ""))
