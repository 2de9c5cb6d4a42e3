"""A DeployRun that finds another run's unfinished deploy of its service (core.resume refuses it):
the agent says so in the status and looks again now and then (that deploy ending is no event of
this run's); deleted, it has nothing of its own to roll back and lets go at once."""

from __future__ import annotations

from typing import Any

import pytest

import core.session
from core.agent.drive import RETRY_OTHER_S, DrivenRun, RunDriver
from core.resume import ANOTHER_RUNS_DEPLOY
from core.session import ResumeRefused, demo_plan

KEY = ("shop", "checkout-b")


def _driver(monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, Any]]) -> RunDriver:
    driver = RunDriver(None, identity="agent-a")  # type: ignore[arg-type]  # every cluster call is stubbed

    async def refused(*_: Any, **kw: Any) -> Any:
        calls.append(("open", kw["plan_path"]))
        raise ResumeRefused(
            "checkout has an unfinished deploy started by DeployRun shop/checkout-a", [ANOTHER_RUNS_DEPLOY]
        )

    async def write_status(run: DrivenRun, *, ended: Any = None, message: str = "") -> None:
        calls.append(("status", message))

    async def pause(run: DrivenRun, seconds: float) -> None:
        calls.append(("pause", seconds))

    async def drop(run: DrivenRun) -> None:
        calls.append(("drop finalizer", None))

    monkeypatch.setattr(core.session, "open_session", refused)
    monkeypatch.setattr(driver, "_plan", lambda run: demo_plan())
    monkeypatch.setattr(driver, "_write_status", write_status)
    monkeypatch.setattr(driver, "_pause", pause)
    monkeypatch.setattr(driver, "_drop_finalizer", drop)
    return driver


def _obj(**meta: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": KEY[0], "name": KEY[1], "generation": 1, **meta}, "spec": {}}


async def test_refused_for_another_runs_deploy_it_says_so_and_looks_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, Any]] = []
    driver = _driver(monkeypatch, calls)
    run = DrivenRun(KEY, _obj(), driver)
    assert await driver._attempt(run) is True  # loop again
    assert calls[0] == ("open", "deployrun:shop/checkout-b")
    kind, message = calls[1]
    assert kind == "status" and "started by DeployRun shop/checkout-a" in message
    assert message.endswith(f"tried again every {RETRY_OTHER_S:g} s")
    assert calls[2] == ("pause", RETRY_OTHER_S) and len(calls) == 3  # bounded wait, not for ever


async def test_deleted_while_another_runs_deploy_is_there_it_lets_go(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    driver = _driver(monkeypatch, calls)
    run = DrivenRun(KEY, _obj(deletionTimestamp="2026-12-03T10:00:00Z", finalizers=["x"]), driver)
    assert await driver._attempt(run) is False
    assert calls == [("open", "deployrun:shop/checkout-b"), ("drop finalizer", None)]


async def test_a_standby_that_gets_the_lease_after_the_run_ended_does_not_start_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The replica driving a run releases the lease when the run ends; a standby waiting for it then
    opened a session and, the cluster's progress being finished, started a new deploy of a run whose
    status said completed (a second deploy nobody asked for, waiting in preflight for sign-offs)."""
    calls: list[tuple[str, Any]] = []
    driver = _driver(monkeypatch, calls)
    closed: list[bool] = []

    class Session:
        async def close(self) -> None:
            closed.append(True)

    async def opened(*_: Any, **kw: Any) -> Any:
        calls.append(("open", kw["plan_path"]))
        return Session()

    class Api:
        async def request(self, method: str, path: str, **_: Any) -> Any:
            calls.append((method, path))
            return {**_obj(), "status": {"outcome": "completed", "phase": "complete"}}

    async def never(*_: Any, **__: Any) -> bool:
        raise AssertionError("drove a run that had ended")

    monkeypatch.setattr(core.session, "open_session", opened)
    monkeypatch.setattr(driver, "_drive", never)
    driver.api = Api()  # type: ignore[assignment]
    run = DrivenRun(KEY, _obj(), driver)  # the watch has not shown the outcome yet
    assert await driver._attempt(run) is True  # loop again: its top sees the outcome
    assert closed == [True]  # the lease handed back at once
    assert calls[-1] == ("GET", "/apis/deploydeck.dev/v1alpha1/namespaces/shop/deployruns/checkout-b")
    assert run.obj["status"]["outcome"] == "completed"
