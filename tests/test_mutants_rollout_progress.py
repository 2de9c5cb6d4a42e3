"""A rollout's persisted progress (issue 16, core.rollout.progress): what a resume may trust.

Written against `make mutate MUTATE_MODULES=core.rollout` in progress.py: a status survives the trip
through the cluster's annotation unchanged, a status this version cannot read is not resumed, and the
check of the live cluster accepts exactly the states this deploy can have left (the one before or
after the action it died in) and names every other difference as a hand edit. Pure unit tests; what
`status` reads from it is in test_mutants_rollout_status.py.
"""

from __future__ import annotations

import json

import pytest

from core.domain import WorkloadSample, WorkloadStatus
from core.rollout.progress import SCHEMA, RolloutStatus, StopProgress, WindowProgress
from tests.rollout_progress_helpers import IMAGE, OLD, T0
from tests.rollout_progress_helpers import status as _status

HAND = "registry.example.com/shop/checkout:9.9.9"


def _live(weight: int = 0, canary: str | None = IMAGE, stable: str | None = OLD) -> WorkloadStatus:
    return WorkloadStatus(stable_image=stable, canary_image=canary, weight=weight)


# --- the trip through the cluster ------------------------------------------------------------------


def test_a_status_comes_back_from_the_cluster_exactly_as_it_was_written() -> None:
    status = _status(
        driver="alice",
        phase="canary",
        step_index=1,
        weight=25,
        weight_target=50,
        pending="canary.deploy",
        window=WindowProgress(name="canary 25 %", step_index=1, started_at=T0, duration_s=300.0, samples=3),
        completed=["preflight", "canary.deploy"],
        results={"preflight": "pre-deploy gates satisfied"},
        stop=StopProgress(kind="rollback", actor="bob", reason="error rate", weight_at_trigger=25),
        baseline=WorkloadSample(requests=100, error_rate=0.01, p99=0.2),
    )
    state = status.to_state()
    # what the cluster stores is plain JSON with the schema under its own name
    assert json.loads(json.dumps(state)) == state
    assert state["schema"] == SCHEMA and "schema_" not in state
    assert state["started_at"] == "2026-01-05T10:00:00Z"
    assert RolloutStatus.from_state(state) == status
    assert RolloutStatus.from_state(json.loads(json.dumps(state))) == status


@pytest.mark.parametrize(
    "state",
    [
        None,
        {},
        {"schema": SCHEMA + 1},  # a newer deploydeck's progress: its fields may mean something else
        {"schema": SCHEMA - 1},
    ],
    ids=["none", "empty", "newer", "older"],
)
def test_no_status_or_one_of_another_schema_is_not_resumed(state: dict[str, object] | None) -> None:
    if state:
        state = {**_status().to_state(), **state}
    assert RolloutStatus.from_state(state) is None


def test_a_status_without_a_schema_or_that_does_not_validate_is_not_resumed() -> None:
    state = _status().to_state()
    assert RolloutStatus.from_state({k: v for k, v in state.items() if k != "schema"}) is None
    assert RolloutStatus.from_state({k: v for k, v in state.items() if k != "deploy_id"}) is None
    assert RolloutStatus.from_state({**state, "weight": "a quarter"}) is None
    # fields it does not know are a later minor version's additions: ignored, the rest resumed
    assert RolloutStatus.from_state({**state, "future_field": 1}) == _status()


def test_only_a_recorded_outcome_finishes_a_deploy() -> None:
    assert not _status(phase="rolled_back").finished  # the phase alone leaves notifying to do
    assert _status(outcome="rolled_back").finished
    assert _status(completed=["preflight"]).done("preflight")
    assert not _status(completed=["preflight"]).done("canary.deploy")


# --- the live cluster against what this deploy left --------------------------------------------------


def test_a_cluster_as_this_deploy_left_it_shows_no_difference() -> None:
    assert _status().drift(_live(canary=None)) == []  # nothing done yet
    status = _status(weight=25, completed=["canary.deploy"])
    assert status.drift(_live(25)) == []


def test_a_stop_under_way_is_finished_whatever_the_cluster_says() -> None:
    stop = StopProgress(kind="rollback", actor="bob", reason="error rate")
    status = _status(weight=25, completed=["canary.deploy"], stop=stop)
    assert status.drift(_live(70, canary=HAND, stable=HAND)) == []


