"""A DeployRun's spec edited while a replica drives it: not applied, and said so.

The plan a session drives is fixed when it opens. The status used to report every edit as observed
(observedGeneration = the latest generation) while the run went on with the old plan: `kubectl get`
said the edit had been taken when it had not. Now observedGeneration stays at the generation driven
and the status message names the generation not applied; the agent's log says it once.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from pathlib import Path
from typing import Any

import pytest

from core.agent.drive import DrivenRun, RunDriver
from core.agent.watch import RunChange
from tests.engine_helpers import sim_session

KEY = ("shop", "checkout-1-5-0")


def _obj(generation: int) -> dict[str, Any]:
    return {
        "metadata": {"namespace": KEY[0], "name": KEY[1], "generation": generation, "resourceVersion": "7"},
        "spec": {"service": "checkout"},
        "status": {"phase": "canary", "weight": 25, "observedGeneration": 1},
    }


async def test_an_edit_while_driven_is_shown_not_applied_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session = await sim_session(tmp_path, "healthy")
    driver = RunDriver(None, identity="agent-a")  # type: ignore[arg-type]  # no cluster call is made here
    run = DrivenRun(KEY, _obj(1), driver)
    driver._runs[KEY] = run
    never = asyncio.get_running_loop().create_future()
    run.task = asyncio.ensure_future(never)  # its loop "runs": on_change starts no other
    run.session, run.generation = session, 1
    try:
        status = driver.status_of(run)
        assert status["observedGeneration"] == 1 and status["message"] == ""

        caplog.set_level(logging.WARNING, logger="deploydeck.agent")
        edited = _obj(2)
        for _ in range(3):  # the edit, then the agent's own status writes coming back
            await driver.on_change(RunChange("MODIFIED", copy.deepcopy(edited)))
        status = driver.status_of(run)
        assert status["observedGeneration"] == 1  # still the plan it drives
        assert "spec generation 2 is not applied" in status["message"]
        assert "drives generation 1" in status["message"]
        said = [r.getMessage() for r in caplog.records if "not applied" in r.getMessage()]
        assert len(said) == 1 and said[0].startswith("deployrun shop/checkout-1-5-0: spec generation 2")
        assert run._dirty.is_set()  # the mirror writes it

        # a message of the agent's own (a refusal) is not hidden by the edit note
        assert driver.status_of(run, message="lease lost")["message"] == "lease lost"
        # once ended, the status still says which generation the outcome belongs to
        run.session = None
        ended = driver.status_of(run, ended=session.rollout)
        assert ended["observedGeneration"] == 1
    finally:
        run.task.cancel()
        await session.close()


async def test_an_undriven_run_observes_the_latest_generation(tmp_path: Path) -> None:
    driver = RunDriver(None, identity="agent-a")  # type: ignore[arg-type]
    run = DrivenRun(KEY, _obj(3), driver)
    status = driver.status_of(run, message="not a valid plan: spec.version: required")
    assert status["observedGeneration"] == 3 and status["message"].startswith("not a valid plan")
