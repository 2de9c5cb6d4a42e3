"""The Gateway router checks readiness against the route it writes, not a cached copy of it.

Found while raising the traffic module's mutation score (issue 16): the readiness check ran once, against
the route cached from our own last write. When an operator edited the route by hand in between, the
conditional PATCH conflicted, the route was read again, and the retry wrote without checking anything:
25 % went to a canary with no ready pods, or the weight came down from 100 % without stable at its floor.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.ports import ClusterError
from tests.traffic_fake import CANARY as C
from tests.traffic_fake import CANARY_PATH, ROUTE_PATH, STABLE_PATH
from tests.traffic_fake import ROUTE as RT
from tests.traffic_fake import STABLE as S
from tests.traffic_fake import cluster as fake_cluster


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def _gateway(canary_weight: int, stable_weight: int, **kw: Any) -> Any:
    route = {
        "metadata": {"name": RT, "resourceVersion": "7"},
        "spec": {
            "rules": [
                {"backendRefs": [{"name": S, "weight": stable_weight}, {"name": C, "weight": canary_weight}]}
            ]
        },
    }
    return fake_cluster("gateway", extra={ROUTE_PATH: route}, **kw)


def _operator_sets(api: Any, canary_weight: int) -> None:
    _operator_sets_in(api.objects[ROUTE_PATH], canary_weight)


def _operator_sets_in(route: dict[str, Any], canary_weight: int) -> None:
    refs = route["spec"]["rules"][0]["backendRefs"]
    refs[0]["weight"], refs[1]["weight"] = 100 - canary_weight, canary_weight
    route["metadata"]["resourceVersion"] = str(int(route["metadata"]["resourceVersion"]) + 1)


def _weight(api: Any) -> int:
    return api.objects[ROUTE_PATH]["spec"]["rules"][0]["backendRefs"][1]["weight"]


def test_a_route_put_back_to_0_by_hand_is_not_sent_25_percent_for_a_canary_with_no_ready_pods() -> None:
    cluster, api, _ = _gateway(0, 100, lag=1, canary=3)
    run(cluster.set_canary_weight(25))
    assert _weight(api) == 25
    # an operator takes traffic off the canary by hand, and its pods go away
    _operator_sets(api, 0)
    api.objects[CANARY_PATH]["status"].update(readyReplicas=0, availableReplicas=0)
    api.calls.clear()
    with pytest.raises(ClusterError, match="not ready before canary traffic 25%"):
        run(cluster.set_canary_weight(25))
    assert _weight(api) == 0
    # the PATCH from the cached route conflicted; the route read again is checked, and nothing else is written
    assert api.trail()[:3] == [("PATCH", RT), ("GET", RT), ("GET", C)]
    assert [c.method for c in api.writes()] == ["PATCH"]


def test_a_weight_coming_down_from_a_route_edited_to_100_waits_for_stable_at_its_floor() -> None:
    cluster, api, _ = _gateway(0, 100, lag=1, canary=3)
    run(cluster.set_canary_weight(25))
    _operator_sets(api, 100)  # by hand: everything on the canary
    stable = api.objects[STABLE_PATH]["status"]
    stable.update(readyReplicas=0, availableReplicas=0)  # and stable scaled away under it
    api.calls.clear()
    with pytest.raises(ClusterError, match="before traffic returns to stable"):
        run(cluster.set_canary_weight(50))
    assert _weight(api) == 100  # nothing moved toward a stable with no pods


def test_a_route_whose_weight_changes_on_every_read_is_given_up_after_five_waits_and_never_written() -> None:
    cluster, api, _ = _gateway(0, 100, lag=1, canary=3)
    seen = iter(range(1, 100))

    def edited_by_hand(route: dict[str, Any]) -> None:
        _operator_sets_in(route, next(seen))

    api.on_get[ROUTE_PATH] = edited_by_hand
    with pytest.raises(ClusterError) as err:
        run(cluster.set_canary_weight(25))
    assert str(err.value) == (
        "HTTPRoute prod/web-route: its weight kept changing while waiting for the pods to take 25%"
    )
    # the first read, then a wait and a fresh read five times, each fresh read another weight
    assert api.trail() == [("GET", RT)] + [("GET", C), ("GET", RT)] * 5
    assert api.writes() == []
    assert _weight(api) == 6