def test_the_canary_weight_must_be_the_one_in_force_or_the_one_about_to_be_applied() -> None:
    status = _status(weight=25, weight_target=50, completed=["canary.deploy"])
    assert status.drift(_live(25)) == []  # died before the change
    assert status.drift(_live(50)) == []  # died after it, before recording it
    # a lowered weight is not one this deploy can have left (the two named in order)
    assert status.drift(_live(0)) == ["canary weight is 0 %, this deploy left 25 % or 50 %"]
    assert status.drift(_live(10)) == ["canary weight is 10 %, this deploy left 25 % or 50 %"]
    no_target = _status(weight=25, completed=["canary.deploy"])
    assert no_target.drift(_live(50)) == ["canary weight is 50 %, this deploy left 25 %"]
    assert no_target.drift(_live(0)) == ["canary weight is 0 %, this deploy left 25 %"]


def test_a_promotion_under_way_also_accepts_the_canary_weight_back_at_zero() -> None:
    status = _status(weight=100, pending="canary.promote", completed=["canary.deploy"])
    assert status.drift(_live(100, stable=OLD)) == []
    assert status.drift(_live(0, stable=IMAGE)) == []  # promoted, traffic back on stable
    assert status.drift(_live(50)) == ["canary weight is 50 %, this deploy left 0 % or 100 %"]
    # without a promotion pending, 0 % is a lowered weight
    before = _status(weight=100, completed=["canary.deploy"])
    assert before.drift(_live(0)) == ["canary weight is 0 %, this deploy left 100 %"]


def test_after_the_promotion_the_weight_is_not_compared_but_stable_must_run_the_new_image() -> None:
    status = _status(weight=100, completed=["canary.deploy", "canary.promote"])
    assert status.drift(_live(0, canary=None, stable=IMAGE)) == []
    assert status.drift(_live(37, canary=HAND, stable=IMAGE)) == []
    # stable back on what it was before this deploy: someone undid the promotion by hand
    assert status.drift(_live(0, stable=OLD)) == [f"stable image is {OLD}, this deploy expects {IMAGE}"]


def test_the_canary_image_is_compared_once_this_deploy_set_it_and_until_it_promotes() -> None:
    before = _status(weight=0)
    assert before.drift(_live(0, canary=HAND)) == []  # not deployed yet: whatever is there is replaced
    deployed = _status(weight=25, completed=["canary.deploy"])
    assert deployed.drift(_live(25, canary=HAND)) == [f"canary image is {HAND}, this deploy set {IMAGE}"]
    assert deployed.drift(_live(25, canary=None)) == [f"canary image is None, this deploy set {IMAGE}"]
    promoting = _status(weight=100, pending="canary.promote", completed=["canary.deploy"])
    assert promoting.drift(_live(0, canary=HAND, stable=IMAGE)) == []  # the promotion scales it away


def test_stable_must_still_run_what_it_ran_when_this_deploy_started() -> None:
    status = _status(weight=25, completed=["canary.deploy"])
    assert status.drift(_live(25, stable=IMAGE)) == [f"stable image is {IMAGE}, this deploy expects {OLD}"]
    assert status.drift(_live(25, stable=HAND)) == [f"stable image is {HAND}, this deploy expects {OLD}"]
    # a deploy that did not record stable's image (older status) is not compared on it
    unknown = _status(weight=25, completed=["canary.deploy"], stable_before=None)
    assert unknown.drift(_live(25, stable=HAND)) == []


def test_a_promotion_under_way_accepts_stable_on_either_image_and_nothing_else() -> None:
    status = _status(weight=100, pending="canary.promote", completed=["canary.deploy"])
    assert status.drift(_live(100, stable=OLD)) == []
    assert status.drift(_live(100, stable=IMAGE)) == []
    assert status.drift(_live(100, stable=HAND)) == [
        f"stable image is {HAND}, this deploy expects {OLD} or {IMAGE}"
    ]
    # without stable's image recorded, the promotion's own image is the only one expected
    unknown = _status(weight=100, pending="canary.promote", completed=["canary.deploy"], stable_before=None)
    assert unknown.drift(_live(100, stable=IMAGE)) == []
    assert unknown.drift(_live(100, stable=HAND)) == [f"stable image is {HAND}, this deploy expects {IMAGE}"]
    # an empty recorded image is not named as one to expect
    empty = _status(weight=100, pending="canary.promote", completed=["canary.deploy"], stable_before="")
    assert empty.drift(_live(100, stable=HAND)) == [f"stable image is {HAND}, this deploy expects {IMAGE}"]


def test_every_difference_is_named_weight_canary_then_stable() -> None:
    status = _status(weight=25, completed=["canary.deploy"])
    assert status.drift(_live(50, canary=HAND, stable=HAND)) == [
        "canary weight is 50 %, this deploy left 25 %",
        f"canary image is {HAND}, this deploy set {IMAGE}",
        f"stable image is {HAND}, this deploy expects {OLD}",
    ]
