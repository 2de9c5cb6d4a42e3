"""How the traffic routers read what they steer by (issue 16; from the survivors of
`make mutate MUTATE_MODULES=core.adapters.kubernetes.traffic`).

ingress-nginx's canary annotations decide the share of traffic the canary gets, and a Deployment's
rollingUpdate fields decide how many ready pods a change may cost: each reading is pinned here on
the values ingress-nginx and the Deployment controller use.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.adapters.kubernetes.traffic import (
    _available,
    _canary_on,
    max_unavailable,
    nginx_total,
    nginx_weight,
    paused_error,
    ready_floor,
)

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
