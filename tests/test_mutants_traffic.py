"""How the traffic routers read what they steer by (issue 16; from the survivors of
`make mutate MUTATE_MODULES=core.adapters.kubernetes.traffic`).

ingress-nginx's canary annotations decide the share of traffic the canary gets, and a Deployment's
rollingUpdate fields decide how many ready pods a change may cost: each reading is pinned here on
the values ingress-nginx and the Deployment controller use.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from core.adapters.kubernetes.api import KubeApiError
from core.adapters.kubernetes.traffic import (
    _available,
    _canary_on,
    max_unavailable,
    nginx_total,
    nginx_weight,
    paused_error,
    ready_floor,
)
from core.domain import TrafficChange
from core.ports import ClusterError
from tests.traffic_fake import CANARY as C
from tests.traffic_fake import (
    CANARY_PATH,
    INGRESS_PATH,
    MERGE,
    ROUTE_PATH,
    STABLE_PATH,
    STATE,
    Call,
)
from tests.traffic_fake import INGRESS as ING
from tests.traffic_fake import ROUTE as RT
from tests.traffic_fake import STABLE as S
from tests.traffic_fake import cluster as fake_cluster

pytestmark = pytest.mark.timeout(10)

CANARY = "nginx.ingress.kubernetes.io/canary"
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
TOTAL = "nginx.ingress.kubernetes.io/canary-weight-total"


def _ingress(**annotations: str) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations}}


def test_the_weight_total_defaults_to_100_and_only_a_positive_number_replaces_it() -> None:
    assert nginx_total({}) == 100
    assert nginx_total({"metadata": {"annotations": None}}) == 100
    assert nginx_total(_ingress(**{CANARY: "true"})) == 100
    assert nginx_total(_ingress(**{TOTAL: "1000"})) == 1000
    assert nginx_total(_ingress(**{TOTAL: "1"})) == 1
    for bad in ("0", "-5", "ten", ""):
        assert nginx_total(_ingress(**{TOTAL: bad})) == 100, bad


def test_the_canary_share_is_weight_over_total_rounded_half_up_and_only_while_canary_is_on() -> None:
    assert nginx_weight({}) == 0
    assert nginx_weight({"metadata": {"annotations": None}}) == 0
    assert nginx_weight(_ingress(**{WEIGHT: "30"})) == 0  # weight without canary: "true" is ignored
    assert nginx_weight(_ingress(**{CANARY: "false", WEIGHT: "30"})) == 0
    assert nginx_weight(_ingress(**{CANARY: "true"})) == 0  # canary on, no weight yet
    assert nginx_weight(_ingress(**{CANARY: "true", WEIGHT: "30"})) == 30
    assert nginx_weight(_ingress(**{CANARY: "true", WEIGHT: "100"})) == 100
    assert nginx_weight(_ingress(**{CANARY: "true", WEIGHT: "30", TOTAL: "200"})) == 15
    assert nginx_weight(_ingress(**{CANARY: "true", WEIGHT: "3", TOTAL: "200"})) == 2  # 1.5 % rounds up
    assert nginx_weight(_ingress(**{CANARY: "true", WEIGHT: "1", TOTAL: "300"})) == 0  # 0.33 % rounds down
    assert nginx_weight(_ingress(**{CANARY: "true", WEIGHT: "250", TOTAL: "200"})) == 100  # capped at total
    assert nginx_weight(_ingress(**{CANARY: "true", WEIGHT: "-5"})) == 0
    assert nginx_weight(_ingress(**{CANARY: "true", WEIGHT: "half"})) == 0


def test_the_canary_ingress_is_on_only_when_its_canary_annotation_is_exactly_true() -> None:
    assert _canary_on(_ingress(**{CANARY: "true"})) is True
    assert _canary_on(_ingress(**{CANARY: "false"})) is False
    assert _canary_on(_ingress(**{CANARY: "True"})) is False  # ingress-nginx parses "true" only
    assert _canary_on(_ingress()) is False
    assert _canary_on({"metadata": {"annotations": None}}) is False
    assert _canary_on({}) is False


def test_available_pods_are_read_from_status_and_absent_means_none() -> None:
    assert _available({"status": {"availableReplicas": 3, "readyReplicas": 5}}) == 3
    assert _available({"status": {}}) == 0
    assert _available({}) == 0


def test_a_paused_deployment_error_names_it_and_says_how_to_resume() -> None:
    err = paused_error({"metadata": {"namespace": "prod", "name": "web"}})
    assert str(err) == (
        "deployment prod/web is paused (spec.paused: true): it would never roll out; resume it with "
        "'kubectl rollout resume deployment/web -n prod' or finish what paused it first"
    )


def _deployment(strategy: dict[str, Any] | None) -> dict[str, Any]:
    return {"spec": {"strategy": strategy} if strategy is not None else {}}


def test_max_unavailable_follows_the_deployment_controller() -> None:
    assert max_unavailable(_deployment(None), 10) == 2  # 25 % of 10, rounded down
    assert max_unavailable({}, 10) == 2
    assert max_unavailable(_deployment({"type": "Recreate"}), 10) == 0
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}
    assert max_unavailable(_deployment(rolling), 5) == 2  # 2.5 rounds down
    assert max_unavailable(_deployment({"rollingUpdate": {"maxUnavailable": 3}}), 10) == 3
    assert max_unavailable(_deployment({"rollingUpdate": {"maxUnavailable": " 4 "}}), 10) == 4
    assert max_unavailable(_deployment({"rollingUpdate": {"maxUnavailable": 20}}), 5) == 5  # at most all
    assert max_unavailable(_deployment({"rollingUpdate": {"maxUnavailable": -2, "maxSurge": 1}}), 10) == 0
    for bad in ("many", "x%"):
        assert (
            max_unavailable(_deployment({"rollingUpdate": {"maxUnavailable": bad, "maxSurge": 1}}), 10) == 0
        )
    assert max_unavailable(_deployment({"rollingUpdate": {"maxUnavailable": "0", "maxSurge": 1}}), 10) == 0
    # maxSurge defaults to 25 % (3 of 10 pods): maxUnavailable 0 alone is valid and stays 0
    assert max_unavailable(_deployment({"rollingUpdate": {"maxUnavailable": 0}}), 10) == 0
    # both zero is invalid upstream: the controller uses one unavailable pod
    both_zero = {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}
    assert max_unavailable(_deployment(both_zero), 10) == 1
    # a surge that rounds up to one pod keeps maxUnavailable at its own value (0)
    assert (
        max_unavailable(_deployment({"rollingUpdate": {"maxUnavailable": "0%", "maxSurge": "1%"}}), 10) == 0
    )


def test_the_ready_floor_is_total_minus_max_unavailable_and_never_negative() -> None:
    assert ready_floor(_deployment(None), 10) == 8
    assert ready_floor(_deployment({"type": "Recreate"}), 4) == 4
    assert ready_floor(_deployment(None), 0) == 0
    assert ready_floor(_deployment({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}), 1) == 0


# --- the routers' writes and waits, on a recording fake API (tests/traffic_fake.py) -----------------
#
# Every request the adapter sends is recorded with its body; Deployments catch up with their spec a
# few reads after a write, as pods start. Each test pins the sequence of cluster writes and the waits
# between them, and the words that reach the operator when a wait gives up.


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _patch(call: Call) -> tuple[str, Any]:
    assert (call.method, call.content_type, call.idempotent) == ("PATCH", MERGE, True), call
    return call.path, call.body


def _state(total: int | None) -> dict[str, Any]:
    own = {} if total is None else {"total": total}
    return {"metadata": {"annotations": {STATE: json.dumps({"_kube": own}, sort_keys=True)}}}


def test_a_first_replicas_step_grows_the_canary_waits_for_it_then_shrinks_stable_with_the_total() -> None:
    cluster, api, clock = fake_cluster(lag=3)
    change = run(cluster.set_canary_weight(25))
    assert change == TrafficChange(requested=25, effective=30, detail="3 of 10 pods on the canary (30%)")
    assert api.trail() == [
        ("GET", S),
        ("GET", C),
        ("GET", "horizontalpodautoscalers"),  # the HPA check comes before the first replica write
        ("PATCH", C),
        ("GET", C),
        ("GET", C),
        ("GET", C),
        ("PATCH", S),
    ]
    writes = api.writes()
    assert _patch(writes[0]) == (CANARY_PATH, {"spec": {"replicas": 3}})
    # the total rides along with the stable scale, in the same write
    assert _patch(writes[1]) == (STABLE_PATH, {"spec": {"replicas": 7}, **_state(10)})
    assert clock.sleeps == [0.25, 0.25]
    # stable shrank only once the 3 canary pods were available: 10 ready, never fewer
    assert api.capacity == [(10, 0), (7, 3)]


def test_going_back_to_0_grows_stable_waits_for_it_then_empties_the_canary_and_forgets_the_total() -> None:
    cluster, api, _clock = fake_cluster(lag=3)
    run(cluster.set_canary_weight(50))
    api.calls.clear()
    change = run(cluster.set_canary_weight(0))
    assert change == TrafficChange(requested=0, effective=0, detail="0 of 10 pods on the canary (0%)")
    assert api.trail() == [("PATCH", S), ("GET", S), ("GET", S), ("GET", S), ("PATCH", C)]
    writes = api.writes()
    assert _patch(writes[0]) == (STABLE_PATH, {"spec": {"replicas": 10}, **_state(None)})
    assert _patch(writes[1]) == (CANARY_PATH, {"spec": {"replicas": 0}})
    assert api.capacity[-2:] == [(5, 5), (10, 0)]
    assert all(stable + canary >= 10 for stable, canary in api.capacity)


def test_a_later_step_reads_nothing_first_and_leaves_the_remembered_total_alone() -> None:
    cluster, api, _ = fake_cluster(lag=1)
    run(cluster.set_canary_weight(25))
    api.calls.clear()
    change = run(cluster.set_canary_weight(50))
    assert change.detail == "5 of 10 pods on the canary (50%)"
    assert api.trail() == [("PATCH", C), ("GET", C), ("PATCH", S)]
    assert _patch(api.writes()[1]) == (STABLE_PATH, {"spec": {"replicas": 5}})


def test_after_a_deploy_ends_at_0_the_next_one_looks_for_an_hpa_again() -> None:
    cluster, api, _ = fake_cluster(lag=1)
    run(cluster.set_canary_weight(25))
    run(cluster.set_canary_weight(0))
    assert [c for c in api.trail() if c[1] == "horizontalpodautoscalers"] == [
        ("GET", "horizontalpodautoscalers")
    ]
    api.calls.clear()
    run(cluster.set_canary_weight(25))
    assert ("GET", "horizontalpodautoscalers") in api.trail()


def test_a_step_too_small_to_move_a_pod_still_remembers_the_total_and_0_forgets_it() -> None:
    cluster, api, _ = fake_cluster(lag=1)
    change = run(cluster.set_canary_weight(1))  # 1 % of 10 pods rounds to none
    assert change == TrafficChange(requested=1, effective=0, detail="0 of 10 pods on the canary (0%)")
    assert api.trail() == [("GET", S), ("GET", C), ("GET", "horizontalpodautoscalers"), ("PATCH", S)]
    assert _patch(api.writes()[0]) == (STABLE_PATH, _state(10))
    api.calls.clear()
    run(cluster.set_canary_weight(0))
    assert api.trail() == [("PATCH", S)]  # no HPA to put back: only the total forgotten
    assert _patch(api.writes()[0]) == (STABLE_PATH, _state(None))
    api.calls.clear()
    run(cluster.set_canary_weight(0))
    assert api.trail() == []  # nothing to forget, nothing to scale


def test_a_one_pod_canary_is_waited_for_before_stable_shrinks_too() -> None:
    cluster, api, _ = fake_cluster(lag=2)
    assert run(cluster.set_canary_weight(10)).detail == "1 of 10 pods on the canary (10%)"
    assert api.trail()[3:] == [("PATCH", C), ("GET", C), ("GET", C), ("PATCH", S)]
    assert api.capacity == [(10, 0), (9, 1)]


def test_shrinking_to_a_smaller_plan_does_not_wait_on_an_empty_canary() -> None:
    cluster, api, _ = fake_cluster(lag=1, replicas=4)
    run(cluster.set_canary_weight(1))  # 1 % of 4 pods: none; stable goes from 10 to the plan's 4
    assert api.trail() == [("GET", S), ("GET", C), ("GET", "horizontalpodautoscalers"), ("PATCH", S)]
    assert _patch(api.writes()[0]) == (STABLE_PATH, {"spec": {"replicas": 4}, **_state(4)})


def test_a_stable_with_an_unreadable_state_annotation_is_read_again_each_time_and_never_written() -> None:
    cluster, api, _ = fake_cluster(lag=1, stable_extra={"metadata": {"annotations": {STATE: "{not json"}}})
    for _ in range(2):
        with pytest.raises(ClusterError, match="is not valid JSON"):
            run(cluster.set_canary_weight(25))
    assert api.trail() == [("GET", S), ("GET", S)]


def test_a_scale_by_an_operator_seen_in_the_answer_to_our_state_write_sizes_the_next_deploy() -> None:
    cluster, api, _ = fake_cluster(lag=1)
    run(cluster.set_canary_weight(1))  # no pod moves; the total 10 is remembered
    api.objects[STABLE_PATH]["spec"]["replicas"] = 12  # kubectl scale, meanwhile
    run(cluster.set_canary_weight(0))  # the total forgotten: the answer shows stable at 12
    api.calls.clear()
    assert run(cluster.set_canary_weight(50)).detail == "6 of 12 pods on the canary (50%)"


def test_the_total_is_the_plan_size_else_the_saved_one_else_the_live_sum() -> None:
    cluster, api, _ = fake_cluster(lag=1, replicas=4)
    assert run(cluster.set_canary_weight(50)).detail == "2 of 4 pods on the canary (50%)"
    saved = {"metadata": {"annotations": {STATE: json.dumps({"_kube": {"total": 8}})}}}
    cluster, api, _ = fake_cluster(lag=1, stable_extra=saved)
    assert run(cluster.set_canary_weight(50)).detail == "4 of 8 pods on the canary (50%)"
    cluster, api, _ = fake_cluster(lag=1, stable=7, canary=3)
    assert run(cluster.set_canary_weight(50)).detail == "5 of 10 pods on the canary (50%)"
    cluster, api, _ = fake_cluster(lag=1, stable=0, canary=0)
    assert run(cluster.set_canary_weight(50)).detail == "0 of 0 pods on the canary (0%)"
    assert [_patch(c) for c in api.writes()] == [(STABLE_PATH, _state(0))]  # no pod to move


def test_a_stable_that_never_becomes_ready_stops_the_canary_scale_down_with_a_clear_error() -> None:
    cluster, api, _clock = fake_cluster(lag=1, rollout_timeout=1.0)
    run(cluster.set_canary_weight(50))
    api.lag = 10**6  # stable's new pods never start
    api.calls.clear()
    with pytest.raises(ClusterError) as err:
        run(cluster.set_canary_weight(0))
    assert str(err.value) == (
        "deployment prod/web not ready before web-canary is scaled down after 1s: "
        "5 of 10 updated replicas are available"
    )
    assert api.trail() == [("PATCH", S)] + [("GET", S)] * 5  # at 0, .25, .5, .75 and 1 s
    assert api.objects[CANARY_PATH]["spec"]["replicas"] == 5  # the canary keeps serving


def test_a_canary_that_never_becomes_ready_keeps_stable_at_full_size() -> None:
    cluster, api, clock = fake_cluster(lag=10**6, rollout_timeout=2.5)
    with pytest.raises(ClusterError) as err:
        run(cluster.set_canary_weight(25))
    assert str(err.value) == (
        "deployment prod/web-canary not ready before web is scaled down after 2.5s: "
        "0 of 3 updated replicas are available"
    )
    assert clock.elapsed() == 2.5 and clock.sleeps == [0.25] * 10
    assert api.objects[STABLE_PATH]["spec"]["replicas"] == 10


def test_the_weight_must_be_a_percentage() -> None:
    cluster, api, _ = fake_cluster("nginx", lag=1, canary=3, extra={INGRESS_PATH: _ing()})
    for bad in (-1, 101):
        with pytest.raises(ClusterError, match=rf"^canary weight must be 0\.\.100, got {bad}$"):
            run(cluster.set_canary_weight(bad))
    assert api.calls == []
    assert run(cluster.set_canary_weight(100)).effective == 100
    assert run(cluster.set_canary_weight(0)).effective == 0


# --- the waits ------------------------------------------------------------------------------------


def _ing(**annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": ING, "resourceVersion": "1", "annotations": annotations}}


def _nginx(weight: int | None = None, *, on: bool = True, total: str | None = None, **kw: Any) -> Any:
    annotations = {CANARY: "true" if on else "false"}
    if weight is not None:
        annotations[WEIGHT] = str(weight)
    if total is not None:
        annotations[TOTAL] = total
    return fake_cluster("nginx", extra={INGRESS_PATH: _ing(**annotations)}, **kw)


def test_a_paused_canary_stops_the_wait_at_once_with_how_to_resume_it() -> None:
    cluster, api, clock = _nginx(0, lag=1, canary=3)
    api.objects[CANARY_PATH]["spec"]["paused"] = True
    with pytest.raises(ClusterError, match=r"^deployment prod/web-canary is paused"):
        run(cluster.set_canary_weight(25))
    assert clock.sleeps == [] and api.writes() == []


def test_a_canary_past_its_progress_deadline_fails_at_once_and_says_why() -> None:
    cluster, api, clock = _nginx(0, lag=1, canary=3)
    api.objects[CANARY_PATH]["status"]["conditions"] = [
        {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "RS web-canary-1 timed out"}
    ]
    with pytest.raises(ClusterError) as err:
        run(cluster.set_canary_weight(25))
    assert str(err.value) == (
        "deployment prod/web-canary failed before canary traffic 25%: ProgressDeadlineExceeded: RS web-canary-1 timed out"
    )
    assert clock.sleeps == [] and api.writes() == []


def test_a_wait_returns_on_the_first_read_that_is_observed_and_done() -> None:
    cluster, api, clock = _nginx(0, lag=1, canary=3)
    canary = api.objects[CANARY_PATH]
    canary["metadata"]["generation"] = canary["status"]["observedGeneration"] = 4
    run(cluster.set_canary_weight(25))
    assert api.trail() == [("GET", ING), ("GET", C), ("PATCH", ING)]
    assert clock.sleeps == []


def test_a_wait_is_not_over_before_the_controller_has_seen_the_latest_spec() -> None:
    # stable reads as at its floor, but the controller has not observed generation 2 yet
    cluster, api, clock = _nginx(50, lag=1, canary=5)
    stable = api.objects[STABLE_PATH]
    stable["metadata"]["generation"] = 2
    reads = {"n": 0}

    def observe_on_the_third_read(obj: dict[str, Any]) -> None:
        reads["n"] += 1
        if reads["n"] == 3:
            obj["status"]["observedGeneration"] = 2

    api.on_get[STABLE_PATH] = observe_on_the_third_read
    run(cluster.set_canary_weight(0))
    assert api.trail() == [("GET", ING)] + [("GET", S)] * 3 + [("PATCH", ING)]
    assert clock.sleeps == [0.25, 0.25]


def test_without_generations_a_deployment_counts_as_observed() -> None:
    cluster, api, clock = _nginx(50, lag=1, canary=5)
    del api.objects[STABLE_PATH]["metadata"]["generation"]
    del api.objects[STABLE_PATH]["status"]["observedGeneration"]
    run(cluster.set_canary_weight(0))
    assert clock.sleeps == []


def test_a_generation_never_observed_is_waited_for_until_the_deadline() -> None:
    cluster, api, _clock = _nginx(50, lag=1, canary=5, rollout_timeout=0.5)
    del api.objects[STABLE_PATH]["status"]["observedGeneration"]
    with pytest.raises(ClusterError) as err:
        run(cluster.set_canary_weight(0))
    assert str(err.value) == (
        "deployment prod/web not ready before traffic returns to stable (0% canary) after 0.5s: "
        "10 of 10 available (floor 8)"
    )


@pytest.mark.parametrize(
    ("replicas", "available", "strategy", "reads"),
    [
        (10, 8, None, 1),  # exactly the floor (10 - 25 %): enough
        (10, 7, None, None),  # one short
        (0, 0, None, 1),  # scaled to 0: nothing to wait for
        (None, 0, None, 1),  # no replicas field: 0
        (4, 0, {"rollingUpdate": {"maxUnavailable": "100%"}}, None),  # floor 0, but no pod at all
        (4, 1, {"rollingUpdate": {"maxUnavailable": "100%"}}, 1),  # floor 0 and one pod
    ],
)
def test_traffic_returns_to_stable_only_at_its_floor_of_available_pods(
    replicas: int | None, available: int, strategy: dict[str, Any] | None, reads: int | None
) -> None:
    cluster, api, _clock = _nginx(50, lag=1, canary=5, rollout_timeout=1.0)
    stable = api.objects[STABLE_PATH]
    stable["status"]["availableReplicas"] = available
    if replicas is None:
        del stable["spec"]["replicas"]
    else:
        stable["spec"]["replicas"] = replicas
    if strategy is not None:
        stable["spec"]["strategy"] = strategy
    if reads is not None:
        run(cluster.set_canary_weight(0))
        assert api.trail() == [("GET", ING)] + [("GET", S)] * reads + [("PATCH", ING)]
        return
    with pytest.raises(ClusterError) as err:
        run(cluster.set_canary_weight(0))
    floor = 8 if strategy is None else 0
    assert str(err.value) == (
        "deployment prod/web not ready before traffic returns to stable (0% canary) after 1s: "
        f"{available} of {replicas} available (floor {floor})"
    )
    assert api.writes() == []


# --- before a weight through a traffic object ---------------------------------------------------


def test_a_canary_rolled_out_to_no_pods_gets_no_traffic_not_even_1_percent() -> None:
    cluster, api, _ = _nginx(0, lag=1, canary=0)
    with pytest.raises(ClusterError) as err:
        run(cluster.set_canary_weight(1))
    assert str(err.value) == (
        "deployment prod/web-canary has no ready pods: refusing to send 1% of traffic to it"
    )
    assert api.writes() == []


def test_lowering_the_weight_waits_for_stable_only_and_raising_it_for_the_canary_only() -> None:
    cluster, api, _ = _nginx(50, lag=1, canary=5)
    api.objects[CANARY_PATH]["status"]["availableReplicas"] = 0  # the canary is failing
    run(cluster.set_canary_weight(25))
    assert api.trail() == [("GET", ING), ("GET", S), ("PATCH", ING)]
    cluster, api, _ = _nginx(25, lag=1, canary=5)
    api.objects[STABLE_PATH]["status"]["availableReplicas"] = 3  # stable below its floor
    run(cluster.set_canary_weight(50))
    assert api.trail() == [("GET", ING), ("GET", C), ("PATCH", ING)]


def test_switching_the_canary_ingress_on_at_0_waits_for_nothing() -> None:
    cluster, api, _ = _nginx(None, on=False, lag=1, canary=0)
    api.objects[STABLE_PATH]["status"]["availableReplicas"] = 3
    change = run(cluster.set_canary_weight(0))
    assert api.trail() == [("GET", ING), ("PATCH", ING)]
    assert change.detail == "ingress web-ing canary-weight=0"


# --- ingress-nginx --------------------------------------------------------------------------------


def test_the_nginx_weight_is_written_as_a_share_of_its_total_rounded_half_up() -> None:
    cluster, api, _ = _nginx(0, total="30", lag=1, canary=3)
    change = run(cluster.set_canary_weight(5))  # 1.5 of 30
    path, body = _patch(api.writes()[0])
    assert (path, body) == (INGRESS_PATH, {"metadata": {"annotations": {CANARY: "true", WEIGHT: "2"}}})
    assert change == TrafficChange(requested=5, effective=7, detail="ingress web-ing canary-weight=2/30 (7%)")
    cluster, api, _ = _nginx(0, total="1000", lag=1, canary=3)
    assert run(cluster.set_canary_weight(25)).detail == "ingress web-ing canary-weight=250/1000 (25%)"
    cluster, api, _ = _nginx(0, lag=1, canary=3)
    change = run(cluster.set_canary_weight(25))
    assert _patch(api.writes()[0])[1] == {"metadata": {"annotations": {CANARY: "true", WEIGHT: "25"}}}
    assert change == TrafficChange(requested=25, effective=25, detail="ingress web-ing canary-weight=25")


def test_an_nginx_weight_already_in_place_is_not_written_again() -> None:
    cluster, api, _ = _nginx(30, lag=1, canary=3)
    change = run(cluster.set_canary_weight(30))
    assert api.trail() == [("GET", ING)]
    assert change == TrafficChange(requested=30, effective=30, detail="ingress web-ing canary-weight=30")
    cluster, api, _ = _nginx(None, total="200", lag=1, canary=3)
    change = run(cluster.set_canary_weight(0))
    assert api.trail() == [("GET", ING)]
    assert change == TrafficChange(
        requested=0, effective=0, detail="ingress web-ing canary-weight=0/200 (0%)"
    )


def test_the_nginx_weight_is_read_from_the_ingress() -> None:
    cluster, api, _ = _nginx(40, lag=1, canary=3)
    assert run(cluster._read_weight({}, {})) == 40
    assert api.trail() == [("GET", ING)]


# --- Gateway API ----------------------------------------------------------------------------------


def _route(*rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": RT, "resourceVersion": "7"},
        "spec": {"rules": [{"backendRefs": refs} for refs in rules]},
    }


API_RULE = [{"name": "api", "weight": 100}]


def _gateway(canary_weight: int | None = 0, stable_weight: int | None = 100, **kw: Any) -> Any:
    refs: list[dict[str, Any]] = [{"name": S}, {"name": C}]
    if stable_weight is not None:
        refs[0]["weight"] = stable_weight
    if canary_weight is not None:
        refs[1]["weight"] = canary_weight
    return fake_cluster("gateway", extra={ROUTE_PATH: _route(API_RULE, refs)}, **kw)


def test_the_gateway_weight_is_one_conditional_patch_of_the_canary_rule_only() -> None:
    cluster, api, _ = _gateway(lag=1, canary=3)
    change = run(cluster.set_canary_weight(25))
    assert change == TrafficChange(requested=25, effective=25, detail="httproute web-route canary weight 25%")
    assert api.trail() == [("GET", RT), ("GET", C), ("GET", RT), ("PATCH", RT)]
    patch = api.writes()[0]
    assert (patch.path, patch.content_type, patch.idempotent) == (ROUTE_PATH, MERGE, False)
    assert patch.body == {
        "metadata": {"resourceVersion": "7"},
        "spec": {
            "rules": [
                {"backendRefs": API_RULE},
                {"backendRefs": [{"name": S, "weight": 75}, {"name": C, "weight": 25}]},
            ]
        },
    }


def test_the_next_gateway_step_starts_from_the_route_it_wrote() -> None:
    cluster, api, _ = _gateway(lag=1, canary=3)
    run(cluster.set_canary_weight(25))
    api.calls.clear()
    run(cluster.set_canary_weight(25))
    assert api.trail() == [("PATCH", RT)]  # same weight: no wait, no read
    api.calls.clear()
    run(cluster.set_canary_weight(50))
    assert api.trail() == [("GET", C), ("GET", RT), ("PATCH", RT)]


def test_a_gateway_conflict_rereads_the_route_and_does_not_wait_again() -> None:
    cluster, api, _ = _gateway(lag=1, canary=3)
    run(cluster.set_canary_weight(25))
    api.calls.clear()
    api.fail[("PATCH", ROUTE_PATH)] = [KubeApiError("conflict", 409, "Conflict")]
    run(cluster.set_canary_weight(50))
    assert api.trail() == [("GET", C), ("GET", RT), ("PATCH", RT), ("GET", RT), ("PATCH", RT)]
    assert api.objects[ROUTE_PATH]["spec"]["rules"][1]["backendRefs"][1]["weight"] == 50


def test_a_stale_cached_route_conflicts_and_is_read_again() -> None:
    cluster, api, _ = _gateway(25, 75, lag=1, canary=3)
    run(cluster._read_weight({}, {}))
    api.objects[ROUTE_PATH]["metadata"]["resourceVersion"] = "9"  # written by someone since
    api.calls.clear()
    run(cluster.set_canary_weight(25))
    assert api.trail() == [("PATCH", RT), ("GET", RT), ("PATCH", RT)]
    assert api.writes()[1].body["metadata"] == {"resourceVersion": "9"}


def test_a_route_that_keeps_conflicting_is_given_up_after_five_attempts() -> None:
    cluster, api, _ = _gateway(lag=1, canary=3)
    api.fail[("PATCH", ROUTE_PATH)] = [KubeApiError("conflict", 409, "Conflict") for _ in range(6)]
    with pytest.raises(ClusterError, match=r"^HTTPRoute prod/web-route: update kept conflicting$"):
        run(cluster.set_canary_weight(25))
    assert [c.method for c in api.calls].count("PATCH") == 5


def test_a_gateway_error_other_than_a_conflict_is_not_retried() -> None:
    cluster, api, _ = _gateway(lag=1, canary=3)
    api.fail[("PATCH", ROUTE_PATH)] = [KubeApiError("forbidden", 403, "Forbidden")]
    with pytest.raises(KubeApiError, match="forbidden"):
        run(cluster.set_canary_weight(25))
    assert [c.method for c in api.calls].count("PATCH") == 1


def test_a_route_without_the_canary_backend_is_refused_by_name() -> None:
    route = _route(API_RULE, [{"name": S, "weight": 100}])
    cluster, api, _ = fake_cluster("gateway", extra={ROUTE_PATH: route}, lag=1, canary=3)
    with pytest.raises(ClusterError) as err:
        run(cluster.set_canary_weight(25))
    assert str(err.value) == (
        "HTTPRoute prod/web-route has no backendRef named web-canary (the canary Service)"
    )
    assert api.writes() == []


@pytest.mark.parametrize(
    ("canary", "stable", "expected"),
    [(None, None, 50), (None, 3, 25), (1, 2, 33), (2, 1, 67), (0, 0, 0), (25, 75, 25)],
)
def test_the_route_weight_is_the_canary_share_of_its_own_rule_with_weights_defaulting_to_1(
    canary: int | None, stable: int | None, expected: int
) -> None:
    cluster, api, _ = _gateway(canary, stable, lag=1)
    assert run(cluster._read_weight({}, {})) == expected
    assert api.trail() == [("GET", RT)]
    api.calls.clear()
    run(cluster.set_canary_weight(expected))  # the read is kept: the same weight needs no read
    assert api.trail() == [("PATCH", RT)]


def test_the_replicas_weight_is_read_from_the_two_spec_sizes() -> None:
    cluster, api, _ = fake_cluster(lag=1)
    assert run(cluster._read_weight({"spec": {"replicas": 3}}, {"spec": {"replicas": 1}})) == 25
    assert run(cluster._read_weight({"spec": {"replicas": 3}}, {"spec": {}})) == 0
    assert run(cluster._read_weight({"spec": {}}, {"spec": {"replicas": 2}})) == 100
    assert api.calls == []
