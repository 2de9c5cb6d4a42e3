"""Can the `replicas` strategy express a plan's canary steps with whole pods?"""

from __future__ import annotations

import math

from core.plan import TargetSpec


def canary_pods(total: int, percent: int) -> int:
    # half-up rounding: 5 % of 10 pods is one pod (Python's round() would say zero)
    return math.floor(total * percent / 100 + 0.5)


def effective_percent(canary: int, stable: int) -> int:
    total = canary + stable
    return math.floor(100 * canary / total + 0.5) if total else 0


def check_expressible(target: TargetSpec, weights: list[int], replicas: int) -> str | None:
    """None when every partial step gets at least one canary and one stable pod; else why not."""
    if target.strategy != "replicas":
        return None
    where = f"{target.namespace}/{target.deployment}"
    if replicas < 2:
        return f"strategy 'replicas' on {where} needs at least 2 replicas to split traffic, has {replicas}"
    for percent in weights:
        if not 0 < percent < 100:
            continue
        pods = canary_pods(replicas, percent)
        if pods == 0:
            need = math.ceil(50 / percent)
            return (
                f"strategy 'replicas' on {where} cannot express the canary step {percent}% with {replicas} replicas "
                f"(it would be 0 canary pods, 0%); use at least {need} replicas or a larger first step"
            )
        if pods == replicas:
            return (
                f"strategy 'replicas' on {where} cannot express the canary step {percent}% with {replicas} replicas "
                f"(it would move every pod to the canary); use more replicas or a smaller step"
            )
    return None
